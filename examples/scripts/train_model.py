"""A "long" training job (pattern 2): prints epochs with the PRISMQ:PROGRESS protocol."""

import argparse
import random
import time

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--seconds-per-epoch", type=float, default=0.1)
opts = parser.parse_args()

loss = 1.0
for epoch in range(1, opts.epochs + 1):
    time.sleep(opts.seconds_per_epoch)
    loss *= random.uniform(0.6, 0.9)
    print(f"epoch {epoch}/{opts.epochs} loss={loss:.4f}", flush=True)
    print(f"PRISMQ:PROGRESS {epoch}/{opts.epochs} epoch {epoch}", flush=True)
print("model saved to model.bin", flush=True)
