"""Print an increasing counter every 20 ms (for pause/resume)."""
import sys
import time

i = 0
while True:
    print(i, flush=True)
    i += 1
    time.sleep(0.02)
    if len(sys.argv) > 1 and i >= int(sys.argv[1]):
        break
