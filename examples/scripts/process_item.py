"""Process one item of a batch (pattern 3). An item named "corrupt*" fails with exit code 2."""

import argparse
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--batch", action="store_true")
parser.add_argument("item")
opts = parser.parse_args()

time.sleep(0.1)
if opts.item.startswith("corrupt"):
    print(f"cannot decode {opts.item}", file=sys.stderr)
    sys.exit(2)
print(f"processed {opts.item}{' (batch mode)' if opts.batch else ''}")
