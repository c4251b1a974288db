"""PoolStats tell one story: the workers' rows add up to the pool's total, at every moment."""

from __future__ import annotations

import asyncio
import sys

import pytest

from prismq_desktop.core import OutcomeKind, RunEngine
from prismq_desktop.core.pool import ResourcePool, pool_supported
from tests.core.pool.test_pool import PRELOAD, spec, until, until_output

pytestmark = pytest.mark.skipif(sys.platform == "win32" or not pool_supported(), reason="the fork server is POSIX-only")


def run_async(coro):
    with asyncio.Runner() as runner:
        return runner.run(coro)


def rows_sum(stats) -> int:
    return sum(w.runs_served for w in stats.workers)


def test_served_rows_agree_with_the_total_while_runs_are_running(home, scripts, tmp_path):
    gate = tmp_path / "gate"

    async def main():
        async with ResourcePool(size=2, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            idle = await pool.wait_ready() and pool.stats()
            handles = [await engine.start(spec(scripts, "pool_gate.py", str(gate))) for _ in range(2)]
            for h in handles:
                await until_output(h, "ready")
            during = pool.stats()  # both runs are still going
            gate.touch()
            runs = [await h.wait(15) for h in handles]
            return idle, during, runs, pool.stats()

    idle, during, runs, after = run_async(main())
    assert idle.started and [w.state for w in idle.workers] == ["idle", "idle"]  # warm, listed before any run
    assert during.busy == 2 and during.runs_served == 2 == rows_sum(during)
    assert [w.runs_served for w in during.workers] == [1, 1]  # a busy worker counts the run it is serving
    assert all(r.outcome.kind is OutcomeKind.SUCCEEDED for r in runs)
    assert after.runs_served == 2 == rows_sum(after) and after.retired_served == 0


def test_served_total_keeps_the_counts_of_recycled_workers(home, scripts):
    n = 5

    async def main():
        pool = ResourcePool(size=1, preload=PRELOAD, max_runs_per_worker=2)
        async with pool, RunEngine(home, executor=pool) as engine:
            seen = []
            for _ in range(n):
                await engine.run(spec(scripts, "pool_trivial.py"))
                seen.append(pool.stats())
            await until(lambda: len(pool.stats().workers) == 1)
            return seen, pool.stats()

    seen, final = run_async(main())
    for i, st in enumerate(seen, 1):
        assert st.runs_served == i == rows_sum(st) + st.retired_served
    assert final.recycled == 2
    assert final.runs_served == n == rows_sum(final) + final.retired_served
    assert final.retired_served == 4 and rows_sum(final) == 1  # two workers served 2 each and were replaced


def test_stats_say_when_workers_have_not_started(home):
    async def main():
        pool = ResourcePool(size=2, preload=PRELOAD)
        before = pool.stats()
        await pool.start()
        await pool.wait_ready()
        started = pool.stats()
        await pool.close()
        return before, started, pool.stats()

    before, started, closed = run_async(main())
    assert not before.started and before.workers == () and before.size == 2
    assert started.started and len(started.workers) == 2
    assert not closed.started and closed.closed
