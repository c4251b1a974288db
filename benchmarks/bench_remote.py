"""Remote runs against bare Celery on the same broker and the same worker, in the same run.

Starts a real redis-server (password, free port) and one worker process: `start_worker` (the
code behind `prismq-desktop worker`, threads pool, concurrency 2) with two bare Celery tasks
added to its app, so both sides share the broker, the worker and its pool:

- submit -> first output line: a remote run (orchestrator `delay` to the first OutputBatch)
  against a bare task that spawns the same child, reads its first line and RPUSHes it to a
  reply list the client BLPOPs (goal <= 1.3x);
- trivial runs/s at concurrency 2: N remote runs against N bare tasks spawning the same
  process (goal >= 0.7x, i.e. time per run <= 1.43x);
- a 50 MB firehose through Redis (`prismq-desktop run --remote`): throughput, and the peak RSS
  of the submitting app and of the worker, against a 10 MB firehose (flat in the output size).

    python benchmarks/bench_remote.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import figure, median, print_table, write_result  # noqa: E402

QUEUE = "bench"
PY = sys.executable
FIRST_LINE = [PY, "-c", "print('ready', flush=True)"]
TRIVIAL = [PY, "-c", "pass"]

WORKER_CODE = r"""
import subprocess, sys
from prismq_desktop.core.remote.worker import start_worker, context

def hook(app):
    @app.task(name="bench.first_line", ignore_result=True)
    def first_line(argv, reply):
        p = subprocess.Popen(argv, stdout=subprocess.PIPE)
        line = p.stdout.readline()
        context().redis.rpush(reply, line)
        p.stdout.read(); p.wait()

    @app.task(name="bench.spawn", ignore_result=True)
    def spawn(argv, reply):
        subprocess.run(argv, stdout=subprocess.DEVNULL)
        context().redis.rpush(reply, b"1")

