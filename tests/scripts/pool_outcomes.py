"""End in the way argv[1] says, to compare a pooled run with a spawned one byte for byte."""
import atexit
import sys
import threading
import time


def nested(depth: int) -> None:
    if depth == 0:
        raise ValueError("boom from the script")
    nested(depth - 1)


what = sys.argv[1] if len(sys.argv) > 1 else "ok"
print("start", what)
print("to stderr", file=sys.stderr)
if what == "ok":
    pass
elif what == "exit":
    sys.exit(int(sys.argv[2]))
elif what == "exit-none":
    sys.exit()
elif what == "exit-msg":
    sys.exit("a message for stderr")
elif what == "raise":
    nested(2)
elif what == "chained":
    try:
        {}["missing"]
    except KeyError as exc:
        raise RuntimeError("while handling") from exc
elif what == "kbd":
    raise KeyboardInterrupt
elif what == "thread":  # a non-daemon thread outlives the main code: the process waits for it
    def late() -> None:
        time.sleep(0.2)
        print("thread done", flush=True)

    threading.Thread(target=late).start()
elif what == "atexit":
    atexit.register(lambda: print("atexit ran"))
elif what == "buffered":  # with PYTHONUNBUFFERED unset nothing may be lost at exit
    for i in range(2000):
        print("line", i)
        print("err", i, file=sys.stderr)
elif what == "unicode":
    print("caf\u00e9 \u20ac \U0001f600")
    sys.stdout.buffer.write(b"raw \xff\xfe\n")
elif what == "excepthook":
    sys.excepthook = lambda t, v, tb: print("custom hook:", t.__name__, v, file=sys.stderr)
    raise LookupError("via hook")
print("end", what)
