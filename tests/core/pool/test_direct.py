"""Direct hand-off: the fork server announces its spare (with its socket) and the pool sends a run
straight to it. Real fork servers and spares; the spare is killed at the worst moments."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from prismq_desktop.core import OutcomeKind, RunEngine, RunSpec
from prismq_desktop.core.pool import ResourcePool, pool_supported
from tests.helpers import pid_gone

pytestmark = [pytest.mark.posix_only, pytest.mark.skipif(not pool_supported(), reason="no fork server here")]

PRELOAD = ("json",)


def run_async(coro):
    with asyncio.Runner() as runner:
        return runner.run(coro)


async def announced(pool: ResourcePool, timeout: float = 15.0) -> int:
    """The pid of the spare the (single) worker announced, once it has."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker = pool._workers[0] if pool._workers else None
        spare = getattr(worker, "spare", None)
        if spare is not None:
            return int(spare[0])
        await asyncio.sleep(0.005)
    raise AssertionError("the fork server never announced a spare")


def hello(scripts: Path) -> RunSpec:
    return RunSpec(target=str(scripts / "hello.py"), interpreter=sys.executable)


def test_a_run_goes_to_the_announced_spare_and_its_pid_is_that_spare(home, scripts):
    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            assert await pool.wait_ready(30)
            results = []
            for _ in range(5):
                spare = await announced(pool)
                handle = await engine.run(hello(scripts))
                results.append((spare, handle.run))
            return results, pool.stats()

    results, stats = run_async(main())
    assert [run.pid for _, run in results] == [spare for spare, _ in results]
    assert all(run.outcome.kind is OutcomeKind.SUCCEEDED for _, run in results)
    assert stats.runs_served == 5 and stats.crashes == 0 and stats.fallback_runs == 0


def test_a_killed_spare_is_replaced_and_the_run_after_it_succeeds(home, scripts):
    """The announced spare dies idle: the server reports it, the pool lets go of it, and the next
    run (sent to a dead spare, or through the server) starts normally."""

    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            assert await pool.wait_ready(30)
            outcomes = []
            for _ in range(4):
                spare = await announced(pool)
                os.kill(spare, signal.SIGKILL)
                deadline = time.monotonic() + 5
                while not pid_gone(spare):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.005)
                handle = await engine.run(hello(scripts))
                outcomes.append((spare, handle.run))
            return outcomes, pool.stats()

    outcomes, stats = run_async(main())
    assert all(run.outcome.kind is OutcomeKind.SUCCEEDED and run.pid != spare for spare, run in outcomes)
    assert stats.crashes == 0 and stats.runs_served == 4 and stats.fallback_runs == 0


def test_a_spare_killed_as_the_run_is_sent_ends_the_run_reported_never_hanging(home, scripts):
    """Killed at the same moment the run goes to it: the run either started elsewhere (succeeded)
    or was that spare's and is reported killed - it always ends, and nothing is left running."""

    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            assert await pool.wait_ready(30)
            runs = []
            for _ in range(6):
                spare = await announced(pool)
                os.kill(spare, signal.SIGKILL)
                handle = await engine.start(hello(scripts))
                runs.append(await handle.wait(15))
            after = await engine.run(hello(scripts))
            return runs, after.run, pool.stats()

    runs, after, stats = run_async(main())
    for run in runs:
        assert run.outcome.kind in (OutcomeKind.SUCCEEDED, OutcomeKind.FAILED), run.outcome
        if run.outcome.kind is OutcomeKind.FAILED:
            assert run.exit_code == -signal.SIGKILL and "SIGKILL" in run.outcome.message
        assert run.pid is None or pid_gone(run.pid)
    assert after.outcome.kind is OutcomeKind.SUCCEEDED and stats.crashes == 0


def test_cancel_right_after_a_direct_start_stops_the_run(home, scripts):
    """The spare had its own session before it was announced, so a cancel the moment the run is
    sent still stops its whole group."""

    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            assert await pool.wait_ready(30)
            runs = []
            for _ in range(4):
                await announced(pool)
                handle = await engine.start(RunSpec(target=str(scripts / "ticker.py"), interpreter=sys.executable))
                while handle.run.pid is None and not handle.done:
                    await asyncio.sleep(0)
                handle.cancel()
                runs.append(await handle.wait(15))
            return runs

    runs = run_async(main())
    assert [r.outcome.kind for r in runs] == [OutcomeKind.CANCELLED] * 4
    assert all(pid_gone(r.pid) for r in runs)
    assert all(not psutil.pid_exists(r.pid) or pid_gone(r.pid) for r in runs)
