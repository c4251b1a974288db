"""A grandchild leaves the run's session with setsid(); print its pid, then wait."""
import os
import subprocess
import sys
import time

if len(sys.argv) > 1:
    os.setsid()
    time.sleep(120)
    sys.exit(0)
child = subprocess.Popen([sys.executable, __file__, "escape"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
# wait until it really left our session
while os.getsid(child.pid) == os.getsid(0):
    time.sleep(0.01)
print(f"pid {child.pid}", flush=True)
print("ready", flush=True)
time.sleep(120)
