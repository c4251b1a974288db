"""Function tasks: tasks/s in a warm pool worker (module preloaded) vs a fresh interpreter per call.

The function is `benchmarks/fn_heavy.py:work`, whose module imports hypothesis (~0.5 s of
imports, the kind of cost a real task module has: pandas, torch, an ORM...). Both sides go
through the same `TaskOrchestrator.execute(fn_heavy.work, [i], ...)` path (registry, log, events,
the runner's result file); only the executor differs:

- pooled: `use_pool=True`: the run goes to a fork server (pool of 2) that imported the function's
  module at its first run and forks every later child with it loaded;
- fresh:  the default: a new interpreter per call that imports the module each time.

A round is N calls submitted at once with 2 in flight (the orchestrator's limit = the pool's size),
timed from the first submission to the last result; rounds alternate pooled / fresh after a
warm-up call on each side (the pooled warm-up is the call that imports the module).
Goal (issue 15): pooled ≥ 20× the tasks/s of fresh interpreters.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fn_heavy  # noqa: E402
from _common import figure, median, print_table, write_result  # noqa: E402

from prismq_desktop.core import TaskOrchestrator  # noqa: E402
from prismq_desktop.core.patterns import TaskPattern  # noqa: E402

SLOTS = 2
GOAL = 20.0


async def one_round(orch: TaskOrchestrator, n: int, pooled: bool) -> float:
    """n calls, SLOTS in flight (the orchestrator's limit), timed from the first submission to the last result."""
    pattern = TaskPattern.POOLED if pooled else TaskPattern.SIMPLE
    started = time.perf_counter()
    results = await asyncio.gather(*(orch.submit(fn_heavy.work, [i], pattern=pattern) for i in range(n)))
    elapsed = time.perf_counter() - started
    for i, res in enumerate(results):
        if not res.ok or res.result["n"] != i:
            raise SystemExit(f"call {i} did not return its value: {res.outcome} {res.stderr[-300:]}")
    return n / elapsed


async def measure(rounds: int, pooled_n: int, fresh_n: int) -> dict[str, Any]:
    home = tempfile.mkdtemp(prefix="bench-functions-")
    try:
        async with TaskOrchestrator(home, max_concurrent=SLOTS, pool_size=SLOTS) as orch:
            first = time.perf_counter()
            warm = await orch.execute(fn_heavy.work, [0], use_pool=True)  # imports the module into the server
            first_pooled = time.perf_counter() - first
            assert warm.ok, warm.stderr
            await orch.execute(fn_heavy.work, [0], use_pool=True)  # the second server (2 workers)
            assert (await orch.execute(fn_heavy.work, [0])).ok
            tps: dict[str, list[float]] = {"pooled": [], "fresh": []}
            for i in range(rounds):
                order = [("pooled", True), ("fresh", False)] if i % 2 == 0 else [("fresh", False), ("pooled", True)]
                for label, pooled in order:
                    tps[label].append(await one_round(orch, pooled_n if pooled else fresh_n, pooled))
            stats = orch.pool.stats() if orch.pool is not None else None
            return {"tps": tps, "first_pooled_s": first_pooled, "served": stats.runs_served if stats else None,
                    "fallback": stats.fallback_runs if stats else None}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples, for a smoke run")
    opts = parser.parse_args()
    rounds = 2 if opts.quick else 4
    pooled_n = 20 if opts.quick else 100
    fresh_n = 4 if opts.quick else 12
    started = time.perf_counter()
    res = asyncio.run(measure(rounds, pooled_n, fresh_n))
    elapsed = time.perf_counter() - started
    pooled, fresh = median(res["tps"]["pooled"]), median(res["tps"]["fresh"])
    figures = [
        figure(f"time per call, {SLOTS} in flight", 1000 / pooled, 1000 / fresh, unit="ms", goal=1 / GOAL,
               note=f"goal: pooled at least {GOAL:g}x the tasks/s of fresh interpreters"),
        figure(f"tasks/s, {SLOTS} in flight", pooled, fresh, unit="/s", goal_kind="info"),
        figure("tasks/s speed-up (×)", pooled / fresh, None, goal_kind="info"),
        figure("first pooled call (imports the module into the worker)", res["first_pooled_s"] * 1000, None, unit="ms",
               goal_kind="info"),
    ]
    notes = [
        f"{rounds} rounds per side, alternating; a pooled round is {pooled_n} calls, a fresh round {fresh_n} calls, "
        f"{SLOTS} in flight; {elapsed:.1f} s in all. Pool: {res['served']} runs served, {res['fallback']} fell back to a spawn.",
        "engine = pooled (fork server with the function's module imported once); raw baseline = a fresh interpreter "
        "per call (imports hypothesis every time). Both through TaskOrchestrator.execute (registry, log, result file).",
        "A ratio below 1 is a speed-up: ≤ 0.05× means at least 20× the tasks/s.",
    ]
    print_table("Function tasks: pooled (module preloaded) vs fresh interpreter", figures, notes)
    write_result("bench_functions", "Function tasks: pooled (module preloaded) vs fresh interpreter", figures,
                 quick=opts.quick, notes=notes, details={"tasks_per_s": res["tps"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