sys.exit(start_worker(sys.argv[1], [sys.argv[2]], 2, "bench-worker", app_hook=hook))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PeakRss:
    """Peak RSS of a process (and its descendants, when asked), sampled every 20 ms."""

    def __init__(self, pid: int, tree: bool = False) -> None:
        self.pid, self.tree, self.peak = pid, tree, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                p = psutil.Process(self.pid)
                self.peak = max(self.peak, p.memory_info().rss)
            except psutil.Error:
                pass
            self._stop.wait(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


async def remote_first_line(orch, spec) -> float:  # type: ignore[no-untyped-def]
    from prismq_desktop.core.events import OutputBatch

    got = asyncio.get_running_loop().create_future()
    t0 = time.perf_counter()
    run_id = orch.delay(spec)

    def on(ev) -> None:  # type: ignore[no-untyped-def]
        if isinstance(ev, OutputBatch) and ev.run_id == run_id and not got.done():
            got.set_result(time.perf_counter() - t0)

    unsub = orch.bus.subscribe_sync(on)
    try:
        took = await got
        await orch.wait(run_id)
    finally:
        unsub()
    return float(took)


def bare_first_line(app, r) -> float:  # type: ignore[no-untyped-def]
    reply = f"bench:reply:{uuid.uuid4().hex}"
    t0 = time.perf_counter()
    app.send_task("bench.first_line", args=[FIRST_LINE, reply], queue=QUEUE)
    r.blpop([reply], timeout=30)
    return time.perf_counter() - t0


async def main_async(url: str, opts: argparse.Namespace, worker_pid: int) -> tuple[list, list[str], dict]:  # type: ignore[type-arg]
    import tempfile

    from prismq_desktop.core.models import RunSpec, TargetKind
    from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
    from prismq_desktop.core.remote.config import make_app, redis_client

    figures, notes, details = [], [], {}
    home = tempfile.mkdtemp(prefix="bench-remote-")
    app = make_app(url)
    r = redis_client(url)
    reps = 5 if opts.quick else 25
    n_trivial = 10 if opts.quick else 60
    async with TaskOrchestrator(home, broker=url, max_concurrent=16) as orch:
        first = RunSpec(FIRST_LINE[0], args=tuple(FIRST_LINE[1:]), kind=TargetKind.EXECUTABLE, where=f"remote:{QUEUE}")
        await remote_first_line(orch, first)  # warm both paths
        bare_first_line(app, r)
        remote_t, bare_t = [], []
        for _ in range(reps):  # interleaved
            remote_t.append(await remote_first_line(orch, first))
            bare_t.append(await asyncio.to_thread(bare_first_line, app, r))
        figures.append(figure("submit -> first output line: median", median(remote_t), median(bare_t), unit="s", goal=1.3))
        details["first_line"] = {"remote": remote_t, "bare": bare_t}

        trivial = RunSpec(TRIVIAL[0], args=tuple(TRIVIAL[1:]), kind=TargetKind.EXECUTABLE, where=f"remote:{QUEUE}")
        t0 = time.perf_counter()
        ids = [orch.delay(trivial) for _ in range(n_trivial)]
        for rid in ids:
            await orch.wait(rid)
        remote_wall = time.perf_counter() - t0
        reply = f"bench:reply:{uuid.uuid4().hex}"
        t0 = time.perf_counter()
        for _ in range(n_trivial):
            app.send_task("bench.spawn", args=[TRIVIAL, reply], queue=QUEUE)
        for _ in range(n_trivial):
            await asyncio.to_thread(r.blpop, [reply], 30)
        bare_wall = time.perf_counter() - t0
        figures.append(figure(f"trivial runs/s at worker concurrency 2 ({n_trivial} runs)", n_trivial / remote_wall,
                              n_trivial / bare_wall, unit="/s", goal_kind="info",
                              note="goal >= 0.7x bare Celery: see the time-per-run row"))
        figures.append(figure("trivial runs: time per run", remote_wall / n_trivial, bare_wall / n_trivial, unit="s",
                              goal=1 / 0.7))
    r.close()
    app.close()

    env = dict(os.environ, PRISMQ_BROKER_URL=url)
    sizes = (10, 20) if opts.quick else (10, 50)
    firehose = os.path.join(home, "firehose.py")
    with open(firehose, "w") as fh:
        fh.write("import sys, os\nn = int(sys.argv[1]) << 20\nb = os.urandom(1 << 16)\nw = sys.stdout.buffer\n"
                 "for _ in range(n >> 16): w.write(b)\nw.flush()\n")
    for mb in sizes:
        worker_peak = PeakRss(worker_pid)
        t0 = time.perf_counter()
        proc = subprocess.Popen([PY, "-m", "prismq_desktop.cli", "--data-dir", home, "run", "--remote", QUEUE, firehose,
                                 "--", str(mb)], env=env, stdout=subprocess.DEVNULL)
        app_peak = PeakRss(proc.pid)
        proc.wait()
        wall = time.perf_counter() - t0
        a, w = app_peak.stop(), worker_peak.stop()
        figures.append(figure(f"{mb} MB firehose through Redis: throughput", mb / wall, None, unit="MB/s", goal_kind="info"))
        figures.append(figure(f"{mb} MB firehose: submitting app's peak RSS", a / 2**20, None, unit="MiB", goal_kind="info"))
        figures.append(figure(f"{mb} MB firehose: worker's peak RSS", w / 2**20, None, unit="MiB", goal_kind="info"))
        details[f"firehose_{mb}"] = {"wall": wall, "app_peak": a, "worker_peak": w, "exit": proc.returncode}
    shutil.rmtree(home, ignore_errors=True)
    notes.append("Both sides run on the same redis-server and in the same worker process (threads pool, concurrency 2).")
    notes.append("The bare tasks reply through a Redis list (the app runs without a result backend).")
    return figures, notes, details


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    opts = parser.parse_args()
    exe = shutil.which("redis-server")
    if exe is None:
        print("redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 1
    port, password = free_port(), uuid.uuid4().hex
    redis_proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password,
                                   "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    worker = None
    try:
        time.sleep(0.5)
        worker = subprocess.Popen([PY, "-c", WORKER_CODE, url, QUEUE], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from prismq_desktop.core.remote.config import redis_client

        r = redis_client(url)
        deadline = time.monotonic() + 30
        while not r.exists("prismq:worker:bench-worker"):
            if time.monotonic() > deadline:
                raise SystemExit("the worker did not start")
            time.sleep(0.1)
        time.sleep(1.0)
        r.close()
        figures, notes, details = asyncio.run(main_async(url, opts, worker.pid))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(15)
        redis_proc.terminate()
        redis_proc.wait(10)
    title = "Remote runs (Celery + Redis) against bare Celery"
    print_table(title, figures, notes)
    write_result("bench_remote", title, figures, quick=opts.quick, notes=notes, details=details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
