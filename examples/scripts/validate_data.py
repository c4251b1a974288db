"""Quick data validation (pattern 1): check a CSV file, print a summary, exit 0 or 1."""

import argparse
import csv
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--source", required=True)
opts = parser.parse_args()

if not os.path.exists(opts.source):
    print(f"{opts.source}: no such file", file=sys.stderr)
    sys.exit(1)
with open(opts.source, newline="") as fh:
    rows = list(csv.DictReader(fh))
bad = [i for i, row in enumerate(rows, 1) if (row.get("email") or "").count("@") != 1]
print(f"validated {len(rows)} rows from {os.path.basename(opts.source)}: {len(bad)} invalid")
if bad:
    print(f"invalid rows: {bad}", file=sys.stderr)
sys.exit(1 if bad else 0)
