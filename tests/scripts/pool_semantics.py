"""Prints what a script sees of its own start, so a pooled run can be compared with a fresh interpreter."""

import json
import os
import sys


def annotated(x: int) -> None:  # the fork server's `from __future__ import annotations` must not leak here
    pass


print("annotations", annotated.__annotations__)
print("name", __name__, os.path.basename(__file__), os.path.basename(sys.argv[0]), sys.argv[1:])
print("main", sys.modules["__main__"].__dict__ is globals())
print("environ", json.dumps(dict(os.environ), sort_keys=True))
sys.stdout.flush()
raise ValueError("the end")
