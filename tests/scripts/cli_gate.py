"""Print "first", wait until the file GATE exists, print "second", exit with CODE (default 0).

usage: cli_gate.py GATE [CODE]
"""

import os
import sys
import time

print("first", flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(sys.argv[1]):
    if time.monotonic() > deadline:
        print("gate never opened", file=sys.stderr, flush=True)
        sys.exit(99)
    time.sleep(0.01)
print("second", flush=True)
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
