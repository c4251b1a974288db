"""A standalone worker as a CronJob would run it: probe, print, exit 0."""
import json
import os

print(json.dumps({"probed": ["provider-1", "provider-2"], "pid": os.getpid()}))
