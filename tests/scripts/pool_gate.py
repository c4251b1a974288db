"""Print "ready" (and the fork server's pid), then wait until the file argv[1] exists (60 s at most)."""
import os
import sys
import time

print("ready", os.getpid(), os.getppid(), flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[1]):
    if time.monotonic() > deadline:
        sys.exit(9)
    time.sleep(0.01)
print("done", flush=True)
