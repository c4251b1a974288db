"""The CLI side of bench_peers: `prismq-desktop submit /bin/true` into a running scheduler.

Like task-spooler's row, one client process per job from a shell loop, into a server that
runs them (here `prismq-desktop scheduler --http`, the window's headless twin, its default limit); the
wall time runs until the server has recorded every run as ended. A Python client per job is
what this row measures: the client's start, not the engine, is its cost.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

TRUE = shutil.which("true") or "/bin/true"


def _ended(db_path: str) -> int:
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def cli_run(n: int) -> dict[str, float]:
    """Wall time of n CLI submits (and their runs' ends) into a fresh headless app; per-client time too."""
    home = tempfile.mkdtemp(prefix="prismq-bench-cli-")
    env = dict(os.environ, PRISMQ_SECRET_STORE="file")
    cli = [sys.executable, "-m", "prismq_desktop", "--data-dir", home]
    server = subprocess.Popen([*cli, "scheduler", "--http", "127.0.0.1:0"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        endpoint = os.path.join(home, "api-endpoint")
        while not os.path.exists(endpoint):
            if server.poll() is not None or time.monotonic() > deadline:
                why = server.stderr.read().decode()[-400:] if server.stderr else ""
                raise RuntimeError(f"the headless app did not start: {why}")
            time.sleep(0.05)
        submit = " ".join(shlex.quote(a) for a in [*cli, "submit", TRUE])
        script = f"for i in $(seq {n}); do {submit} >/dev/null || exit 1; done"
        t0 = time.perf_counter()
        subprocess.run(["sh", "-c", script], env=env, check=True)
        clients = time.perf_counter() - t0
        db = os.path.join(home, "registry.sqlite3")
        while _ended(db) < n:
            if time.perf_counter() - t0 > 600:
                raise RuntimeError(f"only {_ended(db)} of {n} CLI-submitted runs ended")
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        return {"wall_s": wall, "clients_s": clients}
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    print(cli_run(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
