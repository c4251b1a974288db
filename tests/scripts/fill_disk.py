"""Fill the disk at its very end: print a line, take every free byte of the filesystem holding
argv[1] (a file there, written until ENOSPC), print argv[3] KiB more (that output no longer
fits), then exit with code argv[2]."""

import contextlib
import os
import sys

os.write(1, b"before the disk filled\n")
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
for size in (65536, 4096, 1):
    with contextlib.suppress(OSError):
        while True:
            os.write(fd, b"\0" * size)
os.close(fd)
line = b"y" * 1023 + b"\n"
for _ in range(int(sys.argv[3])):
    os.write(1, line)
sys.exit(int(sys.argv[2]))
