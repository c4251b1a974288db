"""Hold an SQLite file's write lock until told to let go.

usage: lock_holder.py DB_PATH

Opens DB_PATH, takes `BEGIN EXCLUSIVE`, prints "locked", then waits for one line on stdin
(or its end) and commits, releasing the lock, and prints "released".
"""

import sqlite3
import sys

db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
db.close()
print("released", flush=True)
