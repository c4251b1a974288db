"""Nothing per run is kept after its chain ends: memory stays flat, and the registry answers.

Real children (`python -S -c pass` and tests/scripts/orch_task.py), a real registry, real
psutil RSS readings of this process.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

import psutil

from prismq_desktop.core import OutcomeKind, RunSpec
from prismq_desktop.core.events import RunChanged
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator

PY = sys.executable
TASK = str(Path(__file__).resolve().parents[2] / "scripts" / "orch_task.py")
TRIVIAL = RunSpec(PY, ("-S", "-c", "pass"))


def per_run_state(orch: TaskOrchestrator) -> dict[str, int]:
    """Every table that holds something per run (0 each when idle)."""
    sched = orch._scheduler
    return {
        "chains": len(orch._chains),
        "dependents": len(orch._dependents),
        "orchestrator tasks": len(orch._tasks),
        "queue waiting": orch.queue.waiting_count,
        "queue running": orch.queue.running_count,
        "engine live": len(orch.engine._live),
        "engine unannounced": len(orch.engine._unannounced),
        "engine tasks": len(orch.engine._tasks),
        "monitor watches": len(orch.engine.monitor.watched()),
        "bus subscriptions": len(orch.bus._subs),
        "scheduler active": len(sched._active) if sched else 0,
        "scheduler queued": len(sched._queued) if sched else 0,
    }


async def idle(orch: TaskOrchestrator) -> dict[str, int]:
    for _ in range(200):
        state = per_run_state(orch)
        if not any(state.values()):
            break
        await asyncio.sleep(0.02)
    return per_run_state(orch)


def test_two_thousand_runs_keep_memory_flat(home: Path) -> None:
    proc = psutil.Process()
    rss: dict[int, float] = {}

    async def main() -> dict[str, int]:
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            done = 0
            gate = asyncio.Semaphore(8)

            async def one() -> None:
                nonlocal done
                async with gate:
                    result = await orch.submit(TRIVIAL)
                    assert result.ok, result.outcome
                    done += 1
                    if done in (500, 2000):
                        gc.collect()
                        rss[done] = proc.memory_info().rss / 2**20

            await asyncio.gather(*(one() for _ in range(2000)))
            state = await idle(orch)
            assert orch.registry.count() == 2000
            return state

    state = asyncio.run(main())
    assert not any(state.values()), state
    growth = rss[2000] - rss[500]
    assert growth < 5.0, f"RSS grew {growth:.1f} MB between run 500 and run 2000 ({rss})"


def test_a_forgotten_chain_is_answered_from_the_registry(home: Path, tmp_path: Path) -> None:
    """status, get_result, wait, after=, idempotency and events() of chains that have ended."""
    marker = tmp_path / "fail-count"

    async def main() -> None:
        async with TaskOrchestrator(home, max_concurrent=2) as orch:
            # a chain that needed retries, with a follow-up
            retried = await orch.submit(
                PY, [TASK, "--fail-until", "3", "--counter", str(marker), "print=hello"],
                max_retries=3, backoff_base=0.01, jitter=0, on_success=RunSpec(PY, ("-S", "-c", "pass")),
            )
            assert retried.ok and retried.attempts == 3 and len(retried.follow_up_ids) == 1
            follow = await orch.wait(retried.follow_up_ids[0], timeout=15)
            assert follow.ok
            assert not any((await idle(orch)).values())
            first = retried.run_id
            assert first is not None and first not in orch._chains

            for ask in (orch.status(first), orch.get_result(first), await orch.wait(first, timeout=1)):
                assert ask is not None
                assert ask.run_id == first and ask.ok and ask.attempts == 3
                assert ask.run is not None and ask.run.id == retried.run.id  # the newest attempt
                assert "hello" in ask.stdout
                assert ask.follow_up_ids == retried.follow_up_ids
            # any attempt's id names the whole chain, as it did while it was pending
            assert orch.status(retried.run.id).run_id == first

            # after= an ended chain whose first attempt failed but whose retry succeeded: it runs
            dep = await orch.wait(orch.delay(TRIVIAL, after=[first]), timeout=15)
            assert dep.ok, dep.outcome
            failed = await orch.submit(PY, ["-S", "-c", "raise SystemExit(3)"])
            blocked = await orch.wait(orch.delay(TRIVIAL, after=[failed.run_id]), timeout=15)
            assert blocked.outcome is not None and blocked.outcome.kind is OutcomeKind.DEPENDENCY_FAILED

            # idempotency: the ended chain's first id and result come back, no new run
            ok = await orch.submit(TRIVIAL, idempotency_key="k", idempotency_window=60)
            await idle(orch)
            got: list[object] = []
            again = orch.delay(TRIVIAL, idempotency_key="k", idempotency_window=60, callback=got.append)
            assert again == ok.run_id
            await until_true(lambda: got)
            assert getattr(got[0], "run_id", None) == ok.run_id

            # events() of an ended chain ends at once instead of waiting forever
            seen = [ev async for ev in orch.events(first)]
            assert seen == []
            assert not any((await idle(orch)).values())

    asyncio.run(main())


def test_events_of_a_chain_see_its_end_even_when_it_is_forgotten_first(home: Path) -> None:
    """A slow consumer still gets every queued event of the chain after the orchestrator forgot it."""

    async def main() -> None:
        async with TaskOrchestrator(home, max_concurrent=1) as orch:
            run_id = orch.delay(PY, ["-c", "print('x')"])
            stream = orch.events(run_id)
            first = await stream.__anext__()  # subscribed now; the rest piles up while we wait
            await orch.wait(run_id, timeout=15)
            await until_true(lambda: run_id not in orch._chains)
            rest = [ev async for ev in stream]
            kinds = [ev.kind for ev in [first, *rest] if isinstance(ev, RunChanged)]
            assert kinds[-1] == "finished", kinds
            assert not orch.bus._subs

    asyncio.run(main())


async def until_true(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
