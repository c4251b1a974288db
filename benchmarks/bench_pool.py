"""Warm worker pool vs fresh spawns: first-line latency and tasks/s, trivial and import-heavy scripts.

Both sides run the same script through the same `RunEngine` code path; only the executor differs:

- pool:  `RunEngine(home, executor=ResourcePool(size=2))`, whose fork servers preloaded asyncio,
         json, sqlite3, decimal and email (among `DEFAULT_PRELOAD`);
- spawn: `RunEngine(home)`, the default `SubprocessWrapper` (ASYNC mode): a fresh interpreter per run.

Scripts: `tests/scripts/pool_trivial.py` (`print("ready")`) and `tests/scripts/pool_heavy.py`
(imports asyncio, json, sqlite3, decimal, email, then prints "ready").

- first line: time from just before `engine.start(spec)` until a `subscribe_sync` callback sees
  the `OutputBatch` completing the line (bench_spawn's probe); the run is then awaited outside
  the timing. Pool and spawn samples alternate (A/B, then B/A) after warm-ups.
- tasks/s: a round is N runs with 2 in flight at once (the pool's size; the spawn side gets the
  same 2 slots), timed from the first start to the last end; pool and spawn rounds alternate.

The raw baseline (`create_subprocess_exec` + `readline`, no engine) is shown for information.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import child_env, figure, median, percentile, print_table, write_result  # noqa: E402
from bench_spawn import FirstLine, raw_once  # noqa: E402

from prismq_desktop.core import Launch, OutputCapture, RunEngine, RunMode, RunSpec, resolve  # noqa: E402
from prismq_desktop.core.pool import DEFAULT_PRELOAD, ResourcePool  # noqa: E402
from prismq_desktop.core.process import Executor, Job, SubprocessWrapper  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "tests", "scripts")
SLOTS = 2
WORKLOADS = [
    # label, script, goal (minimum speed-up), the imports the raw baseline does
    ("trivial script", "pool_trivial.py", 5.0),
    ("import-heavy script", "pool_heavy.py", 15.0),
]
FIRST_LINE_GOAL_MS = 4.0  # issue #17: the pool's first line, median
#: A pool round has this many times the spawn round's runs, so that it lasts about as long
#: (40 pooled runs took ~0.25 s: one other process's burst on this shared machine swung it 3x).
POOL_ROUND_FACTOR = 4


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_now(pool: ResourcePool) -> tuple[float, float, float]:
    """CPU seconds so far: this process, the pool's fork servers, and their reaped children (Linux /proc)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    servers = children = 0
    for worker in pool._workers:
        try:
            with open(f"/proc/{worker.pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        servers += int(fields[11]) + int(fields[12])
        children += int(fields[13]) + int(fields[14])
    return me.ru_utime + me.ru_stime, servers / _TICK, children / _TICK


async def cpu_round(pool: ResourcePool, n: int, rounds: list[tuple[float, float, float]], coro: Any) -> float:
    """Run `coro` (a tasks/s round of `n` pooled runs), noting its CPU per run (parent, servers, children)."""
    before = cpu_now(pool)
    workers = {w.pid for w in pool._workers}
    tps = await coro
    after = cpu_now(pool)
    if {w.pid for w in pool._workers} == workers:  # (a worker replaced mid-round would skew the sums)
        rounds.append(tuple((a - b) / n * 1000 for a, b in zip(after, before, strict=True)))  # type: ignore[arg-type]
    return float(tps)


def make_spec(script: str) -> RunSpec:
    return RunSpec(target=os.path.join(SCRIPTS, script), interpreter=sys.executable)


async def first_line(engine: RunEngine, probe: FirstLine, spec: RunSpec) -> float:
    t0 = time.perf_counter()
    handle = await engine.start(spec, mode=RunMode.ASYNC)
    t1 = await probe.wait_for(handle.id)
    run = await handle.wait(timeout=60)
    if run.exit_code != 0:
        raise RuntimeError(f"run {handle.id} ended {run.outcome}")
    return t1 - t0


async def round_tps(engine: RunEngine, spec: RunSpec, n: int) -> float:
    slots = asyncio.Semaphore(SLOTS)

    async def one() -> None:
        async with slots:
            handle = await engine.start(spec, mode=RunMode.ASYNC)
            run = await handle.wait(timeout=60)
            if run.exit_code != 0:
                raise RuntimeError(f"run {handle.id} ended {run.outcome}")

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0)


async def round_tps_executor(executor: Executor, launch: Launch, n: int) -> float:
    """The same, straight through the executor: no registry, no log file, no events (the engine's share left out)."""
    slots = asyncio.Semaphore(SLOTS)

    async def one(i: int) -> None:
        async with slots:
            job = Job(run_id=i, launch=launch, capture=OutputCapture(None))
            outcome = await executor.execute(job, RunMode.ASYNC)
            if outcome.exit_code != 0:
                raise RuntimeError(f"executor run ended {outcome}")

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - t0)


