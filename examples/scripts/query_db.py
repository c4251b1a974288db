"""A tiny, frequent query (pattern 6): runs a SQL statement on an in-memory SQLite database."""

import argparse
import sqlite3

parser = argparse.ArgumentParser()
parser.add_argument("--query", required=True)
opts = parser.parse_args()

db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
db.executemany("INSERT INTO users (name) VALUES (?)", [("ada",), ("grace",), ("linus",)])
for row in db.execute(opts.query):
    print(*row)
