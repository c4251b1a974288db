"""Write raw bytes: `binary` (all 256 byte values), `nonutf8`, `longline MB` (no newline)."""
import sys

out = sys.stdout.buffer
what = sys.argv[1]
if what == "binary":
    out.write(bytes(range(256)) * 64)
elif what == "nonutf8":
    out.write(b"caf\xe9 latin1\n\xff\xfe broken \xc3\n ok \xe2\x82\xac\n")
elif what == "longline":
    size = int(float(sys.argv[2]) * 1_000_000)
    chunk = b"x" * 1_000_000
    for _ in range(size // 1_000_000):
        out.write(chunk)
    out.write(b"END")
out.flush()