async def measure(n: int, warmup: int, rounds: int, per_round: int) -> dict[str, Any]:
    results: dict[str, Any] = {"load": os.getloadavg()}
    home = tempfile.mkdtemp(prefix="prismq-bench-pool-")
    try:
        pool = ResourcePool(size=SLOTS, preload=DEFAULT_PRELOAD, max_runs_per_worker=100_000)
        async with (
            pool,
            RunEngine(os.path.join(home, "pool"), executor=pool) as pooled,
            RunEngine(os.path.join(home, "spawn")) as spawned,
        ):
            if not await pool.wait_ready(60):
                raise RuntimeError(f"the pool's workers did not start: {pool.stats()}")
            probes = {"pool": FirstLine(), "spawn": FirstLine()}
            pooled.bus.subscribe_sync(probes["pool"])
            spawned.bus.subscribe_sync(probes["spawn"])
            env = child_env()
            for label, script, _goal in WORKLOADS:
                spec = make_spec(script)
                if pool.why_not_pooled(resolve(spec)) is not None:
                    raise RuntimeError("the benchmark script would not run in the pool")
                lat: dict[str, list[float]] = {"pool": [], "spawn": [], "raw": []}
                for _ in range(warmup):
                    await first_line(pooled, probes["pool"], spec)
                    await first_line(spawned, probes["spawn"], spec)
                    await raw_once((os.path.join(SCRIPTS, script),), env, False)
                for i in range(n):
                    order = ("pool", "spawn", "raw") if i % 2 == 0 else ("raw", "spawn", "pool")
                    for side in order:
                        if side == "pool":
                            lat["pool"].append(await first_line(pooled, probes["pool"], spec))
                        elif side == "spawn":
                            lat["spawn"].append(await first_line(spawned, probes["spawn"], spec))
                        else:
                            lat["raw"].append(await raw_once((os.path.join(SCRIPTS, script),), env, False))
                tps: dict[str, list[float]] = {"pool": [], "spawn": [], "pool_executor": [], "spawn_executor": []}
                cpu: dict[str, list[tuple[float, float, float]]] = {"engine": [], "executor": []}
                await round_tps(pooled, spec, max(2, per_round // 4))  # warm-up
                await round_tps(spawned, spec, max(2, per_round // 4))
                for r in range(rounds):
                    sides = ("pool", "spawn") if r % 2 == 0 else ("spawn", "pool")
                    for side in sides:
                        n_side = per_round * POOL_ROUND_FACTOR if side == "pool" else per_round
                        if side == "pool":
                            tps[side].append(await cpu_round(pool, n_side, cpu["engine"], round_tps(pooled, spec, n_side)))
                        else:
                            tps[side].append(await round_tps(spawned, spec, n_side))
                launch = resolve(spec)
                wrapper = SubprocessWrapper()
                for r in range(rounds):
                    sides = ("pool", "spawn") if r % 2 == 0 else ("spawn", "pool")
                    for side in sides:
                        executor: Executor = pool if side == "pool" else wrapper
                        n_side = per_round * POOL_ROUND_FACTOR if side == "pool" else per_round
                        got = round_tps_executor(executor, launch, n_side)
                        if side == "pool":
                            tps[f"{side}_executor"].append(await cpu_round(pool, n_side, cpu["executor"], got))
                        else:
                            tps[f"{side}_executor"].append(await got)
                results[label] = {"latency_s": lat, "tasks_per_s": tps, "cpu_ms": cpu}
            results["pool_stats"] = pool.stats()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples, for a smoke run")
    parser.add_argument("-n", type=int, default=None, help="first-line samples per side (default 40, quick 8)")
    opts = parser.parse_args()
    n = opts.n or (8 if opts.quick else 40)
    warmup = 1 if opts.quick else 3
    rounds = 2 if opts.quick else 6
    per_round = 10 if opts.quick else 40

    started = time.perf_counter()
    results = asyncio.run(measure(n, warmup, rounds, per_round))
    elapsed = time.perf_counter() - started

    figures = []
    cpu_notes: list[str] = []
    details: dict[str, Any] = {"n": n, "warmup": warmup, "rounds": rounds, "per_round": per_round, "slots": SLOTS}
    for label, _script, goal in WORKLOADS:
        lat = {k: [x * 1000 for x in v] for k, v in results[label]["latency_s"].items()}
        tps = results[label]["tasks_per_s"]
        details[label] = {"latency_ms": lat, "tasks_per_s": tps}
        pool_ms, spawn_ms = median(lat["pool"]), median(lat["spawn"])
        pool_tps, spawn_tps = median(tps["pool"]), median(tps["spawn"])
        figures.append(
            figure(f"{label}: first line, median", pool_ms, spawn_ms, unit="ms", goal=FIRST_LINE_GOAL_MS,
                   goal_kind="max_value", note=f"goal: at most {FIRST_LINE_GOAL_MS:g} ms")
        )
        figures.append(
            figure(f"{label}: first line, p90", percentile(lat["pool"], 90), percentile(lat["spawn"], 90), unit="ms",
                   goal_kind="info")
        )
        figures.append(figure(f"{label}: first line speed-up (×)", spawn_ms / pool_ms, None, goal_kind="info"))
        figures.append(
            figure(f"{label}: tasks/s, {SLOTS} in flight", pool_tps, spawn_tps, unit="/s", goal=goal, goal_kind="min_ratio",
                   note=f"goal: at least {goal:g}x the tasks/s of fresh spawns")
        )
        figures.append(
            figure(f"{label}: time per task, {SLOTS} in flight", 1000 / pool_tps, 1000 / spawn_tps, unit="ms", goal_kind="info")
        )
        figures.append(
            figure(f"{label}: tasks/s, executor only (no registry/log/events)", median(tps["pool_executor"]),
                   median(tps["spawn_executor"]), unit="/s", goal_kind="info")
        )
        figures.append(
            figure(f"{label}: pool first line vs raw spawn (no engine)", pool_ms, median(lat["raw"]), unit="ms",
                   goal_kind="info")
        )
        for where, rows in results[label]["cpu_ms"].items():
            if not rows:
                continue
            parts = [median([r[i] for r in rows]) for i in range(3)]
            details[label][f"cpu_ms_{where}"] = rows
            cpu_notes.append(f"{label}, {where}: CPU per pooled run app / fork servers / children = "
                             + " / ".join(f"{x:.2f}" for x in parts) + f" ms (median of {len(rows)} rounds)")
            figures.append(
                figure(f"{label}: CPU per pooled run ({where}): app / fork servers / children, total", sum(parts), None,
                       unit="ms", goal_kind="info",
                       note=" / ".join(f"{x:.2f}" for x in parts) + " ms (median rounds; /proc ticks of 10 ms over the round)")
            )
    stats = results["pool_stats"]
    figures.append(figure("pool start latency (request → child pid), mean", stats.start_latency_mean_ms, None, unit="ms",
                          goal_kind="info"))
    figures.append(figure("pool start latency (request → child pid), p95", stats.start_latency_p95_ms, None, unit="ms",
                          goal_kind="info"))
    details["pool_stats"] = {
        "runs_served": stats.runs_served,
        "fallback_runs": stats.fallback_runs,
        "crashes": stats.crashes,
        "recycled": stats.recycled,
    }
    notes = [
        f"{n} first-line samples per side after {warmup} warm-ups, pool / spawn / raw alternating (then reversed); "
        f"{rounds} throughput rounds per side ({per_round * POOL_ROUND_FACTOR} pooled runs, {per_round} spawned, "
        f"{SLOTS} in flight), alternating; tasks/s = the median round; {elapsed:.1f} s in all.",
        "engine = the pool (ResourcePool of 2 fork servers, DEFAULT_PRELOAD); raw baseline = RunEngine's default "
        "executor spawning a fresh interpreter per run; both through the same RunEngine path (registry, log, events).",
        f"Goals (issue #17): first line median ≤ {FIRST_LINE_GOAL_MS:g} ms; tasks/s at least "
        + " / ".join(f"{g:g}×" for _l, _s, g in WORKLOADS)
        + " those of fresh spawns (trivial / import-heavy). The 'time per task' rows are 1 / (tasks/s).",
        f"Load average (1 min) at the start / end: {results['load'][0]:.2f} / {os.getloadavg()[0]:.2f} "
        "(a 2-core machine shared with other work: figures are ratios within one run).",
        "'raw spawn (no engine)': `create_subprocess_exec` + `readline()`, no registry/log/events — the floor of a fresh start.",
        "'executor only': `ResourcePool.execute` vs `SubprocessWrapper.execute` on bare Jobs (capture without a log file), "
        "same rounds: what the engine's own per-run work (registry, log, events) costs the pool's throughput.",
        "'CPU per pooled run': over each pooled tasks/s round, this process's CPU (getrusage) and the fork servers' own "
        "and reaped children's (/proc/PID/stat utime+stime, cutime+cstime), divided by the round's runs; the row's "
        "note gives the three parts.",
        f"Interpreter: {sys.executable}.",
        *cpu_notes,
    ]
    title = "Warm worker pool vs fresh spawns"
    print_table(title, figures, notes)
    path = write_result("pool", title, figures, quick=opts.quick, notes=notes, details=details)
    # run_all.py looks for out/<benchmark file name>.json: write that name too.
    write_result("bench_pool", title, figures, quick=opts.quick, notes=notes, details=details)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
