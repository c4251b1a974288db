"""Write MB megabytes of numbered 80-byte lines to stdout (or stderr) as fast as possible."""
import sys

mb = float(sys.argv[1])
out = sys.stderr.buffer if len(sys.argv) > 2 and sys.argv[2] == "stderr" else sys.stdout.buffer
total = int(mb * 1_000_000) // 80
block = 4096
i = 0
while i < total:
    n = min(block, total - i)
    out.write(b"".join(b"%079d\n" % (i + k) for k in range(n)))
    i += n
out.flush()
