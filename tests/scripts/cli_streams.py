"""Write fixed non-UTF-8 bytes to stdout, then other bytes to stderr (each in one write).

The payloads are shorter than PIPE_BUF, so each arrives as one chunk.
"""

import sys

OUT = b"out: caf\xe9 \xff\xfe\x00 nul \xc3 torn\r\nno newline at end \x80"
ERR = b"err: \xfe\xfd binary \x00\x01\x02 \xe2\x82\xac euro\n"

sys.stdout.buffer.write(OUT)
sys.stdout.buffer.flush()
sys.stderr.buffer.write(ERR)
sys.stderr.buffer.flush()
