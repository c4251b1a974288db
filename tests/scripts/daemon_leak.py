"""Leave a daemon thread writing after the script ends (a pooled worker must not reuse itself)."""
import sys
import threading
import time


def leak() -> None:
    while True:
        print("LEAKED-FROM-A-DAEMON-THREAD", flush=True)
        time.sleep(0.005)


threading.Thread(target=leak, daemon=True).start()
time.sleep(0.05)
print("main done", flush=True)
sys.exit(0)
