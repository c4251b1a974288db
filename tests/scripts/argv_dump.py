"""Write sys.argv[1:] as JSON to the file named by $ARGV_DUMP (or stdout), for quoting tests."""
import json
import os
import sys

data = json.dumps(sys.argv[1:])
target = os.environ.get("ARGV_DUMP")
if target:
    with open(target, "w", encoding="utf-8") as fh:
        fh.write(data)
else:
    print(data)
