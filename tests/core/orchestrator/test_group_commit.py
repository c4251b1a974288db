"""Group commit (issue #17): short runs' starts and ends share transactions, a slot is given
back when the run's process ends (not when the commit lands), and nothing is announced,
released or followed up before it is stored.

Real `/bin/true` and `sh` children, a real registry, a real second process holding the lock.
Counts, not times: a window far longer than the test would hang (and time out) if it held
back what it must not.
"""

from __future__ import annotations

import asyncio
import shutil

import psutil
import pytest

from prismq_desktop.core import RunChanged, RunEngine, RunMode, RunSpec, RunStatus
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator

pytestmark = pytest.mark.posix_only
TRUE = shutil.which("true") or "/bin/true"

_BEFORE: set[int] = set()


@pytest.fixture(autouse=True)
def _children_before() -> None:
    _BEFORE.clear()
    _BEFORE.update(p.pid for p in psutil.Process().children(recursive=True))


def _no_children_left() -> None:
    alive = [p for p in psutil.Process().children(recursive=True)
             if p.pid not in _BEFORE and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running: {alive}"


def _watch_stored(orch: TaskOrchestrator) -> list[tuple[int, str, str]]:
    """(run id, announced kind, the registry's status at that moment) for every RunChanged."""
    seen: list[tuple[int, str, str]] = []

    def check(ev: object) -> None:
        if isinstance(ev, RunChanged):
            row = orch.registry.get(ev.run.id)
            seen.append((ev.run.id, ev.kind, row.status.value if row else "missing"))

    orch.bus.subscribe_sync(check)
    return seen


_RANK = {"queued": 0, "running": 1, "done": 2}
_KIND = {"queued": "queued", "started": "running", "finished": "done"}


def _announced_in_order_and_stored(seen: list[tuple[int, str, str]], rid: int) -> None:
    """queued, started, finished, each once, in order; the registry held that state (or a newer
    one: a short run's start and end share one UPDATE) when it was announced."""
    mine = [(k, st) for r, k, st in seen if r == rid]
    assert [k for k, _ in mine] == ["queued", "started", "finished"], (rid, mine)
    for kind, stored in mine:
        assert stored != "missing" and _RANK[stored] >= _RANK[_KIND[kind]], f"run {rid}: {kind} announced, {stored} stored"


def test_a_burst_shares_commits_and_every_run_is_stored_before_it_is_announced(home) -> None:
    n = 120

    async def main() -> None:
        async with TaskOrchestrator(home, max_concurrent=2) as orch:
            # a window far longer than a /bin/true run: if a slot waited for its run's end to be
            # stored, each window could hold at most 2 ends (then commits >= n / 2)
            orch.engine.group_commit = 0.2
            seen = _watch_stored(orch)
            before = orch.engine.batch_commits
            ids = [orch.delay(TRUE, mode=RunMode.ASYNC) for _ in range(n)]
            results = await asyncio.gather(*(orch.wait(i, timeout=120) for i in ids))
            commits = orch.engine.batch_commits - before
            assert all(r.ok for r in results)
            for rid in ids:
                run = orch.registry.get(rid)
                assert run is not None and run.status is RunStatus.DONE and run.exit_code == 0
                _announced_in_order_and_stored(seen, rid)
            assert commits < n / 4, f"{commits} start/end commits for {n} runs"
            shared = sum(1 for _, k, st in seen if k == "started" and st == "done")
            assert shared > n / 2, f"only {shared} of {n} runs had start and end in one transaction"
            assert orch.engine.delayed_commits > 0
        _no_children_left()

    asyncio.run(main())


def test_a_lone_run_is_never_held_back_by_the_window(home) -> None:
    async def main() -> None:
        async with RunEngine(home) as engine:
            engine.group_commit = 3600.0  # holding anything back would time the waits out
            seen: list[str] = []
            engine.bus.subscribe_sync(lambda ev: seen.append(ev.kind) if isinstance(ev, RunChanged) else None)
            for _ in range(3):
                handle = await engine.start(RunSpec(TRUE, kind="executable"), mode=RunMode.ASYNC)
                run = await asyncio.wait_for(handle.wait(), timeout=30)
                assert run.status is RunStatus.DONE and run.exit_code == 0
                assert engine.registry.get(run.id).status is RunStatus.DONE  # type: ignore[union-attr]
            assert engine.delayed_commits == 0
            assert seen == ["queued", "started", "finished"] * 3
        async with TaskOrchestrator(home) as orch:
            orch.engine.group_commit = 3600.0
            result = await orch.wait(orch.delay(TRUE, mode=RunMode.ASYNC), timeout=30)
            assert result.ok and orch.engine.delayed_commits == 0
        _no_children_left()

    asyncio.run(main())


def test_a_held_back_batch_is_stored_at_shutdown(home) -> None:
    async def main() -> RunEngine:
        engine = RunEngine(home)
        engine.group_commit = 3600.0
        gate = await engine.start(RunSpec("sh", ("-c", "sleep 30"), kind="executable"), mode=RunMode.ASYNC)
        quick = await engine.start(RunSpec(TRUE, kind="executable"), mode=RunMode.ASYNC)
        while quick.run.status is not RunStatus.DONE:  # ended in memory; its end waits for the window
            await asyncio.sleep(0.01)
        assert engine.delayed_commits >= 1
        await engine.shutdown()  # cancels the sleeper and stores everything first
        assert gate.done and quick.done
        return engine

    engine = asyncio.run(main())
    reg = RunEngine(home, recover=False).registry
    try:
        runs = {r.id: r for r in reg.query()}
        assert all(r.status is RunStatus.DONE for r in runs.values()) and len(runs) == 2
        assert engine.unsaved == 0
    finally:
        reg.close()
    _no_children_left()


def test_a_locked_registry_keeps_slots_until_ends_are_stored(home, scripts, monkeypatch) -> None:
    """While the registry refuses writes, at most one more run per slot starts (the one whose
    predecessor ended before the refusal was known); the rest wait, nothing is announced
    before it is stored, and everything runs once the lock is gone."""
    from prismq_desktop.core.paths import registry_path
    from prismq_desktop.core.store.schema import ENV_BUSY_TIMEOUT
    from tests.helpers import LockHolder

    monkeypatch.setenv(ENV_BUSY_TIMEOUT, "0.2")

    async def main() -> None:
        async with TaskOrchestrator(home, max_concurrent=1) as orch:
            seen = _watch_stored(orch)
            ids = [orch.delay("sh", ["-c", "sleep 0.3"], mode=RunMode.ASYNC) for _ in range(4)]
            first = orch.engine.handle(ids[0])
            assert first is not None
            while first.run.status is not RunStatus.RUNNING or orch.registry.get(ids[0]).status is not RunStatus.RUNNING:  # type: ignore[union-attr]
                await asyncio.sleep(0.01)
            holder = LockHolder(registry_path(home), scripts)
            try:
                await asyncio.sleep(1.5)  # the first ends, the second may start (and end); no more
                started = [i for i in ids if (h := orch.engine.handle(i)) is not None and h.job is not None]
                assert len(started) <= 2, f"{len(started)} runs started while nothing could be stored"
                assert not any(k == "finished" for _, k, _ in seen), "announced before stored"
            finally:
                holder.release()
            results = await asyncio.gather(*(orch.wait(i, timeout=60) for i in ids))
            assert all(r.ok for r in results)
            for rid in ids:
                _announced_in_order_and_stored(seen, rid)
        _no_children_left()

    asyncio.run(main())
