"""Soak: 5 schedules firing every 1–2 s for 10 minutes; memory, fds and threads must stay flat.

Engine: a real TaskOrchestrator + Scheduler on a temp data dir; 5 interval schedules (1.0,
1.25, 1.5, 1.75 and 2.0 s) each start `python -S -c pass` (overlap allow, limit 4), so about
3.7 runs a second go through the whole stack: registry rows, log files, the queue, the
monitor, events. This process is sampled once a second with psutil: RSS, open fds, threads.

After a warm-up (the first 20 %: caches, the SQLite page cache and the allocator settle), the
median of the last 10 % of the samples is compared with the median of the 10 % right after the
warm-up ("raw baseline" column): RSS may grow at most 5 %, open fds and threads not at all.
Then the schedules stop, and once idle the orchestrator must hold nothing per run.

    python benchmarks/bench_soak.py            # 10 minutes
    python benchmarks/bench_soak.py --quick    # ~60 s
    python benchmarks/bench_soak.py --minutes 3
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import psutil  # noqa: E402
from _common import figure, print_table, write_result  # noqa: E402

from prismq_desktop.core import RunSpec  # noqa: E402
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator  # noqa: E402
from prismq_desktop.core.schedule.triggers import IntervalTrigger  # noqa: E402

INTERVALS = (1.0, 1.25, 1.5, 1.75, 2.0)
GOAL_RSS_RATIO = 1.05
WARM_UP = 0.2
WINDOW = 0.1


def per_run_state(orch: TaskOrchestrator) -> int:
    """Everything the orchestrator, engine, monitor, bus and scheduler hold per run (0 when idle)."""
    sched = orch._scheduler
    return (len(orch._chains) + len(orch._dependents) + len(orch.engine._live) + len(orch.engine.monitor.watched())
            + len(orch.bus._subs) + orch.queue.waiting_count + orch.queue.running_count
            + (len(sched._active) + len(sched._queued) if sched else 0))


async def soak(duration: float, every: float) -> dict[str, Any]:
    home = tempfile.mkdtemp(prefix="prismq-bench-soak-")
    proc = psutil.Process()
    samples: list[dict[str, float]] = []
    try:
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            sch = orch.scheduler
            spec = RunSpec(sys.executable, ("-S", "-c", "pass"))
            t0 = time.time() + 0.5
            for i, interval in enumerate(INTERVALS):
                sch.add(f"soak-{i}", spec, IntervalTrigger(interval, start=t0 + i * 0.2), overlap="allow")
            sch.start()
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < duration:
                await asyncio.sleep(every - (elapsed % every))
                gc.collect()
                samples.append({
                    "t": time.monotonic() - started,
                    "rss": proc.memory_info().rss / 2**20,
                    "fds": float(proc.num_fds()) if hasattr(proc, "num_fds") else float(proc.num_handles()),
                    "threads": float(proc.num_threads()),
                    "runs": float(orch.registry.count()),
                    "chains": float(len(orch._chains)),
                })
            await sch.stop()
            deadline = time.monotonic() + 30
            while per_run_state(orch) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            idle_state = per_run_state(orch)
            runs = orch.registry.count()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"samples": samples, "idle_state": idle_state, "runs": runs}


def window_median(samples: list[dict[str, float]], key: str, start: float, end: float) -> float:
    n = len(samples)
    picked = samples[int(n * start): max(int(n * start) + 1, int(n * end))]
    return statistics.median(s[key] for s in picked)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about 60 s instead of 10 minutes")
    ap.add_argument("--minutes", type=float, help="soak this long instead")
    opts = ap.parse_args()
    duration = opts.minutes * 60 if opts.minutes else (60.0 if opts.quick else 600.0)
    every = 1.0
    out = asyncio.run(soak(duration, every))
    samples = out["samples"]
    warm, last = (WARM_UP, WARM_UP + WINDOW), (1 - WINDOW, 1.0)
    med = {key: (window_median(samples, key, *last), window_median(samples, key, *warm))
           for key in ("rss", "fds", "threads")}
    fired = samples[-1]["runs"] - window_median(samples, "runs", 0, 0.02)
    rate = (samples[-1]["runs"] - samples[0]["runs"]) / max(1e-9, samples[-1]["t"] - samples[0]["t"])
    figures = [
        figure("RSS (median, last 10 % vs after warm-up)", med["rss"][0], med["rss"][1], unit="MB",
               goal=GOAL_RSS_RATIO, goal_kind="max_ratio"),
        figure("RSS max after warm-up", max(s["rss"] for s in samples[int(len(samples) * WARM_UP):]), med["rss"][1],
               unit="MB", goal_kind="info"),
        figure("open fds (median)", med["fds"][0], med["fds"][1], goal=1.0, goal_kind="max_ratio"),
        figure("threads (median)", med["threads"][0], med["threads"][1], goal=1.0, goal_kind="max_ratio"),
        figure("runs recorded", float(out["runs"]), None, goal_kind="info"),
        figure("runs per second", rate, None, unit="/s", goal_kind="info"),
        figure("per-run state held when idle", float(out["idle_state"]), 0.0, goal_kind="equal"),
    ]
    step = max(1, len(samples) // 10)
    series = [samples[i] for i in range(0, len(samples), step)]
    if series[-1] is not samples[-1]:
        series.append(samples[-1])
    print("\n   t (s)    runs   RSS (MB)   fds   threads   chains")
    for s in series:
        print(f"  {s['t']:6.0f}  {s['runs']:6.0f}  {s['rss']:9.1f}  {s['fds']:4.0f}  {s['threads']:8.0f}  {s['chains']:7.0f}")
    notes = [
        f"{len(INTERVALS)} interval schedules ({', '.join(f'{i:g}' for i in INTERVALS)} s, overlap allow, limit 4), each "
        f"starting `python -S -c pass`, for {duration:g} s; ~{fired:.0f} runs; this process sampled every {every:g} s.",
        f"'raw baseline' = the median over {WINDOW:.0%} of the samples right after a {WARM_UP:.0%} warm-up; 'engine' = the "
        f"median over the last {WINDOW:.0%}. Goals: RSS ≤ {GOAL_RSS_RATIO:.2f}×, fds and threads flat (≤ 1.00×).",
        "per-run state = chains, dependents, the engine's live handles, monitor watches, bus subscriptions, queue "
        "entries and the scheduler's active/queued tables, after the schedules stop and the last runs end.",
    ]
    title = "Soak: schedules for minutes, flat memory" + (" (quick)" if opts.quick else "")
    print_table(title, figures, notes)
    path = write_result("bench_soak", title, figures, quick=opts.quick, notes=notes,
                        details={"samples": samples, "duration": duration})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
