import argparse
import time

p = argparse.ArgumentParser()
p.add_argument("--to", default="nobody")
a = p.parse_args()
time.sleep(0.3)
with open("sent.txt", "a") as f:
    f.write(a.to + "\n")
print(f"sent to {a.to}")
