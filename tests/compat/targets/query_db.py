import argparse
import sqlite3

p = argparse.ArgumentParser()
p.add_argument("--query", required=True)
a = p.parse_args()
db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE users (name TEXT)")
db.executemany("INSERT INTO users VALUES (?)", [("ann",), ("bob",)])
for row in db.execute(a.query):
    print(row[0])
