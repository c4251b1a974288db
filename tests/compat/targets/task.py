import time

for i in range(3):
    print(f"line {i}", flush=True)
    time.sleep(0.05)
