import json
import sys

print(json.dumps(sys.argv[1:]))
if "--fail" in sys.argv:
    sys.exit(3)
