"""Pretend to send an email (pattern 4): it only prints."""

import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--to", required=True)
parser.add_argument("--subject", default="Welcome!")
opts = parser.parse_args()

time.sleep(0.2)
print(f"sent {opts.subject!r} to {opts.to}")
