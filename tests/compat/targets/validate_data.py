import argparse, csv, sys
p = argparse.ArgumentParser(); p.add_argument("--source", required=True)
a = p.parse_args()
try:
    rows = list(csv.DictReader(open(a.source)))
except OSError as e:
    print(f"cannot read {a.source}: {e.strerror}", file=sys.stderr); sys.exit(1)
print(f"{len(rows)} valid rows in {a.source}")
