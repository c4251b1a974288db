"""What a fire did, in words: `Scheduler.fire_now` and the announcements of the periodic reload."""

from __future__ import annotations

import asyncio
import sys

from prismq_desktop.core import OutcomeKind, RunSpec
from prismq_desktop.core.events import ScheduleChanged
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.schedule import scheduler as scheduler_module
from prismq_desktop.core.schedule.scheduler import FireAction, make_trigger
from prismq_desktop.core.store.registry import RunRegistry

PY = sys.executable


def run_async(coro):
    with asyncio.Runner() as runner:
        return runner.run(coro)


def sleeper(seconds: float) -> RunSpec:
    return RunSpec(PY, ("-S", "-c", f"import time; time.sleep({seconds})"))


def test_fire_now_says_why_a_forbidden_overlap_was_skipped(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            sch = orch.scheduler
            s = sch.add("nightly", sleeper(30), make_trigger(interval_seconds=3600))
            first = sch.fire_now(s.id)
            second = sch.fire_now(s.id)
            record = orch.registry.get(second.record_id)
            orch.cancel(first.run_id)
            await orch.wait(first.run_id)
            return first, second, record

    first, second, record = run_async(main())
    assert first.action is FireAction.STARTED and first.started and first.message == f"nightly: started run #{first.run_id}"
    assert second.action is FireAction.SKIPPED and not second.started and second.blocking_run == first.run_id
    assert second.message == (f"nightly is still running (run #{first.run_id}); "
                              "overlap policy 'forbid' skipped this fire")
    assert record.outcome.kind is OutcomeKind.SKIPPED and record.schedule_id == first.schedule_id


def test_fire_now_queue_and_replace_say_so(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            sch = orch.scheduler
            q = sch.add("line", sleeper(30), make_trigger(interval_seconds=3600), overlap="queue")
            r = sch.add("fresh", sleeper(30), make_trigger(interval_seconds=3600), overlap="replace")
            q1 = sch.fire_now(q.id)
            q2 = sch.fire_now(q.id)
            r1 = sch.fire_now(r.id)
            r2 = sch.fire_now(r.id)
            await orch.wait(r1.run_id)
            sch._queued.clear()  # the queued fire must not start when we cancel below
            for rid in (q1.run_id, r2.run_id):
                orch.cancel(rid)
                await orch.wait(rid)
            return q1, q2, r1, r2

    q1, q2, r1, r2 = run_async(main())
    assert q2.action is FireAction.QUEUED and q2.blocking_run == q1.run_id and "'queue'" in q2.message
    assert r2.action is FireAction.REPLACED and r2.blocking_run == r1.run_id and r2.started
    assert f"run #{r1.run_id} was cancelled" in r2.message


def test_the_periodic_reload_announces_schedules_changed_by_another_process(home, monkeypatch):
    monkeypatch.setattr(scheduler_module, "RELOAD_SECONDS", 0.1)

    async def main():
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            sch = orch.scheduler
            s = sch.add("mine", sleeper(0), make_trigger(interval_seconds=3600), enabled=False)
            seen: list[ScheduleChanged] = []
            unsubscribe = orch.bus.subscribe_sync(lambda ev: seen.append(ev) if isinstance(ev, ScheduleChanged) else None)
            sch.start()
            other = RunRegistry(orch.registry.path)  # another process's connection to the same file
            try:
                other.update_schedule(s.id, {"name": "renamed elsewhere"})
                for _ in range(100):
                    if any(ev.what == "changed elsewhere" for ev in seen):
                        break
                    await asyncio.sleep(0.05)
                other.delete_schedule(s.id)
                for _ in range(100):
                    if any(ev.what == "removed" for ev in seen):
                        break
                    await asyncio.sleep(0.05)
            finally:
                other.close()
                unsubscribe()
                await sch.stop()
            return s.id, seen

    sid, seen = run_async(main())
    changed = [ev for ev in seen if ev.what == "changed elsewhere"]
    assert changed and changed[0].schedule_id == sid and changed[0].schedule.name == "renamed elsewhere"
    assert any(ev.what == "removed" and ev.schedule_id == sid and ev.schedule is None for ev in seen)
