"""Wait for a line on stdin, then allocate (and touch) MB megabytes in STEPS steps, hold it, and sleep.

usage: mon_alloc.py [MB=200] [STEPS=10]
"""
import sys
import time

mb = int(sys.argv[1]) if len(sys.argv) > 1 else 200
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
print("ready", flush=True)
sys.stdin.readline()
held = []
for _ in range(steps):
    held.append(b"\x01" * (mb * 2**20 // steps))  # written, so resident (bytes(n) would be untouched zero pages)
    time.sleep(0.05)
print("allocated", flush=True)
time.sleep(120)
