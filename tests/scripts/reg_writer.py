"""Create N queued runs in a registry, one create() per run, then die without closing.

usage: reg_writer.py DB_PATH N GO_FILE

Prints {"ready": pid} once the registry is open, waits until GO_FILE exists (so several
writers start together), prints the ids it got as one JSON line, and leaves with
os._exit (no close, no clean shutdown).
"""

import json
import os
import sys
import time

from prismq_desktop.core import RunRegistry, RunSpec

db, n, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
reg = RunRegistry(db)
print(json.dumps({"ready": os.getpid()}), flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.002)
ids = [reg.create(RunSpec(target="job.py", args=(str(i),), name=f"writer-{os.getpid()}")).id for i in range(n)]
print(json.dumps({"pid": os.getpid(), "ids": ids}), flush=True)
os._exit(0)
