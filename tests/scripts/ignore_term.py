"""Ignore SIGTERM (and so does a child of it); only SIGKILL ends this tree."""
import os
import signal
import subprocess
import sys
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
if len(sys.argv) < 2:
    child = subprocess.Popen([sys.executable, __file__, "child"])
    os.write(1, f"pid {child.pid}\n".encode())  # one write per line
    os.write(1, b"ready\n")  # only the parent says ready, after the child's pid
while True:
    time.sleep(0.1)
