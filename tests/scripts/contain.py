"""A run whose tree tries to outlive it. argv[1] is the kind:

grandchild  child -> grandchild, both sleep
ignorer     a child that ignores SIGTERM (and the root ignores it too)
setsid      a child that calls setsid() (leaves the run's group), then sleeps
stubborn    the same, ignoring SIGTERM
daemon      fork, setsid, fork again, the middle exits: the grandchild re-parents away
blocked     a child stuck writing to a full pipe nobody reads (ignores SIGTERM)

When every descendant is in place the root creates the file named by $CONTAIN_READY and
sleeps; every process sleeps at most 60 s so a leak cannot last forever.
"""

import os
import signal
import sys
import time

kind = sys.argv[1]
ready = os.environ["CONTAIN_READY"]
r, w = os.pipe()  # each descendant writes one byte here when it is in place


def settled() -> None:
    os.write(w, b"x")


def linger() -> None:
    time.sleep(60)
    os._exit(0)


def child(body) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
        except OSError:
            pass  # a grandchild: its parent closed it already
        body()
        os._exit(0)
    return pid


def grandchild() -> None:
    child(lambda: (settled(), linger()))
    linger()


def ignorer() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settled()
    linger()


def setsid() -> None:
    os.setsid()
    settled()
    linger()


def stubborn() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    setsid()


def daemon() -> None:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        settled()
        linger()
    os._exit(0)


def blocked() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    br, bw = os.pipe()
    os.set_blocking(bw, False)
    try:
        while True:
            os.write(bw, b"y" * 65536)
    except BlockingIOError:
        pass
    os.set_blocking(bw, True)
    settled()
    os.write(bw, b"z" * 65536)  # blocks: the pipe is full and nobody reads it
    linger()


bodies = {"grandchild": grandchild, "ignorer": ignorer, "setsid": setsid, "stubborn": stubborn, "daemon": daemon,
          "blocked": blocked}
if kind == "ignorer":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child(bodies[kind])
if os.read(r, 1) != b"x":
    sys.exit(3)
with open(ready + ".tmp", "w") as fh:
    fh.write(str(os.getpid()))
os.replace(ready + ".tmp", ready)
print("ready", flush=True)
for _ in range(600):
    time.sleep(0.1)
