"""Write argv[1] MB to stdout (and a line to stderr), print "done" and exit with code argv[2]."""

import os
import sys

block = (b"x" * 1023 + b"\n") * 64  # 64 KiB of 1 KiB lines
for _ in range(int(float(sys.argv[1]) * 16)):
    os.write(1, block)
os.write(2, b"err line\n")
os.write(1, b"done\n")
sys.exit(int(sys.argv[2]))
