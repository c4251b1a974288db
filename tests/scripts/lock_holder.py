"""Hold an SQLite file's write lock until told to let go.

usage: lock_holder.py DB_PATH [--later]

Opens DB_PATH, takes `BEGIN EXCLUSIVE`, prints "locked", then waits for one line on stdin
(or its end) and commits, releasing the lock, and prints "released". With --later it first
prints "waiting" and takes the lock only when it reads a line (so a test can take it at an
exact moment), and it can then lock again after each release until stdin ends.
"""

import sqlite3
import sys

db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
later = "--later" in sys.argv[2:]
if later:
    print("waiting", flush=True)
while True:
    if later and not sys.stdin.readline():
        break
    db.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()
    db.execute("COMMIT")
    print("released", flush=True)
    if not later:
        break
db.close()
