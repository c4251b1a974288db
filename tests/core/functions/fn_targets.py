"""Functions the function-task tests run in child processes (imported there by name)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from prismq_desktop import task


def add(a, b=0):
    print(f"adding {a} and {b}")  # a function's own stdout is its output, never its result
    print('{"value": "not the result"}')
    return {"sum": a + b, "pid": os.getpid()}


def boom(x):
    raise ValueError(f"bad input {x!r}")


async def slow_add(a, b):
    await asyncio.sleep(0.05)
    return a + b


def sleeper(seconds, marker=None):
    """Starts a grandchild (so cancel/timeout must stop a tree), then sleeps."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    if marker:
        with open(marker, "w") as fh:
            fh.write(f"{os.getpid()} {child.pid}")
    time.sleep(seconds)
    return "woke"


def not_json():
    return {1, 2, 3}


def hard_exit():
    os._exit(0)


def exits(code):
    sys.exit(code)


def env_value(name):
    return os.environ.get(name)


def double(value):
    return value * 2


def describe(parent, label="x"):
    return {"parent": parent, "label": label}


def flaky(path):
    """Fails until it has been called twice (counted in a file)."""
    with open(path, "a+") as fh:
        fh.seek(0)
        count = int(fh.read() or 0)
    with open(path, "w") as fh:
        fh.write(str(count + 1))
    if count < 1:
        raise RuntimeError("first call fails")
    return count + 1


def big(n):
    return "x" * n


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def make_point(x, y):
    return Point(x, y)


@task(name="fn_targets.multiply", timeout=30)
def multiply(a, b):
    return a * b


@task
async def greet(name, punctuation="!"):
    return f"hello {name}{punctuation}"


IMPORTED_AT = time.time()  # when this module was imported in the process that runs the call


def where():
    """(import time of this module, parent pid): pooled calls of one worker share the first."""
    return [IMPORTED_AT, os.getppid()]
