"""TaskOrchestrator: the cost of queueing 10,000 runs, and the throughput of trivial runs.

a. Submitting: a fresh `TaskOrchestrator` on a temp data dir with its queue paused (nothing
   starts); `orch.delay(sys.executable, ["-c", "pass"])` 10,000 times in one loop turn, timed
   per block of 1,000. Then one `await asyncio.sleep(0)` lets the engine commit the burst (one
   transaction), and the registry must count 10,000 queued runs. Raw baseline, in the same
   rounds (alternating which goes first): 10,000 plain `sqlite3` INSERTs of a similar row (the
   runs table's columns) with `executemany` in one transaction, on a fresh WAL database with
   the registry's pragmas.
b. Throughput of trivial runs: N runs of `sys.executable -S -c pass` through `orch.delay()` at
   the orchestrator's default concurrency limit, timed from the first `delay()` until every
   `orch.wait()` returned; raw = `asyncio.create_subprocess_exec` of the same command with the
   same environment and pipes (stdout/stderr drained by `communicate()`), under an
   `asyncio.Semaphore` of the same limit. Interleaved rounds (A/B, then B/A), paired ratios.

Diagnosis: `python benchmarks/bench_queue.py --profile-submit` prints a cProfile of one
submission burst (delay × N + the commit) to stderr; `--profile-throughput -n 200` one of the
loop process while the orchestrator runs 200 trivial runs.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import child_env, figure, median, print_table, write_result  # noqa: E402

from prismq_desktop.core import RunSpec  # noqa: E402
from prismq_desktop.core.orchestrator.orchestrator import DEFAULT_MAX_CONCURRENT, TaskOrchestrator  # noqa: E402
from prismq_desktop.core.store.registry import RunQuery, RunRegistry  # noqa: E402
from prismq_desktop.core.store.rows import run_values  # noqa: E402
from prismq_desktop.core.store.schema import MIGRATIONS  # noqa: E402

SUBMIT_GOAL_S = 1.0  # 10,000 delay() calls
FLAT_GOAL = 1.5  # per-run cost of the last block of 1,000 / the first
BLOCK = 1000
TRIVIAL = ("-S", "-c", "pass")


# ---------------------------------------------------------------------------------------------- a. submitting
class GcClock:
    """Time spent in the cyclic garbage collector, per generation, via gc.callbacks."""

    def __init__(self) -> None:
        self.total = 0.0
        self.full: list[float] = []  # each generation-2 collection, seconds
        self.counts = [0, 0, 0]
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        took = time.perf_counter() - self._t0
        self.total += took
        self.counts[info["generation"]] += 1
        if info["generation"] == 2:
            self.full.append(took)

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


async def submit_engine(n: int, profile: bool = False) -> dict[str, Any]:
    """delay() n times with the queue paused; per-block times, the commit, and the registry count."""
    home = tempfile.mkdtemp(prefix="prismq-bench-queue-")
    profiler = cProfile.Profile() if profile else None
    clock = GcClock()
    try:
        orch = TaskOrchestrator(home)
        orch.pause_queue()
        delay = orch.delay
        exe = sys.executable
        args = ["-c", "pass"]
        blocks: list[float] = []
        blocks_gc: list[float] = []  # of each block's time, how much the cyclic GC took
        ids: list[int] = []
        gc.collect()
        tracked_before = len(gc.get_objects())
        if profiler is not None:
            profiler.enable()
        with clock:
            t0 = time.perf_counter()
            done = 0
            while done < n:
                size = min(BLOCK, n - done)
                gc_before = clock.total
                tb = time.perf_counter()
                for _ in range(size):
                    ids.append(delay(exe, args))
                blocks.append((time.perf_counter() - tb) / size)
                blocks_gc.append((clock.total - gc_before) / size)
                done += size
            t_submitted = time.perf_counter()
            gc_submit, full_submit = clock.total, list(clock.full)
            await asyncio.sleep(0)  # the engine's flush_created runs: one INSERT transaction for the burst
            t_committed = time.perf_counter()
        if profiler is not None:
            profiler.disable()
        tracked = len(gc.get_objects())
        count = orch.registry.count(RunQuery.of("queued"))
        unique = len(set(ids))
        t_close = time.perf_counter()
        await orch.close()  # cancels the n queued runs
        close_s = time.perf_counter() - t_close
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result = {
        "n": n,
        "submit_s": t_submitted - t0,
        "commit_s": t_committed - t_submitted,
        "total_s": t_committed - t0,
        "close_s": close_s,
        "block_us": [b * 1e6 for b in blocks],
        "block_gc_us": [b * 1e6 for b in blocks_gc],
        "gc_submit_s": gc_submit,
        "gc_commit_s": clock.total - gc_submit,
        "gc_full_submit_ms": [x * 1e3 for x in full_submit],
        "gc_counts": clock.counts,
        "gc_tracked_per_run": (tracked - tracked_before) / n,
        "registry_queued": count,
        "unique_ids": unique,
    }
    if profiler is not None:
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(30)
        result["profile"] = buf.getvalue()
    return result


def sample_row() -> tuple[list[str], list[Any]]:
    """The column names and the values of one queued run as the registry stores it (a similar row for the raw side)."""
    home = tempfile.mkdtemp(prefix="prismq-bench-row-")
    try:
        reg = RunRegistry(os.path.join(home, "runs.db"))
        spec = RunSpec(target=sys.executable, args=("-c", "pass"))
        run = reg.new_run(spec, mode="async", priority=2, pattern="fire_and_forget", options={"retry": {"max_retries": 0}})
        values = run_values(run)
        reg.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return list(values), list(values.values())


def submit_raw(n: int, columns: list[str], template: list[Any]) -> dict[str, Any]:
    """n plain INSERTs of a similar row with executemany in one transaction (rows built inside the timing)."""
    home = tempfile.mkdtemp(prefix="prismq-bench-raw-")
    try:
        db = sqlite3.connect(os.path.join(home, "raw.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        for script in MIGRATIONS:  # the same table, indexes and triggers as the registry
            db.executescript(script)
        sql = f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        i_id, i_created, i_log = columns.index("id"), columns.index("created_at"), columns.index("log_path")
        t0 = time.perf_counter()
        rows = []
        for run_id in range(1, n + 1):
            row = list(template)
            row[i_id], row[i_created], row[i_log] = run_id, time.time(), f"{home}/logs/run-{run_id}.log"
            rows.append(row)
        db.execute("BEGIN")
        db.executemany(sql, rows)
        db.execute("COMMIT")
        wall = time.perf_counter() - t0
        count = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        db.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if count != n:
        raise RuntimeError(f"raw insert stored {count} rows, not {n}")
    return {"n": n, "total_s": wall}


def measure_submit(n: int, rounds: int) -> dict[str, Any]:
    """Engine and raw bursts alternating; each engine burst runs on a fresh event loop (asyncio.run)."""
    columns, template = sample_row()
    asyncio.run(submit_engine(min(n, 1000)))  # warm-up (imports, first database)
    submit_raw(min(n, 1000), columns, template)
    engine: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    for r in range(rounds):
        if r % 2 == 0:
            engine.append(asyncio.run(submit_engine(n)))
            raw.append(submit_raw(n, columns, template))
        else:
            raw.append(submit_raw(n, columns, template))
            engine.append(asyncio.run(submit_engine(n)))
        e = engine[-1]
        print(
            f"  submit round {r + 1}: delay×{n} {e['submit_s']:.3f} s + commit {e['commit_s']:.3f} s; "
            f"raw {raw[-1]['total_s']:.3f} s; blocks {e['block_us'][0]:.0f} → {e['block_us'][-1]:.0f} µs/run; "
            f"GC {e['gc_submit_s']:.3f} s; close {e['close_s']:.2f} s",
            flush=True,
        )
    return {"engine": engine, "raw": raw}


# ---------------------------------------------------------------------------------------------- b. throughput
FAILURES: list[str] = []  # outcomes of engine runs that did not succeed (reported as a figure, not fatal)


async def batch_engine(orch: TaskOrchestrator, n: int) -> float:
    t0 = time.perf_counter()
    ids = [orch.delay(sys.executable, list(TRIVIAL)) for _ in range(n)]
    results = await asyncio.gather(*(orch.wait(i, timeout=120) for i in ids))
    wall = time.perf_counter() - t0
    for res in results:
        if not res.ok:
            why = f"{res.outcome.kind.value}: {res.outcome.message}" if res.outcome else res.status.value
            FAILURES.append(f"run {res.run_id}: {why}")
            print(f"  engine run did not succeed: {FAILURES[-1]}", flush=True)
    return wall


async def batch_raw(n: int, limit: int, env: dict[str, str]) -> float:
    gate = asyncio.Semaphore(limit)

    async def one() -> int | None:
        async with gate:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *TRIVIAL,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            await proc.communicate()
            return proc.returncode

    t0 = time.perf_counter()
    codes = await asyncio.gather(*(one() for _ in range(n)))
    wall = time.perf_counter() - t0
    if any(c != 0 for c in codes):
        raise RuntimeError(f"raw runs failed: {sorted(set(codes), key=str)}")
    return wall


async def measure_throughput(n: int, rounds: int) -> dict[str, Any]:
    env = child_env()
    home = tempfile.mkdtemp(prefix="prismq-bench-tput-")
    slots: list[dict[str, float]] = []
    try:
        async with TaskOrchestrator(home) as orch:
            limit = orch.max_concurrent
            mode = orch.engine.executor.mode_for_run(None).value
            await batch_engine(orch, min(n, 20))  # warm-up
            await batch_raw(min(n, 20), limit, env)
            FAILURES.clear()  # only the measured rounds count
            for r in range(rounds):
                c0 = os.times()
                if r % 2 == 0:
                    eng = await batch_engine(orch, n)
                    c1 = os.times()
                    raw = await batch_raw(n, limit, env)
                    c2 = os.times()
                    eng_cpu, raw_cpu = _cpu(c0, c1), _cpu(c1, c2)
                else:
                    raw = await batch_raw(n, limit, env)
                    c1 = os.times()
                    eng = await batch_engine(orch, n)
                    c2 = os.times()
                    raw_cpu, eng_cpu = _cpu(c0, c1), _cpu(c1, c2)
                slots.append({"engine_s": eng, "raw_s": raw, "engine_cpu_s": eng_cpu, "raw_cpu_s": raw_cpu})
                print(
                    f"  throughput round {r + 1}: engine {n / eng:.0f} runs/s, raw {n / raw:.0f} runs/s "
                    f"(parent CPU/run {eng_cpu / n * 1e3:.2f} vs {raw_cpu / n * 1e3:.2f} ms)",
                    flush=True,
                )
            registry_runs = orch.registry.count()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"n": n, "limit": limit, "mode": mode, "slots": slots, "registry_runs": registry_runs, "failures": list(FAILURES)}


async def profile_throughput(n: int) -> str:
    """cProfile of the loop process while an orchestrator runs n trivial runs (after a warm-up)."""
    home = tempfile.mkdtemp(prefix="prismq-bench-tput-prof-")
    try:
        async with TaskOrchestrator(home) as orch:
            await batch_engine(orch, 10)
            profiler = cProfile.Profile()
            profiler.enable()
            wall = await batch_engine(orch, n)
            profiler.disable()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    buf = io.StringIO()
    buf.write(f"{n} runs in {wall:.2f} s ({n / wall:.0f} runs/s, profiled)\n")
    pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(35)
    return buf.getvalue()


def _cpu(a: os.times_result, b: os.times_result) -> float:
    """User+sys CPU of this process (the loop: engine or raw asyncio), children excluded."""
    return (b.user - a.user) + (b.system - a.system)


# ---------------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--runs", type=int, default=None, help="runs to queue (default 10,000, quick 2,000)")
    parser.add_argument("--submit-rounds", type=int, default=None, help="default 5, quick 1")
    parser.add_argument("-n", type=int, default=None, help="trivial runs per side per round (default 200, quick 40)")
    parser.add_argument("--rounds", type=int, default=None, help="throughput rounds (default 5, quick 1)")
    parser.add_argument("--profile-submit", action="store_true", help="cProfile one submission burst and exit")
    parser.add_argument("--profile-throughput", action="store_true", help="cProfile -n trivial runs through the orchestrator")
    opts = parser.parse_args()
    n_submit = opts.runs or (2000 if opts.quick else 10_000)
    submit_rounds = opts.submit_rounds or (1 if opts.quick else 5)
    n_tput = opts.n or (40 if opts.quick else 200)
    tput_rounds = opts.rounds or (1 if opts.quick else 5)

    if opts.profile_submit:
        res = asyncio.run(submit_engine(n_submit, profile=True))
        print(res.pop("profile"), file=sys.stderr)
        print(json.dumps({k: v for k, v in res.items() if k != "block_us"}))
        return 0

    if opts.profile_throughput:
        print(asyncio.run(profile_throughput(n_tput)), file=sys.stderr)
        return 0

    started = time.perf_counter()
    sub = measure_submit(n_submit, submit_rounds)
    t_sub = time.perf_counter() - started
    tput = asyncio.run(measure_throughput(n_tput, tput_rounds))
    elapsed = time.perf_counter() - started

    eng, raw = sub["engine"], sub["raw"]
    nblocks = len(eng[0]["block_us"])
    first_us = median([e["block_us"][0] for e in eng])
    last_us = median([e["block_us"][-1] for e in eng])
    flat_ratio = median([e["block_us"][-1] / e["block_us"][0] for e in eng])
    per_block = [median([e["block_us"][i] for e in eng]) for i in range(nblocks)]
    nogc = [[b - g for b, g in zip(e["block_us"], e["block_gc_us"], strict=True)] for e in eng]
    submit_s = median([e["submit_s"] for e in eng])
    total_s = median([e["total_s"] for e in eng])
    raw_s = median([x["total_s"] for x in raw])
    k = f"{n_submit:,}"
    figures = [
        figure(
            f"submit {k} runs (queue paused): delay() total", submit_s, None, unit="s", goal=SUBMIT_GOAL_S, goal_kind="max_value"
        ),
        figure(
            f"submit: µs per delay(), last block of {BLOCK:,} vs first",
            last_us,
            first_us,
            unit="µs",
            goal=FLAT_GOAL,
            ratio=flat_ratio,
            note="ratio = median over rounds of last/first",
        ),
        figure("submit: slowest block (median over rounds) vs first", max(per_block), first_us, unit="µs", goal_kind="info"),
        figure(
            "submit: µs per delay() without GC pauses, last block vs first",
            median([b[-1] for b in nogc]),
            median([b[0] for b in nogc]),
            unit="µs",
            goal_kind="info",
            ratio=median([b[-1] / b[0] for b in nogc]),
        ),
        figure(
            f"submit: cyclic GC time within the {k} delay() calls",
            median([e["gc_submit_s"] for e in eng]),
            submit_s,
            unit="s",
            goal_kind="info",
            note="'raw baseline' column = the delay() total; ratio = share",
        ),
        figure(
            "submit: longest full (gen 2) collection",
            median([max(e["gc_full_submit_ms"], default=0.0) for e in eng]),
            None,
            unit="ms",
            goal_kind="info",
        ),
        figure(
            "submit: GC-tracked objects kept per queued run",
            median([e["gc_tracked_per_run"] for e in eng]),
            None,
            goal_kind="info",
        ),
        figure(
            f"submit: commit of the burst vs {k} raw sqlite3 INSERTs (executemany)",
            median([e["commit_s"] for e in eng]),
            raw_s,
            unit="s",
            goal_kind="info",
            ratio=median([e["commit_s"] / x["total_s"] for e, x in zip(eng, raw, strict=True)]),
        ),
        figure(
            f"submit: delay() + commit vs {k} raw sqlite3 INSERTs",
            total_s,
            raw_s,
            unit="s",
            goal_kind="info",
            ratio=median([e["total_s"] / x["total_s"] for e, x in zip(eng, raw, strict=True)]),
        ),
        figure(
            f"close() with {k} runs still queued (cancels each), per run",
            median([e["close_s"] / n_submit * 1e6 for e in eng]),
            None,
            unit="µs",
            goal_kind="info",
            note="outside the submit timing",
        ),
        figure(
            "submit: runs in the registry after the commit",
            min(e["registry_queued"] for e in eng),
            n_submit,
            goal_kind="equal",
            note="smallest over rounds; status queued",
        ),
        figure("submit: distinct run ids returned", min(e["unique_ids"] for e in eng), n_submit, goal_kind="equal"),
    ]
    n = tput["n"]
    slots = tput["slots"]
    eng_rate = median([n / s["engine_s"] for s in slots])
    raw_rate = median([n / s["raw_s"] for s in slots])
    figures += [
        figure(
            f"trivial runs (python -S -c pass), {tput['limit']} slots: runs/s",
            eng_rate,
            raw_rate,
            unit="runs/s",
            goal_kind="info",
            ratio=median([s["raw_s"] / s["engine_s"] for s in slots]),
            note="ratio = engine rate / raw rate, median of paired rounds",
        ),
        figure(
            f"trivial runs: wall time for {n}",
            median([s["engine_s"] for s in slots]),
            median([s["raw_s"] for s in slots]),
            unit="s",
            goal_kind="info",
            ratio=median([s["engine_s"] / s["raw_s"] for s in slots]),
        ),
        figure(
            f"trivial runs: engine runs that did not succeed (of {n * tput_rounds} measured)",
            len(tput["failures"]),
            0,
            goal_kind="equal",
            note="; ".join(tput["failures"][:3]),
        ),
        figure(
            "trivial runs: parent process CPU per run",
            median([s["engine_cpu_s"] / n * 1e3 for s in slots]),
            median([s["raw_cpu_s"] / n * 1e3 for s in slots]),
            unit="ms",
            goal_kind="info",
            note="user+sys of the benchmark process (the loop), children excluded",
        ),
    ]
    notes = [
        f"Submitting: {submit_rounds} round(s) of {k} `orch.delay(sys.executable, ['-c', 'pass'])` on a fresh "
        "TaskOrchestrator (fresh temp data dir) with `pause_queue()`, all in one loop turn, then one `await asyncio.sleep(0)` "
        f"for the commit; engine and raw alternate which goes first. Per-block figures are µs per delay() in blocks of "
        f"{BLOCK:,} (medians over rounds; the goal compares the last block with the first). Raw: {k} rows with the runs "
        "table's columns (same schema, WAL, synchronous=NORMAL), built and inserted with one `executemany` in one "
        "transaction; ratio engine/raw is information only.",
        "GC rows (information, for diagnosis): time spent in Python's cyclic garbage collector during the delay() calls "
        "(gc.callbacks; one gc.collect() before each burst), the longest full collection, and how many GC-tracked objects "
        "each queued run keeps alive; 'without GC pauses' subtracts each block's collector time from it.",
        "Context, not measured here: pueue is reported at ≈ 2.3 s to queue 500 tasks (one CLI call per task, through its "
        "daemon); the measured-limits note has ≈ 0.23 s for 100k SQLite rows in one executemany transaction.",
        f"Throughput: {tput_rounds} round(s) of {n} runs per side of `{os.path.basename(sys.executable)} -S -c pass`, engine "
        f"and raw alternating (A/B then B/A) after a warm-up of each; the limit is TaskOrchestrator's default "
        f"max_concurrent = {DEFAULT_MAX_CONCURRENT} (max(2, cpu_count)); engine mode {tput['mode']}. Engine: one "
        "orchestrator for all rounds, all runs submitted with delay() then awaited with wait(). Raw: "
        "`asyncio.create_subprocess_exec` (stdin DEVNULL, stdout/stderr PIPE, `communicate()`) under a Semaphore of the "
        "same size; both give the child the engine's child environment (PYTHONUNBUFFERED=1, PYTHONUTF8=1).",
        f"{t_sub:.0f} s submitting, {elapsed - t_sub:.0f} s throughput, {elapsed:.0f} s in all.",
    ]
    if tput["failures"]:
        notes.append(
            f"{len(tput['failures'])} measured engine run(s) did not succeed (their time still counts): "
            + "; ".join(tput["failures"][:3])
        )
    title = f"Orchestrator queue: submit {k} runs, trivial-run throughput"
    print_table(title, figures, notes)
    details = {"submit": sub, "submit_block_us_median": per_block, "throughput": tput}
    path = write_result("bench_queue", title, figures, quick=opts.quick, notes=notes, details=details)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
