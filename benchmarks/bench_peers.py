"""The engine's hot path side by side with peers: trivial-binary runs at a limit of 2.

Three sides, interleaved in ONE process run, rounds rotating which goes first; the figure is
the median of the rounds (default 3 rounds of 500 runs):

- bare:   `asyncio.create_subprocess_exec("/bin/true", stdin=DEVNULL, stdout=PIPE, stderr=PIPE)`
          and `communicate()` under an `asyncio.Semaphore(2)` — the floor of a Python parent;
- prismq: a `TaskOrchestrator` (limit 2, default AUTO mode) on a temp data dir: `delay("/bin/true")`
          N times, then `wait()` for every run (each is recorded, logged and announced);
- tsp:    task-spooler (Debian `task-spooler`, a C job queue with one client process per job),
          its own server on a TS_SOCKET in a temp dir, `tsp -S 2`, N `tsp /bin/true` from one
          shell loop, then `tsp -w` on the last jobs. Missing `tsp`: the row says so loudly.

- cli:    `prismq-desktop submit /bin/true` from a shell loop into a running headless app
          (`prismq-desktop scheduler --http`), one Python client per job like tsp's C client,
          paired with tsp on the same count (`--cli N`, default 100; info: the client's start is
          what it costs).

Parent CPU per run: user+sys of THIS process (psutil `cpu_times`, children excluded) during the
prismq and the bare batches. Also: 10,000 queued runs (queue paused): the `delay()` calls and
the commit (bench_queue's `submit_engine`).

`--profile N`: cProfile of the loop process while the orchestrator runs N trivial runs, with
the count of `open()` calls and SQLite commits per run (to stderr; no figures written).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _cli_peer import cli_run  # noqa: E402
from _common import figure, median, print_table, write_result  # noqa: E402
from bench_queue import submit_engine  # noqa: E402

from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator  # noqa: E402

TRUE = shutil.which("true") or "/bin/true"
LIMIT = 2
RATE_GOAL = 0.8  # prismq runs/s ≥ 0.8× the bare loop's
CPU_GOAL = 1.3
SUBMIT_GOAL_S = 1.0


def _cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


async def bare_batch(n: int) -> float:
    gate = asyncio.Semaphore(LIMIT)

    async def one() -> int | None:
        async with gate:
            proc = await asyncio.create_subprocess_exec(
                TRUE, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            await proc.communicate()
            return proc.returncode

    t0 = time.perf_counter()
    codes = await asyncio.gather(*(one() for _ in range(n)))
    wall = time.perf_counter() - t0
    if any(c != 0 for c in codes):
        raise RuntimeError(f"bare runs failed: {sorted(set(codes), key=str)}")
    return wall


async def prismq_batch(orch: TaskOrchestrator, n: int) -> float:
    t0 = time.perf_counter()
    ids = [orch.delay(TRUE) for _ in range(n)]
    results = await asyncio.gather(*(orch.wait(i, timeout=300) for i in ids))
    wall = time.perf_counter() - t0
    bad = [r for r in results if not r.ok]
    if bad:
        raise RuntimeError(f"{len(bad)} prismq runs did not succeed, e.g. {bad[0].outcome}")
    return wall


def tsp_batch(n: int) -> float | None:
    """`tsp_run(n)` in a helper process of its own (None: no tsp).

    The engine makes this process a child subreaper, so task-spooler's daemon and the process
    it forks per job would re-parent to it and stay zombies here (the engine reaps only its
    runs' processes), slowing every later run's child scan: the helper is a subreaper itself
    and reaps them."""
    if not (shutil.which("tsp") or shutil.which("ts")):
        return None
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--tsp-helper", str(n)],
                         check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def tsp_helper(n: int) -> None:
    """Inside the helper: be a subreaper, time the batch, reap every orphan, print the time."""
    import ctypes
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    wall = tsp_run(n)
    with contextlib.suppress(ChildProcessError):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.01)
    print(wall)


def tsp_run(n: int) -> float:
    """Wall time of n `/bin/true` jobs through a fresh task-spooler server."""
    tsp = shutil.which("tsp") or shutil.which("ts") or "tsp"
    tmp = tempfile.mkdtemp(prefix="prismq-bench-tsp-")
    env = dict(os.environ, TS_SOCKET=os.path.join(tmp, "sock"), TMPDIR=tmp, TS_MAXFINISHED=str(n + 10),
               TS_SAVELIST="", TS_MAXCONN=str(n + 10))
    env.pop("TS_SAVELIST")
    try:
        subprocess.run([tsp, "-S", str(LIMIT)], env=env, check=True, capture_output=True)  # starts the server
        script = f'for i in $(seq {n}); do "{tsp}" "{TRUE}" >/dev/null; done'
        t0 = time.perf_counter()
        subprocess.run(["sh", "-c", script], env=env, check=True)
        for _ in range(LIMIT + 1):  # `-w` waits for the last job; the other slot's job may end just after
            subprocess.run([tsp, "-w"], env=env, check=False, capture_output=True)
        listing = subprocess.run([tsp, "-l"], env=env, check=True, capture_output=True, text=True).stdout
        while listing.count(" running ") or listing.count(" queued "):
            time.sleep(0.002)
            listing = subprocess.run([tsp, "-l"], env=env, check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - t0
        finished = sum(1 for line in listing.splitlines() if " finished " in line)
        if finished != n:
            raise RuntimeError(f"tsp finished {finished} of {n} jobs")
        return wall
    finally:
        subprocess.run([tsp, "-K"], env=env, check=False, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


async def measure(n: int, rounds: int, group_commit: float | None = None) -> dict[str, Any]:
    home = tempfile.mkdtemp(prefix="prismq-bench-peers-")
    slots: list[dict[str, Any]] = []
    try:
        async with TaskOrchestrator(home, max_concurrent=LIMIT) as orch:
            mode = orch.engine.executor.mode_for_run(None).value
            if group_commit is not None:
                orch.engine.group_commit = group_commit
            await prismq_batch(orch, 30)  # warm-up
            await bare_batch(30)
            for r in range(rounds):
                slot: dict[str, Any] = {}
                order = ["prismq", "bare", "tsp"]
                order = order[r % 3:] + order[: r % 3]
                for side in order:
                    c0 = _cpu()
                    if side == "prismq":
                        commits = getattr(orch.engine, "batch_commits", 0)
                        slot["prismq_s"] = await prismq_batch(orch, n)
                        slot["prismq_cpu_s"] = _cpu() - c0
                        slot["prismq_batches"] = getattr(orch.engine, "batch_commits", 0) - commits
                    elif side == "bare":
                        slot["bare_s"] = await bare_batch(n)
                        slot["bare_cpu_s"] = _cpu() - c0
                    else:
                        slot["tsp_s"] = tsp_batch(n)
                slots.append(slot)
                tsp_rate = f"{n / slot['tsp_s']:.0f}/s" if slot["tsp_s"] else "missing"
                print(f"  round {r + 1} ({'/'.join(order)}): prismq {n / slot['prismq_s']:.0f}/s, "
                      f"bare {n / slot['bare_s']:.0f}/s, tsp {tsp_rate}; parent CPU/run "
                      f"{slot['prismq_cpu_s'] / n * 1e3:.2f} vs {slot['bare_cpu_s'] / n * 1e3:.2f} ms; "
                      f"start/end batches per run {slot['prismq_batches'] / n:.2f}", flush=True)
            recorded = orch.registry.count()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"n": n, "mode": mode, "slots": slots, "recorded": recorded}


async def profile(n: int, pre: int = 0) -> str:
    home = tempfile.mkdtemp(prefix="prismq-bench-peers-prof-")
    opens = [0]
    real_open = io.open

    def counting_open(*a: Any, **k: Any) -> Any:
        opens[0] += 1
        return real_open(*a, **k)

    try:
        async with TaskOrchestrator(home, max_concurrent=LIMIT) as orch:
            await prismq_batch(orch, 20 + pre)  # warm-up (and `pre` runs already in the registry)
            commits = [0]
            in_tx = [False]

            def trace(sql: str) -> None:  # write transactions: explicit COMMITs + autocommitted writes
                word = sql.lstrip()[:8].upper()
                if word.startswith("BEGIN"):
                    in_tx[0] = True
                elif word.startswith(("COMMIT", "ROLLBACK")):
                    in_tx[0] = False
                    commits[0] += 1
                elif not in_tx[0] and word.startswith(("INSERT", "UPDATE", "DELETE")):
                    commits[0] += 1

            orch.registry._db.set_trace_callback(trace)
            import builtins
            builtins.open = counting_open
            prof = cProfile.Profile()
            prof.enable()
            wall = await prismq_batch(orch, n)
            prof.disable()
            builtins.open = real_open
            orch.registry._db.set_trace_callback(None)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    buf = io.StringIO()
    buf.write(f"{n} runs in {wall:.2f} s ({n / wall:.0f} runs/s, profiled); builtins.open per run "
              f"{opens[0] / n:.2f}, write transactions per run {commits[0] / n:.2f}\n")
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(40)
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 runs a round, 1,000 queued")
    parser.add_argument("-n", type=int, default=None, help="runs per side per round (default 500)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queued", type=int, default=None, help="queued runs for the submit figure (default 10,000)")
    parser.add_argument("--profile", type=int, default=None, metavar="N", help="profile N runs and exit")
    parser.add_argument("--pre", type=int, default=0, help="with --profile: runs done before the profiled ones")
    parser.add_argument("--group-commit", type=float, default=None, metavar="S",
                        help="the engine's group-commit window in seconds (default: the engine's)")
    parser.add_argument("--cli", type=int, default=None, metavar="N",
                        help="CLI submits into a running headless app (`prismq-desktop submit`, one process per job; "
                             "default 100, 0 to leave the row out), paired with tsp on the same N")
    parser.add_argument("--tsp-helper", type=int, default=None, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.tsp_helper:
        tsp_helper(opts.tsp_helper)
        return 0
    if opts.profile:
        print(asyncio.run(profile(opts.profile, opts.pre)), file=sys.stderr)
        return 0
    n = opts.n or (100 if opts.quick else 500)
    queued = opts.queued or (1000 if opts.quick else 10_000)
    if not (shutil.which("tsp") or shutil.which("ts")):
        print("!" * 72 + "\n!! task-spooler (`tsp`) is not installed: its row is MISSING "
              "(apt-get install task-spooler)\n" + "!" * 72, file=sys.stderr, flush=True)

    started = time.perf_counter()
    res = asyncio.run(measure(n, opts.rounds, opts.group_commit))
    submits = [asyncio.run(submit_engine(queued)) for _ in range(opts.rounds)]
    cli_n = opts.cli if opts.cli is not None else (20 if opts.quick else 100)
    cli = None
    if cli_n:
        tsp_before = tsp_batch(cli_n)
        cli = cli_run(cli_n)
        tsp_after = tsp_batch(cli_n)
        cli["tsp_s"] = [t for t in (tsp_before, tsp_after) if t]
        print(f"  CLI: {cli_n} submits in {cli['clients_s']:.2f} s, all ended at {cli['wall_s']:.2f} s "
              f"({cli_n / cli['wall_s']:.1f}/s); tsp around it "
              + ", ".join(f"{cli_n / t:.0f}/s" for t in cli["tsp_s"]), flush=True)
    elapsed = time.perf_counter() - started

    slots = res["slots"]
    prismq_rate = median([n / s["prismq_s"] for s in slots])
    bare_rate = median([n / s["bare_s"] for s in slots])
    tsp_rates = [n / s["tsp_s"] for s in slots if s["tsp_s"]]
    tsp_rate = median(tsp_rates) if tsp_rates else None
    rate_ratio = median([s["bare_s"] / s["prismq_s"] for s in slots])
    cpu_ratio = median([s["prismq_cpu_s"] / s["bare_cpu_s"] for s in slots])
    sub = sorted(submits, key=lambda r: r["total_s"])[len(submits) // 2]
    blocks = sub["block_us"]
    figures = [
        figure(f"/bin/true at limit {LIMIT}: runs/s, prismq vs bare asyncio loop", prismq_rate, bare_rate,
               unit="runs/s", ratio=rate_ratio, goal=RATE_GOAL, goal_kind="min_ratio"),
        figure(f"/bin/true at limit {LIMIT}: runs/s, prismq vs task-spooler", prismq_rate, tsp_rate,
               unit="runs/s", goal=1.0, goal_kind="min_ratio",
               note="" if tsp_rate else "task-spooler MISSING: apt-get install task-spooler"),
        figure("parent CPU per run, prismq vs bare loop", median([s["prismq_cpu_s"] / n * 1e3 for s in slots]),
               median([s["bare_cpu_s"] / n * 1e3 for s in slots]), unit="ms", ratio=cpu_ratio, goal=CPU_GOAL),
        figure(f"{queued:,} queued runs: delay() calls + the commit", sub["total_s"], None, unit="s",
               goal=SUBMIT_GOAL_S * queued / 10_000, goal_kind="max_value",
               note=f"delay() {sub['submit_s']:.3f} s + commit {sub['commit_s']:.3f} s"),
        figure(f"{queued:,} queued: µs per delay(), last block of 1,000 vs first", blocks[-1], blocks[0],
               unit="µs", goal=1.5),
    ]
    if cli is not None:
        tsp_cli = sum(cli["tsp_s"]) / len(cli["tsp_s"]) if cli["tsp_s"] else None
        figures.append(figure(
            f"CLI: {cli_n} `prismq-desktop submit` into a running app vs {cli_n} `tsp` clients (info)",
            cli_n / cli["wall_s"], cli_n / tsp_cli if tsp_cli else None, unit="runs/s", goal_kind="info",
            note=f"a Python client process per job: {cli['clients_s'] / cli_n * 1e3:.0f} ms each"))
    notes = [
        f"{opts.rounds} rounds of {n} `{TRUE}` runs per side, order rotating each round; medians of the rounds; "
        f"{elapsed:.0f} s in all. PrismQ mode {res['mode']}; {res['recorded']} runs recorded in its registry.",
        "bare = create_subprocess_exec + communicate() under Semaphore(2); tsp = task-spooler with its own server "
        "(`tsp -S 2`, one client process per job from a shell loop); prismq = TaskOrchestrator.delay + wait.",
        "CLI row: `prismq-desktop scheduler --http` (the window's headless twin) on a temp data dir, a shell loop of "
        "`prismq-desktop submit /bin/true` (one Python process per job, as tsp has one C client per job), until every "
        "run is recorded as ended; tsp on the same count just before and after (their mean).",
        "runs/s ratio is prismq/bare (higher is better; goal ≥ 0.8); parent CPU = user+sys of this process.",
        f"submit: {opts.rounds} rounds of {queued:,} `delay()` with the queue paused; the middle round by total.",
        "rounds: " + "; ".join(
            f"prismq {n / s['prismq_s']:.0f}/s bare {n / s['bare_s']:.0f}/s tsp "
            + (f"{n / s['tsp_s']:.0f}/s" if s["tsp_s"] else "—") for s in slots),
    ]
    title = "Trivial binary side by side: PrismQ vs a bare asyncio loop vs task-spooler"
    print_table(title, figures, notes)
    path = write_result("bench_peers", title, figures, quick=opts.quick, notes=notes,
                        details={"slots": slots, "submits": [{k: v for k, v in s.items() if k != "profile"}
                                                             for s in submits]})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
