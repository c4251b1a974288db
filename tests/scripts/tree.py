"""Start a tree: N children, each with a grandchild; print every pid; then sleep."""
import os
import subprocess
import sys
import time


def say(text: str) -> None:
    os.write(1, f"{text}\n".encode())  # one write per line: lines of several processes never interleave


n = int(sys.argv[1]) if len(sys.argv) > 1 else 2
if len(sys.argv) > 2 and sys.argv[2] == "leaf":
    time.sleep(120)
    sys.exit(0)
if len(sys.argv) > 2 and sys.argv[2] == "mid":
    leaf = subprocess.Popen([sys.executable, __file__, "0", "leaf"])
    say(f"pid {leaf.pid}")
    time.sleep(120)
    sys.exit(0)
kids = [subprocess.Popen([sys.executable, __file__, "0", "mid"]) for _ in range(n)]
for k in kids:
    say(f"pid {k.pid}")
say("ready")
time.sleep(120)
