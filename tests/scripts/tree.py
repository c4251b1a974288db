"""Start a tree: N children, each with a grandchild; print every pid; then sleep."""
import subprocess
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2
if len(sys.argv) > 2 and sys.argv[2] == "leaf":
    time.sleep(120)
    sys.exit(0)
if len(sys.argv) > 2 and sys.argv[2] == "mid":
    leaf = subprocess.Popen([sys.executable, __file__, "0", "leaf"])
    print(f"pid {leaf.pid}", flush=True)
    time.sleep(120)
    sys.exit(0)
kids = [subprocess.Popen([sys.executable, __file__, "0", "mid"]) for _ in range(n)]
for k in kids:
    print(f"pid {k.pid}", flush=True)
print("ready", flush=True)
time.sleep(120)
