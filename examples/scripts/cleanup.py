"""Periodic maintenance (pattern 5): remove *.tmp files from a directory (if given)."""

import argparse
import glob
import os

parser = argparse.ArgumentParser()
parser.add_argument("--dir")
opts = parser.parse_args()

removed = 0
if opts.dir:
    for path in glob.glob(os.path.join(opts.dir, "*.tmp")):
        os.remove(path)
        removed += 1
print(f"cleanup: removed {removed} temp files")
