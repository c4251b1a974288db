import argparse
import time

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--sleep", type=float, default=0.0)
a = p.parse_args()
for i in range(1, a.epochs + 1):
    print(f"PRISMQ:PROGRESS {i}/{a.epochs} epoch {i}", flush=True)
    time.sleep(a.sleep)
print("model saved", flush=True)
