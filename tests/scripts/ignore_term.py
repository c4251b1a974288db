"""Ignore SIGTERM (and so does a child of it); only SIGKILL ends this tree."""
import signal
import subprocess
import sys
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
if len(sys.argv) < 2:
    child = subprocess.Popen([sys.executable, __file__, "child"])
    print(f"pid {child.pid}", flush=True)
print("ready", flush=True)
while True:
    time.sleep(0.1)
