"""Start N sleeping children (default 3), print each pid, print "ready", then sleep.

With "exit" as the second argument the children exit after 0.3 s (a tree that shrinks).
"""
import subprocess
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
exit_soon = len(sys.argv) > 2 and sys.argv[2] == "exit"
code = f"import time; time.sleep({0.3 if exit_soon else 120})"
kids = [subprocess.Popen([sys.executable, "-S", "-c", code]) for _ in range(n)]
for k in kids:
    print(f"pid {k.pid}", flush=True)
print("ready", flush=True)
if exit_soon:
    for k in kids:
        k.wait()
    print("reaped", flush=True)
time.sleep(120)
