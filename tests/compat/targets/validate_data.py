import argparse
import csv
import sys

p = argparse.ArgumentParser()
p.add_argument("--source", required=True)
a = p.parse_args()
try:
    with open(a.source) as fh:
        rows = list(csv.DictReader(fh))
except OSError as e:
    print(f"cannot read {a.source}: {e.strerror}", file=sys.stderr)
    sys.exit(1)
print(f"{len(rows)} valid rows in {a.source}")
