"""Print "ready", wait until the file named by argv[1] exists, then exit with code argv[2]."""

import os
import sys
import time

print("ready", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.01)
print("bye", flush=True)
sys.exit(int(sys.argv[2]))
