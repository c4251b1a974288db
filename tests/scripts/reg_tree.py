"""A three-level tree (root -> mid -> leaf) that prints every pid before "ready", then sleeps.

usage: reg_tree.py [ignore-term]

Only the root writes to stdout (so a closed pipe cannot kill mid or leaf). With
`ignore-term` every level ignores SIGTERM, so only SIGKILL ends the tree.
"""

import signal
import subprocess
import sys
import time

role = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in ("mid", "leaf") else "root"
flags = [a for a in sys.argv[1:] if a == "ignore-term"]
if flags:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if role == "leaf":
    time.sleep(120)
    sys.exit(0)
if role == "mid":
    leaf = subprocess.Popen([sys.executable, __file__, "leaf", *flags], stdout=subprocess.DEVNULL)
    sys.stdout.write(f"{leaf.pid}\n")
    sys.stdout.flush()
    sys.stdout.close()
    time.sleep(120)
    sys.exit(0)
mid = subprocess.Popen([sys.executable, __file__, "mid", *flags], stdout=subprocess.PIPE)
leaf_pid = int(mid.stdout.readline())
print(f"pid {mid.pid}", flush=True)
print(f"pid {leaf_pid}", flush=True)
print("ready", flush=True)
time.sleep(120)
