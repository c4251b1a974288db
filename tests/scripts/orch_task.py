"""A scriptable child for the orchestrator tests.

Options:
  --tag T            a name for this run (used in --record lines)
  --record FILE      append "start T <time>" first and "end T <time>" last (one O_APPEND write each)
  --exit N           exit code at the end (default 0)
  --fail-until N     with --counter FILE: bump the counter and exit --fail-code while it is below N
  --fail-code N      the code for --fail-until failures (default 1)

Then steps, in order: print=TEXT (stdout), err=TEXT (stderr), sleep=SECONDS,
gate=FILE (wait until FILE exists, at most 60 s, else exit 9), pid (print "pid <pid>").
"""

import argparse
import os
import sys
import time


def record(path: str, what: str, tag: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{what} {tag} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)


parser = argparse.ArgumentParser()
parser.add_argument("--tag", default="-")
parser.add_argument("--record")
parser.add_argument("--exit", type=int, default=0)
parser.add_argument("--fail-until", type=int, default=0)
parser.add_argument("--fail-code", type=int, default=1)
parser.add_argument("--counter")
parser.add_argument("steps", nargs="*")
opts = parser.parse_intermixed_args()

if opts.record:
    record(opts.record, "start", opts.tag)

if opts.fail_until:
    count = 0
    if os.path.exists(opts.counter):
        with open(opts.counter) as fh:
            count = int(fh.read() or 0)
    count += 1
    with open(opts.counter, "w") as fh:
        fh.write(str(count))
    if count < opts.fail_until:
        print(f"attempt {count} fails", flush=True)
        if opts.record:
            record(opts.record, "end", opts.tag)
        sys.exit(opts.fail_code)
    print(f"attempt {count} succeeds", flush=True)

for step in opts.steps:
    name, _, value = step.partition("=")
    if name == "print":
        print(value, flush=True)
    elif name == "err":
        print(value, file=sys.stderr, flush=True)
    elif name == "sleep":
        time.sleep(float(value))
    elif name == "gate":
        deadline = time.monotonic() + 60
        while not os.path.exists(value):
            if time.monotonic() > deadline:
                sys.exit(9)
            time.sleep(0.01)
    elif name == "pid":
        print(f"pid {os.getpid()}", flush=True)
    else:
        sys.exit(f"unknown step {step!r}")

if opts.record:
    record(opts.record, "end", opts.tag)
sys.exit(opts.exit)
