"""A run that leaves a process behind, the way argv[1] says; argv[2] is what the root does then.

argv[1]: setsid     a child that calls setsid() and sleeps (re-parents once the root exits)
         daemon     fork, setsid, fork again, the middle exits: the grandchild re-parents away
                    at once (no exec: /proc/PID/environ is the fork server's, without the run tag)
         exec       the same, but the grandchild execs a fresh interpreter (it carries the tag)
argv[2]: exit       the root exits as soon as the descendant is in place
         stay       the root sleeps (the test stops the run)
argv[3]: closed     the descendant closes its stdout and stderr (the pipes end with the root)
         open       it keeps them (the run's pipes stay open until it is stopped)

Each descendant appends its pid to $ESCAPE_PIDS, and sleeps at most 60 s. The root prints
"in place" once it is.
"""

import os
import sys
import time

kind, then, stdio = sys.argv[1:4]
record = os.environ["ESCAPE_PIDS"]
r, w = os.pipe()


def note() -> None:
    with open(record, "a") as fh:
        fh.write(f"{os.getpid()}\n")


def detach_stdio() -> None:
    if stdio == "closed":
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 1)
        os.dup2(null, 2)


def settle_and_sleep() -> None:
    detach_stdio()
    note()
    os.write(w, b"x")
    time.sleep(60)
    os._exit(0)


if os.fork() == 0:
    os.close(r)
    if kind == "setsid":
        os.setsid()
        settle_and_sleep()
    os.setsid()
    if os.fork() == 0:
        if kind == "exec":
            detach_stdio()
            note()
            os.write(w, b"x")
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)"])
        settle_and_sleep()
    os._exit(0)
os.close(w)
if os.read(r, 1) != b"x":
    sys.exit(3)
time.sleep(0.05)  # the exec'd one is in its new interpreter by then (its environ carries the tag)
print("in place", flush=True)
if then == "stay":
    time.sleep(60)
