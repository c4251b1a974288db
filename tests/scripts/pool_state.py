"""Print, then change, process-wide state: a module global, a stdlib module, os.environ, the cwd.

A pooled run must see none of what an earlier run changed (each run is a fresh fork).
"""
import json
import os
import sys

print("preimported", "pool_statemod" in sys.modules)
import pool_statemod  # noqa: E402 - found through sys.path[0], the script's directory

print("counter", pool_statemod.COUNTER)
pool_statemod.COUNTER += 1
print("mark", getattr(json, "_prismq_mark", None))
json._prismq_mark = "changed"
print("env", os.environ.get("POOL_LEAK", "-"), os.environ.get("POOL_VAR", "-"))
os.environ["POOL_LEAK"] = "leaked"
print("argv", sys.argv[1:], os.path.basename(sys.argv[0]), __name__)
print("cwd", os.getcwd())
os.chdir("/")
print("ppid", os.getppid())
print("session", os.getsid(0) == os.getpid())
print("path0", sys.path[0])
