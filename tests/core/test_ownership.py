"""One owner of run state: the engine is the only writer; everyone else holds snapshots.

Real runs of real scripts on a real registry file: a fire-and-forget result never
contradicts itself or the registry, a snapshot cannot be changed by its holder, and
every announced change is already stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from prismq_desktop.core import RunSpec, RunStatus, TaskOrchestrator, transition
from prismq_desktop.core.events import RunChanged
from prismq_desktop.core.models import IllegalTransition, Outcome, OutcomeKind
from prismq_desktop.core.patterns import Priority, TaskPattern

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
HELLO = str(SCRIPTS / "hello.py")
GATE = str(SCRIPTS / "cli_gate.py")


async def until(predicate, timeout: float = 15.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_fire_and_forget_result_and_registry_never_disagree(home, tmp_path):
    gate = tmp_path / "open"

    async def main():
        async with TaskOrchestrator(home, max_concurrent=2) as orch:
            result = await orch.execute(GATE, [str(gate)], wait_for_result=False)
            assert result.pattern is TaskPattern.FIRE_AND_FORGET
            assert result.run is not None and result.run_id == result.run.id
            # the result is one snapshot: its status, outcome and run agree, now and later
            assert result.status is result.run.status and result.outcome is result.run.outcome is None
            early = dataclasses.asdict(result.run)
            await until(lambda: (orch.registry.get(result.run_id) or result.run).status is RunStatus.RUNNING)
            live = orch.status(result.run_id)
            assert live.status is live.run.status is RunStatus.RUNNING
            assert orch.registry.get(result.run_id).status is RunStatus.RUNNING
            gate.touch()
            final = await orch.wait(result.run_id, timeout=30)
            stored = orch.registry.get(result.run_id)
            assert final.status is final.run.status is stored.status is RunStatus.DONE
            assert final.outcome == stored.outcome == Outcome(OutcomeKind.SUCCEEDED, 0)
            assert orch.status(result.run_id).status is RunStatus.DONE
            # what the caller was handed first did not change under it, and never lied about itself
            assert dataclasses.asdict(result.run) == early
            assert result.status is result.run.status

    asyncio.run(main())


def test_code_outside_the_engine_cannot_change_a_run(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=1) as orch:
            run_id = orch.delay(HELLO, ["0"])
            result = await orch.wait(run_id, timeout=30)
            run = result.run
            handle_run = orch.engine.get(run_id)
            for field, value in [("status", RunStatus.QUEUED), ("priority", Priority.LOW), ("progress", 0.5),
                                 ("outcome", None), ("pid", 1)]:
                with pytest.raises(dataclasses.FrozenInstanceError):
                    setattr(run, field, value)
            # a transition is a new snapshot; the holder's copy and the registry stay as they were
            with pytest.raises(IllegalTransition):
                transition(run, RunStatus.RUNNING)
            with pytest.raises(IllegalTransition):
                run.with_changes(status=RunStatus.QUEUED)
            other = run.with_changes(priority=Priority.LOW)
            assert other is not run and run.priority is Priority.NORMAL
            assert orch.registry.get(run_id).priority is Priority.NORMAL
            assert handle_run == orch.registry.get(run_id)
            # a live handle exposes its snapshot read-only
            handle = await orch.engine.start(RunSpec(HELLO, ("0",)))
            with pytest.raises(AttributeError):
                handle.run = run  # type: ignore[misc]
            await handle.wait()

    asyncio.run(main())


def test_every_announced_change_is_already_stored_and_queue_changes_go_through_the_engine(home, tmp_path):
    gate = tmp_path / "open"

    async def main():
        async with TaskOrchestrator(home, max_concurrent=1) as orch:
            seen: list[tuple[RunChanged, object]] = []
            orch.bus.subscribe_sync(lambda ev: isinstance(ev, RunChanged) and seen.append((ev, orch.registry.get(ev.run.id))))
            blocker = orch.delay(GATE, [str(gate)])
            waiting = orch.delay(HELLO, ["0"], priority="low")
            await until(lambda: (orch.registry.get(blocker) or orch.engine.get(blocker)).status is RunStatus.RUNNING)
            assert orch.reprioritize(waiting, "critical") is True
            assert orch.registry.get(waiting).priority is Priority.CRITICAL
            assert [r.id for r in orch.queued_runs()] == [waiting]
            assert orch.queued_runs()[0].priority is Priority.CRITICAL
            gate.touch()
            await orch.wait(waiting, timeout=30)
            kinds = [(ev.run.id, ev.kind) for ev, _ in seen]
            assert (waiting, "updated") in kinds
            for ev, stored_then in seen:  # persisted before announced: the row already said so
                assert stored_then is not None
                assert stored_then.status is ev.run.status and stored_then.priority is ev.run.priority
                assert stored_then.outcome == ev.run.outcome

    asyncio.run(main())


def test_a_skipped_fire_is_recorded_done_in_one_step(home):
    """A fire that never starts is never seen as queued (the Runs tab would list it for a moment)."""

    async def main():
        async with TaskOrchestrator(home, max_concurrent=1) as orch:
            seen: list[RunChanged] = []
            orch.bus.subscribe_sync(lambda ev: isinstance(ev, RunChanged) and seen.append(ev))
            rid = orch.record_unstarted(RunSpec(HELLO), Outcome(OutcomeKind.SKIPPED, None, "still running"),
                                        schedule_id=7, trigger="schedule")
            assert [(ev.run.id, ev.kind, ev.run.status) for ev in seen] == [(rid, "finished", RunStatus.DONE)]
            stored = orch.registry.get(rid)
            assert stored.status is RunStatus.DONE and stored.outcome.kind is OutcomeKind.SKIPPED
            assert stored.schedule_id == 7 and stored.pattern is TaskPattern.PERIODIC

    asyncio.run(main())
