"""Say hello on both streams and exit with the code given."""
import os
import sys

print("hello", *sys.argv[2:])
print("to stderr", file=sys.stderr)
print("cwd", os.getcwd())
print("env", os.environ.get("PRISMQ_TEST_VAR", "-"), os.environ.get("PYTHONUNBUFFERED"), os.environ.get("PYTHONUTF8"))
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
