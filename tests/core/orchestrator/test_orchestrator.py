"""TaskOrchestrator end to end: real child processes, a real SQLite registry per test.

Every test is a plain sync test running `asyncio.run(main())`. Children are
tests/scripts/orch_task.py (scriptable: print, gate on a file, record start/end, fail N
times) and the shared tree/progress/ticker scripts. conftest checks nothing is left running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import pytest

from prismq_desktop.core import OutcomeKind, RunSpec, RunStatus, Stream, read_log
from prismq_desktop.core.events import DeadLettered, Notice, OutputBatch, Progress, RetryScheduled, RunChanged
from prismq_desktop.core.models import Outcome
from prismq_desktop.core.orchestrator.orchestrator import PatternUnavailable, RetryPolicy, TaskOrchestrator, TaskResult
from prismq_desktop.core.patterns import Priority, TaskPattern
from prismq_desktop.core.progress import ProgressReading, ProgressTracker, parse_value
from prismq_desktop.core.store import RunQuery
from tests.helpers import FakeClock, pid_gone

PY = sys.executable
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
TASK = str(SCRIPTS / "orch_task.py")
TREE = str(SCRIPTS / "tree.py")
TICKER = str(SCRIPTS / "ticker.py")
TQDM = str(SCRIPTS / "progress.py")


# ---------------------------------------------------------------- helpers
async def until(predicate, timeout: float = 15.0, what: str = "condition"):
    """Poll (without blocking the loop) until predicate() is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.01)


def run_id_of(ev) -> int | None:
    if isinstance(ev, RunChanged):
        return ev.run.id
    return getattr(ev, "run_id", None)


def collect(orch: TaskOrchestrator) -> list:
    """Every event the orchestrator publishes, in order (inline subscriber)."""
    seen: list = []
    orch.bus.subscribe_sync(seen.append)
    return seen


def intervals(record: Path) -> dict[str, list[float]]:
    """tag -> [start, end] from an orch_task.py --record file."""
    out: dict[str, list[float]] = {}
    for line in record.read_text().splitlines():
        what, tag, stamp = line.split()
        out.setdefault(tag, [0.0, 0.0])[0 if what == "start" else 1] = float(stamp)
    return out


def max_overlap(record: Path) -> int:
    """The most children that were inside their start..end at the same moment."""
    points = []
    for start, end in intervals(record).values():
        points += [(start, 1), (end, -1)]
    best = now = 0
    for _, delta in sorted(points):  # an end sorts before a start at the same instant
        now += delta
        best = max(best, now)
    return best


def status_of(orch: TaskOrchestrator, run_id: int) -> RunStatus | None:
    """The run's status as stored (None until its row is written: new runs are stored on the next loop turn)."""
    run = orch.registry.get(run_id)
    return run.status if run is not None else None


async def stored(orch: TaskOrchestrator, run_id: int):
    """The run's registry row, once written."""
    return await until(lambda: orch.registry.get(run_id), what=f"run #{run_id} is stored")


def rows(orch: TaskOrchestrator) -> list:
    return sorted(orch.registry.query(RunQuery(limit=10_000)), key=lambda r: r.id)


async def tree_pids(orch: TaskOrchestrator, run_id: int, expected: int) -> list[int]:
    """Pids printed by tests/scripts/tree.py (children and grandchildren) plus the root's."""

    def get():
        handle = orch.engine.handle(run_id)
        if handle is None or handle.capture is None or handle.run.pid is None:
            return None
        # several processes share the pipe (and unbuffered print writes "\n" apart), so lines can interleave
        text = "\n".join(line for _, line in handle.capture.tail_lines())
        pids = [int(p) for p in re.findall(r"pid (\d+)", text)]
        return [handle.run.pid, *pids] if "ready" in text and len(pids) >= expected else None

    return await until(get, what="the tree printed its pids")


# ---------------------------------------------------------------- lifecycle and the shared limit
def test_async_context_manager_owns_the_registry_and_closes_it(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=3) as orch:
            assert orch.registry is orch.engine.registry
            assert orch.max_concurrent == 3
            res = await orch.execute(TASK, args=["print=hi"])
            assert orch.registry.get(res.run_id).outcome.kind is OutcomeKind.SUCCEEDED
            assert (home / "registry.sqlite3").is_file()
        return orch

    orch = asyncio.run(main())
    with pytest.raises(sqlite3.ProgrammingError):
        orch.registry.count()
    with pytest.raises(ValueError):
        TaskOrchestrator(home, max_concurrent=0)


def test_one_concurrency_limit_is_shared_by_every_pattern(home, tmp_path):
    record = tmp_path / "record.txt"

    def args(tag):
        return ["--record", str(record), "--tag", tag, "sleep=0.15"]

    async def main():
        async with TaskOrchestrator(home, max_concurrent=1) as orch:
            fire = await orch.execute(TASK, args=args("fire"), pattern=TaskPattern.FIRE_AND_FORGET)
            delayed = orch.delay(TASK, args("delay"))
            results = await asyncio.gather(
                orch.execute(TASK, args=args("simple")),
                orch.execute(TASK, args=args("long"), pattern=TaskPattern.LONG_RUNNING, on_output=lambda b: None),
                orch.execute(TASK, args=["--record", str(record), "sleep=0.15"], pattern=TaskPattern.CONCURRENT,
                             tasks=[["--tag", "batch1"], ["--tag", "batch2"], ["--tag", "batch3"]], max_concurrent=5),
                orch.submit(TASK, args("submit")),
                orch.wait(fire.run_id),
                orch.wait(delayed),
            )
            assert all(r.ok for r in results)

    asyncio.run(main())
    assert sorted(intervals(record)) == ["batch1", "batch2", "batch3", "delay", "fire", "long", "simple", "submit"]
    assert max_overlap(record) == 1


# ---------------------------------------------------------------- SIMPLE
def test_simple_awaits_completion_with_exit_code_output_outcome_and_run_id(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            res = await orch.execute(TASK, args=["print=out line", "err=err line", "--exit", "3"],
                                     pattern=TaskPattern.SIMPLE)
            assert isinstance(res, TaskResult)
            assert res.pattern is TaskPattern.SIMPLE
            assert res.done and res.status is RunStatus.DONE
            assert res.exit_code == 3
            assert res.outcome.kind is OutcomeKind.FAILED and not res.ok
            assert "out line" in res.stdout and "err line" not in res.stdout
            assert "err line" in res.stderr
            run = orch.registry.get(res.run_id)
            assert run.exit_code == 3 and run.pattern == "simple" and run.status is RunStatus.DONE

            ok = await orch.execute(TASK, ["print=all good"])  # no pattern: SIMPLE
            assert ok.pattern is TaskPattern.SIMPLE
            assert ok.ok and ok.exit_code == 0 and ok.stdout == "all good"
            assert ok.run_id != res.run_id and ok.attempts == 1

    asyncio.run(main())


# ---------------------------------------------------------------- LONG_RUNNING
def test_long_running_streams_output_progress_and_events_to_callbacks(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            outputs, progress, events = [], [], []

            async def on_progress(ev):  # async callbacks are awaited too
                progress.append(ev)

            res = await orch.execute(
                TASK, args=["print=PRISMQ:PROGRESS 0.25 loading", "sleep=0.1", "print=PRISMQ:PROGRESS 3/4 training",
                            "print=finished training"],
                pattern=TaskPattern.LONG_RUNNING, on_output=outputs.append, on_progress=on_progress, on_event=events.append,
            )
            assert res.ok and res.pattern is TaskPattern.LONG_RUNNING
            assert "finished training" in res.stdout
            assert outputs and all(isinstance(b, OutputBatch) and b.run_id == res.run_id for b in outputs)
            assert "finished training" in "".join(c.text for b in outputs for c in b.chunks)
            assert progress and all(isinstance(p, Progress) for p in progress)
            assert progress[-1].fraction == pytest.approx(0.75) and progress[-1].message == "training"
            assert res.progress == pytest.approx(0.75)
            kinds = [ev.kind for ev in events if isinstance(ev, RunChanged)]
            assert "started" in kinds and kinds[-1] == "finished"
            assert any(isinstance(ev, OutputBatch) for ev in events) and any(isinstance(ev, Progress) for ev in events)
            assert {run_id_of(ev) for ev in events} == {res.run_id}

    asyncio.run(main())


def test_long_running_events_iterator_yields_the_runs_events_and_ends(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            other = orch.delay(TASK, ["print=someone else"])
            rid = orch.delay(TASK, ["print=12%", "sleep=0.1", "print=line two"], pattern=TaskPattern.LONG_RUNNING)
            got = []

            async def consume():
                async for ev in orch.events(rid):
                    got.append(ev)

            await asyncio.wait_for(consume(), 15)
            assert {run_id_of(ev) for ev in got} == {rid}
            kinds = [ev.kind for ev in got if isinstance(ev, RunChanged)]
            assert "started" in kinds and kinds[-1] == "finished"
            text = "".join(c.text for ev in got if isinstance(ev, OutputBatch) for c in ev.chunks)
            assert "12%" in text and "line two" in text
            assert any(isinstance(ev, Progress) and ev.fraction == pytest.approx(0.12) for ev in got)
            assert (await orch.wait(rid)).ok and (await orch.wait(other)).ok

    asyncio.run(main())


def test_events_iterator_delivers_every_event_even_when_the_consumer_lags(home):
    """A consumer still busy when the run ends must get the rest of the events, in order, and then stop."""

    async def main():
        async with TaskOrchestrator(home) as orch:
            seen = collect(orch)
            rid = orch.delay(TASK, ["print=one", "sleep=0.1", "print=two", "sleep=0.1", "print=three"],
                             pattern=TaskPattern.LONG_RUNNING)
            got = []

            async def consume():
                async for ev in orch.events(rid):
                    if not got:
                        await orch.wait(rid)  # fall behind: the run ends while we hold the first event
                    got.append(ev)

            await asyncio.wait_for(consume(), 5)
            published = [ev for ev in seen if run_id_of(ev) == rid]
            first = next(i for i, ev in enumerate(published) if ev is got[0])
            assert got == published[first:]
            assert isinstance(got[-1], RunChanged) and got[-1].kind == "finished"

    asyncio.run(main())


def test_long_running_cancelled_from_another_task_kills_the_tree(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            batches = []
            task = asyncio.ensure_future(
                orch.execute(TREE, args=["2"], pattern=TaskPattern.LONG_RUNNING, on_output=batches.append, interpreter=PY)
            )
            await until(lambda: batches, what="first output")
            rid = batches[0].run_id
            pids = await tree_pids(orch, rid, 4)
            assert orch.cancel(rid) is True
            res = await asyncio.wait_for(task, 15)
            assert res.outcome.kind is OutcomeKind.CANCELLED and res.run_id == rid
            await until(lambda: all(pid_gone(p) for p in pids), what="the whole tree is gone")
            assert orch.registry.get(rid).outcome.kind is OutcomeKind.CANCELLED

    asyncio.run(main())


@pytest.mark.parametrize("how", ["long_running_with_callbacks", "long_running", "simple", "submit"])
def test_cancelling_the_awaiting_task_cancels_the_run_and_its_tree(home, how):
    async def main():
        async with TaskOrchestrator(home) as orch:
            if how == "long_running_with_callbacks":
                coro = orch.execute(TREE, ["2"], pattern=TaskPattern.LONG_RUNNING, on_output=lambda b: None, interpreter=PY)
            elif how == "long_running":
                coro = orch.execute(TREE, ["2"], pattern=TaskPattern.LONG_RUNNING, interpreter=PY)
            elif how == "simple":
                coro = orch.execute(TREE, ["2"], interpreter=PY)
            else:
                coro = orch.submit(TREE, ["2"], interpreter=PY)
            task = asyncio.ensure_future(coro)
            await until(lambda: orch.registry.count() == 1, what="the run exists")
            rid = rows(orch)[0].id
            pids = await tree_pids(orch, rid, 4)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await until(lambda: all(pid_gone(p) for p in pids), what="the whole tree is gone")
            await until(lambda: orch.registry.get(rid).status is RunStatus.DONE, what="the run is recorded done")
            assert orch.registry.get(rid).outcome.kind is OutcomeKind.CANCELLED

    asyncio.run(main())


# ---------------------------------------------------------------- CONCURRENT
def test_concurrent_batch_respects_its_limit_keeps_input_order_and_survives_a_failure(home, tmp_path):
    record = tmp_path / "record.txt"

    async def main():
        async with TaskOrchestrator(home, max_concurrent=8) as orch:
            # the first item sleeps much longer, so later ones finish before it
            items = [["--tag", f"i{i}", f"sleep={0.6 if i == 0 else 0.15}", f"print=item {i}"] for i in range(6)]
            items[2] += ["--exit", "3"]
            res = await orch.execute(TASK, args=["--record", str(record)], pattern=TaskPattern.CONCURRENT,
                                     tasks=items, max_concurrent=2)
            assert res.pattern is TaskPattern.CONCURRENT and res.run_id is None and res.done
            assert len(res.results) == 6
            for i, item in enumerate(res.results):
                assert f"item {i}" in item.stdout
                assert item.ok is (i != 2)
            assert res.results[2].exit_code == 3
            assert res.outcome.kind is OutcomeKind.FAILED and "1 of 6" in res.outcome.message
            assert {r.pattern for r in rows(orch)} == {"concurrent"}
            ends = [orch.registry.get(r.run_id).ended_at for r in res.results]
            assert ends != sorted(ends), "finishing order differs from input order (so order is really kept)"
            assert "1 of 6" in res.outcome.describe(), res.outcome.describe()  # what a view or the CLI shows

    asyncio.run(main())
    assert len(intervals(record)) == 6
    assert max_overlap(record) <= 2


def test_concurrent_fail_fast_stops_the_rest(home, tmp_path):
    record = tmp_path / "record.txt"

    async def main():
        async with TaskOrchestrator(home) as orch:
            items = [["--tag", "a", "--exit", "5"], ["--tag", "b"], ["--tag", "c"], ["--tag", "d"]]
            res = await orch.execute(TASK, args=["--record", str(record)], pattern=TaskPattern.CONCURRENT,
                                     tasks=items, max_concurrent=1, fail_fast=True)
            assert [r.outcome.kind for r in res.results] == [OutcomeKind.FAILED] + [OutcomeKind.CANCELLED] * 3
            assert not res.ok

    asyncio.run(main())
    assert list(intervals(record)) == ["a"]


def test_concurrent_accepts_run_specs_and_all_ok_is_ok(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            res = await orch.execute(TASK, tasks=[RunSpec(TASK, ("print=from a spec",)), ["print=from args"]],
                                     max_concurrent=2)  # tasks= alone selects CONCURRENT
            assert res.pattern is TaskPattern.CONCURRENT and res.ok
            assert [r.stdout for r in res.results] == ["from a spec", "from args"]

    asyncio.run(main())


def test_cancelling_a_batch_cancels_its_runs(home, tmp_path):
    gate = tmp_path / "never"

    async def main():
        async with TaskOrchestrator(home) as orch:
            task = asyncio.ensure_future(orch.execute(TASK, [f"gate={gate}", "pid"], tasks=[["--tag", t] for t in "abc"],
                                                      max_concurrent=2))
            await until(lambda: len([r for r in rows(orch) if r.status is RunStatus.RUNNING]) == 2, what="2 running")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await until(lambda: all(r.status is RunStatus.DONE for r in rows(orch)), what="all runs ended")
            assert [r.outcome.kind for r in rows(orch)] == [OutcomeKind.CANCELLED] * 2  # the third never started

    asyncio.run(main())


# ---------------------------------------------------------------- FIRE_AND_FORGET
def test_fire_and_forget_returns_at_once_and_status_survives_a_restart(home, tmp_path):
    gate = tmp_path / "gate"

    async def first_session():
        async with TaskOrchestrator(home) as orch:
            res = await orch.execute(TASK, args=[f"gate={gate}", "print=email sent"], pattern=TaskPattern.FIRE_AND_FORGET)
            assert isinstance(res, TaskResult) and res.pattern is TaskPattern.FIRE_AND_FORGET
            assert res.status in (RunStatus.QUEUED, RunStatus.RUNNING) and res.outcome is None and not res.done
            assert orch.get_result(res.run_id) is None
            assert orch.status(res.run_id).status in (RunStatus.QUEUED, RunStatus.RUNNING)
            gate.touch()
            await orch.wait(res.run_id, timeout=15)
            assert orch.status(res.run_id).ok
            auto = await orch.execute(TASK, ["print=auto"], wait_for_result=False)  # auto-selected
            assert auto.pattern is TaskPattern.FIRE_AND_FORGET and not auto.done
            await orch.wait(auto.run_id, timeout=15)
            return res.run_id

    rid = asyncio.run(first_session())

    async def second_session():
        async with TaskOrchestrator(home) as orch:
            status = orch.status(rid)
            assert status.done and status.ok and status.run_id == rid
            assert status.pattern is TaskPattern.FIRE_AND_FORGET
            assert "email sent" in status.stdout
            result = orch.get_result(rid)
            assert result is not None and result.ok and result.exit_code == 0

    asyncio.run(second_session())


def test_status_after_restart_follows_retries_to_the_last_attempt(home, tmp_path):
    counter = tmp_path / "counter"

    async def first():
        async with TaskOrchestrator(home) as orch:
            res = await orch.submit(TASK, ["--fail-until", "2", "--counter", str(counter)], max_retries=2,
                                    backoff_base=0.01, jitter=0)
            assert res.ok and res.attempts == 2
            return res.run_id

    rid = asyncio.run(first())

    async def second():
        async with TaskOrchestrator(home) as orch:
            status = orch.status(rid)
            assert status.ok and status.attempts == 2 and "attempt 2 succeeds" in status.stdout
            assert orch.get_result(rid).ok
            assert (await orch.wait(rid, timeout=5)).ok

    asyncio.run(second())


# ---------------------------------------------------------------- PERIODIC / POOLED
@pytest.mark.parametrize("options", [{"pattern": TaskPattern.POOLED, "use_pool": True}, {"use_pool": True},
                                     {"pattern": "pooled"}])
def test_pooled_runs_in_a_warm_worker_and_is_recorded(home, options):
    async def main():
        async with TaskOrchestrator(home) as orch:
            result = await orch.execute(TASK, ["print=pooled hello"], **dict(options))
            plain = await orch.execute(TASK, ["print=plain hello"])
            stats = orch.pool.stats()
            return result, plain, stats

    result, plain, stats = asyncio.run(main())
    assert result.ok and result.pattern is TaskPattern.POOLED and "pooled hello" in result.stdout
    assert result.run.pattern == "pooled"
    assert plain.ok and "plain hello" in plain.stdout
    assert stats.runs_served == 1  # only the pooled run used a warm worker; the plain one spawned normally


def test_pooled_without_a_pool_raises_pattern_unavailable_and_creates_nothing(home):
    from prismq_desktop.core.engine import RunEngine

    async def main():
        async with TaskOrchestrator(engine=RunEngine(home)) as orch:
            with pytest.raises(PatternUnavailable, match="POOLED") as info:
                await orch.execute(TASK, ["print=should not run"], use_pool=True)
            assert "nothing" in str(info.value)
            await asyncio.sleep(0.05)
            assert orch.registry.count() == 0

    asyncio.run(main())


@pytest.mark.parametrize(
    "options",
    [
        {"pattern": TaskPattern.PERIODIC, "interval_seconds": 3600},
        {"interval_seconds": 3600},
        {"cron": "0 3 * * *"},
        # a schedule wins over everything else, as in the guide's flowchart (and PatternAdvisor.recommend)
        {"interval_seconds": 3600, "streaming": True},
        {"cron": "*/5 * * * *", "wait_for_result": False},
    ],
)
def test_periodic_creates_a_schedule_and_no_run(home, options):
    async def main():
        async with TaskOrchestrator(home) as orch:
            res = await orch.execute(TASK, ["print=cleanup"], task_name="cleanup_temp_files", **dict(options))
            assert res.pattern is TaskPattern.PERIODIC and res.run_id is None and res.schedule_id is not None
            assert orch.scheduler.get(res.schedule_id).name == "cleanup_temp_files"
            await asyncio.sleep(0.05)
            assert orch.registry.count() == 0  # the first fire is an hour (or a cron slot) away

    asyncio.run(main())


@pytest.mark.usefixtures("fast_intervals")
def test_periodic_fires_through_the_shared_queue(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            res = await orch.execute(TASK, ["print=tick"], pattern=TaskPattern.PERIODIC, interval_seconds=0.2,
                                     task_name="ticker")
            def fired():
                return [r for r in rows(orch) if r.outcome is not None and r.outcome.kind is OutcomeKind.SUCCEEDED]

            await until(fired, what="a fire ran")
            run = fired()[0]
            assert run.schedule_id == res.schedule_id and run.pattern == "periodic" and run.name == "ticker"
            # the row says succeeded a moment before the chain's result is final (retries decided): wait for it
            assert (await orch.wait(run.id, timeout=10)).stdout == "tick"
            assert orch.get_result(run.id).stdout == "tick"

    asyncio.run(main())


@pytest.mark.usefixtures("fast_intervals")
def test_close_right_after_removing_a_schedule_does_not_hang(home):
    """Removing (or editing) a schedule wakes the scheduler loop; closing in the same loop turn must still stop it."""

    async def main():
        orch = TaskOrchestrator(home)
        res = await orch.execute(TASK, ["print=tick"], pattern=TaskPattern.PERIODIC, interval_seconds=0.2, task_name="t")
        await until(lambda: orch.registry.count(), what="a first fire")
        orch.scheduler.remove(res.schedule_id)
        closing = asyncio.ensure_future(orch.close())
        done, _ = await asyncio.wait({closing}, timeout=5)
        assert done, "close() still waiting for the scheduler after 5 s"

    asyncio.run(main())


# ---------------------------------------------------------------- auto-selection through execute()
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"streaming": True}, TaskPattern.LONG_RUNNING),
        ({"wait_for_result": False}, TaskPattern.FIRE_AND_FORGET),
        ({"tasks": [["print=x"]]}, TaskPattern.CONCURRENT),
        ({}, TaskPattern.SIMPLE),
        ({"pattern": TaskPattern.LONG_RUNNING, "wait_for_result": False}, TaskPattern.LONG_RUNNING),  # explicit wins
    ],
)
def test_execute_auto_selects_the_pattern_and_records_it(home, options, expected):
    async def main():
        async with TaskOrchestrator(home) as orch:
            res = await orch.execute(TASK, ["print=x"] if "tasks" not in options else None, **dict(options))
            assert res.pattern is expected
            if expected is TaskPattern.FIRE_AND_FORGET:
                await orch.wait(res.run_id, timeout=15)
            assert [r.pattern for r in rows(orch)] == [expected.value]

    asyncio.run(main())


# ---------------------------------------------------------------- submit / delay / callbacks / wait / cancel
def test_submit_blocks_delay_returns_an_id_get_result_and_wait_timeout(home, tmp_path):
    gate = tmp_path / "gate"

    async def main():
        async with TaskOrchestrator(home) as orch:
            res = await orch.submit(TASK, ["print=submitted"])
            assert res.done and res.ok and res.stdout == "submitted"

            rid = orch.delay(TASK, [f"gate={gate}", "print=delayed"])
            assert isinstance(rid, int)
            assert (await stored(orch, rid)).status in (RunStatus.QUEUED, RunStatus.RUNNING)
            assert orch.get_result(rid) is None
            with pytest.raises(TimeoutError):
                await orch.wait(rid, timeout=0.2)
            assert orch.get_result(rid) is None  # a timed-out wait does not cancel the run
            gate.touch()
            done = await orch.wait(rid, timeout=15)
            assert done.ok and done.stdout == "delayed"
            assert orch.get_result(rid).ok
            with pytest.raises(KeyError):
                orch.get_result(987654)

    asyncio.run(main())


def test_delay_needs_a_running_loop_and_then_records_nothing(home):
    orch = TaskOrchestrator(home)
    try:
        with pytest.raises(RuntimeError):
            orch.delay(TASK, ["print=x"])
        assert orch.registry.count() == 0, [(r.id, r.status.value) for r in rows(orch)]
    finally:
        orch.registry.close()


def test_callbacks_sync_and_async_are_called_exactly_once_with_the_final_result(home, tmp_path):
    counter = tmp_path / "counter"

    async def main():
        async with TaskOrchestrator(home) as orch:
            calls = []

            def sync_cb(result):
                calls.append(("sync", result))

            async def async_cb(result):
                await asyncio.sleep(0)
                calls.append(("async", result))

            a = orch.delay(TASK, ["print=a"], callback=sync_cb)
            b = orch.delay(TASK, ["--exit", "2"], callback=async_cb)
            c = orch.delay(TASK, ["--fail-until", "3", "--counter", str(counter)], callback=sync_cb,
                           max_retries=3, backoff_base=0.01, jitter=0)
            for rid in (a, b, c):
                await orch.wait(rid, timeout=15)
            await until(lambda: len(calls) >= 3, what="three callbacks")
            await asyncio.sleep(0.2)  # room for a duplicate call to show up
            by_id = {}
            for kind, result in calls:
                by_id.setdefault(result.run_id, []).append((kind, result))
            assert sorted(by_id) == sorted([a, b, c]) and all(len(v) == 1 for v in by_id.values())
            assert by_id[a][0][0] == "sync" and by_id[a][0][1].ok and by_id[a][0][1].stdout == "a"
            assert by_id[b][0][0] == "async" and by_id[b][0][1].exit_code == 2
            assert by_id[c][0][1].ok and by_id[c][0][1].attempts == 3

    asyncio.run(main())


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_callback_that_raises_is_logged_recorded_and_announced(home, caplog, flavour):
    caplog.set_level(logging.ERROR, logger="prismq_desktop")

    def bad(result):
        raise ValueError(f"boom in callback {result.run_id}")

    async def abad(result):
        await asyncio.sleep(0)
        bad(result)

    async def main():
        async with TaskOrchestrator(home) as orch:
            seen = collect(orch)
            rid = orch.delay(TASK, ["print=fine"], callback=bad if flavour == "sync" else abad)
            res = await orch.wait(rid, timeout=15)
            assert res.ok  # the callback's failure does not change the run's outcome
            await until(lambda: orch.callback_errors, what="the error is recorded")
            assert len(orch.callback_errors) == 1
            err_id, tb = orch.callback_errors[0]
            assert err_id == rid and f"boom in callback {rid}" in tb and "ValueError" in tb
            notices = [ev for ev in seen if isinstance(ev, Notice) and ev.run_id == rid]
            assert len(notices) == 1 and notices[0].level == "error" and "boom" in notices[0].message
            meta = [json.loads(rec.data) for rec, _ in read_log(res.run.log_path) if rec.stream is Stream.META]
            errors = [m for m in meta if m.get("event") == "callback_error"]
            assert len(errors) == 1 and "boom in callback" in errors[0]["error"] and "ValueError" in errors[0]["traceback"]
            assert orch.registry.get(rid).outcome.kind is OutcomeKind.SUCCEEDED

    asyncio.run(main())
    assert any(r.levelno == logging.ERROR and "boom in callback" in (r.getMessage() + str(r.exc_text))
               for r in caplog.records)


def test_callback_of_a_run_cancelled_by_close_is_still_called_once(home):
    calls = []

    async def main():
        async with TaskOrchestrator(home, max_concurrent=1) as orch:
            orch.pause_queue()
            orch.delay(TASK, ["print=never"], callback=calls.append)

    asyncio.run(main())
    assert len(calls) == 1 and calls[0].outcome.kind is OutcomeKind.CANCELLED


def test_cancel_and_cancel_all(home, tmp_path):
    gate = tmp_path / "gate"

    async def main():
        async with TaskOrchestrator(home, max_concurrent=1) as orch:
            running = orch.delay(TASK, ["pid", f"gate={gate}"])
            queued1 = orch.delay(TASK, ["print=q1"])
            queued2 = orch.delay(TASK, ["print=q2"])
            await until(lambda: orch.status(running).status is RunStatus.RUNNING and "pid" in orch.status(running).stdout)
            pid = orch.status(running).run.pid
            assert orch.cancel_all() == 3
            results = [await orch.wait(r, timeout=15) for r in (running, queued1, queued2)]
            assert all(r.outcome.kind is OutcomeKind.CANCELLED for r in results)
            assert "cancelled by the user" in results[0].outcome.message
            assert all("while queued" in r.outcome.message for r in results[1:])
            assert all(orch.registry.get(r).started_at is None for r in (queued1, queued2))
            await until(lambda: pid_gone(pid), what="the running child is gone")
            assert orch.cancel(running) is False  # already over
            assert orch.cancel_all() == 0

            done = await orch.submit(TASK, ["print=later"])  # the orchestrator still works
            assert done.ok
            assert orch.cancel(done.run_id) is False

    asyncio.run(main())


# ---------------------------------------------------------------- priorities and the limit
def test_priorities_then_fifo_within_a_priority(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=1) as orch:
            orch.pause_queue()
            plan = [("low1", Priority.LOW), ("normal1", "normal"), ("crit1", Priority.CRITICAL), ("high1", "high"),
                    ("normal2", Priority.NORMAL), ("crit2", 0), ("low2", 3), ("high2", Priority.HIGH)]
            ids = {tag: orch.delay(TASK, [f"print={tag}"], priority=p, task_name=tag) for tag, p in plan}
            expected = ["crit1", "crit2", "high1", "high2", "normal1", "normal2", "low1", "low2"]
            await asyncio.sleep(0.2)  # paused: nothing may start
            assert orch.running_count == 0 and orch.queue_length == 8
            assert all(r.status is RunStatus.QUEUED and r.started_at is None for r in rows(orch))
            assert [r.name for r in orch.queued_runs()] == expected
            orch.resume_queue()
            for rid in ids.values():
                await orch.wait(rid, timeout=15)
            started = sorted(ids, key=lambda tag: orch.registry.get(ids[tag]).started_at)
            assert started == expected
            assert [orch.registry.get(ids[t]).priority for t in expected] == [0, 0, 1, 1, 2, 2, 3, 3]

    asyncio.run(main())


def test_raising_the_limit_starts_queued_runs_lowering_never_kills(home, tmp_path):
    gates = [tmp_path / f"gate{i}" for i in range(4)]

    async def main():
        async with TaskOrchestrator(home, max_concurrent=1) as orch:
            ids = [orch.delay(TASK, [f"gate={gates[i]}", f"print=run {i}"]) for i in range(3)]
            assert orch.running_count == 1 and orch.queue_length == 2
            orch.set_max_concurrent(3)
            assert orch.max_concurrent == 3
            assert orch.running_count == 3 and orch.queue_length == 0  # started at once, not on the next finish
            await until(lambda: all(status_of(orch, i) is RunStatus.RUNNING for i in ids), what="3 running")

            orch.set_max_concurrent(1)
            late = orch.delay(TASK, [f"gate={gates[3]}", "print=late"])
            await asyncio.sleep(0.2)
            assert [orch.registry.get(i).status for i in ids] == [RunStatus.RUNNING] * 3  # nobody killed
            assert orch.status(late).status is RunStatus.QUEUED
            for i in range(3):
                gates[i].touch()
                assert (await orch.wait(ids[i], timeout=15)).ok
                # 3 - (i + 1) still running, the limit is 1: the late run starts only when all are done
                expected = RunStatus.QUEUED if i < 2 else None
                if expected is not None:
                    assert orch.status(late).status is RunStatus.QUEUED
            await until(lambda: orch.running_count == 1, what="the late run started")
            gates[3].touch()
            res = await orch.wait(late, timeout=15)
            assert res.ok and res.run.started_at >= max(orch.registry.get(i).ended_at for i in ids)
            with pytest.raises(ValueError):
                orch.set_max_concurrent(0)

    asyncio.run(main())


# ---------------------------------------------------------------- retries
def test_retry_policy_delay_bounds_with_a_seeded_rng():
    policy = RetryPolicy(max_retries=10, base=0.5, factor=3.0, cap=20.0, jitter=0.25)
    rng = random.Random(1234)
    for attempt in range(1, 11):
        raw = min(20.0, 0.5 * 3.0 ** (attempt - 1))
        for _ in range(200):
            d = policy.backoff(attempt, rng)
            assert raw * 0.75 - 1e-9 <= d <= min(20.0, raw * 1.25) + 1e-9
    # the same seed gives the same delays; jitter really varies them
    a = [policy.backoff(2, random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    spread = {round(policy.backoff(2, rng), 9) for _ in range(50)}
    assert len(spread) > 10 and min(spread) < 1.5 < max(spread)
    # no jitter: exact exponential, capped
    exact = RetryPolicy(base=1.0, factor=2.0, cap=10.0, jitter=0.0)
    assert [exact.backoff(n, rng) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    # the cap holds even with jitter on top
    capped = RetryPolicy(base=1.0, factor=2.0, cap=5.0, jitter=1.0)
    assert all(0.0 <= capped.backoff(20, rng) <= 5.0 for _ in range(200))


def test_retry_policy_validation_and_retry_on():
    for bad in (dict(max_retries=-1), dict(base=-1), dict(factor=0.5), dict(cap=-1), dict(jitter=1.5),
                dict(retry_on=("sometimes",))):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)
    p = RetryPolicy(retry_on=("timeout", "failed-to-start", 75))
    assert p.retry_on == ("timed_out", "failed_to_start", 75)
    assert p.matches(Outcome(OutcomeKind.FAILED, 75))
    assert not p.matches(Outcome(OutcomeKind.FAILED, 1))
    assert p.matches(Outcome(OutcomeKind.TIMED_OUT, None))
    assert p.matches(Outcome(OutcomeKind.FAILED_TO_START, None, "no such file"))
    default = RetryPolicy()
    assert default.matches(Outcome(OutcomeKind.FAILED, 1)) and default.matches(Outcome(OutcomeKind.TIMED_OUT))
    assert not default.matches(Outcome(OutcomeKind.FAILED_TO_START, None, "x"))
    for never in (OutcomeKind.SUCCEEDED, OutcomeKind.CANCELLED, OutcomeKind.INTERRUPTED, OutcomeKind.DEPENDENCY_FAILED):
        assert not RetryPolicy(retry_on=("failed", "timed_out", "failed_to_start")).matches(Outcome(never, 0))
    assert RetryPolicy.from_dict(p.to_dict()) == p


def test_each_retry_is_its_own_run_linked_to_the_first(home, tmp_path):
    counter = tmp_path / "counter"

    async def main():
        async with TaskOrchestrator(home) as orch:
            seen = collect(orch)
            res = await orch.submit(TASK, ["--fail-until", "3", "--counter", str(counter)], max_retries=3,
                                    backoff_base=0.02, jitter=0)
            assert res.ok and res.attempts == 3 and res.run_id == rows(orch)[0].id
            chain = rows(orch)
            assert [r.attempt for r in chain] == [1, 2, 3]
            assert [r.parent_id for r in chain] == [None, res.run_id, res.run_id]
            assert [r.outcome.kind for r in chain] == [OutcomeKind.FAILED, OutcomeKind.FAILED, OutcomeKind.SUCCEEDED]
            assert res.run.id == chain[-1].id
            retries = [ev for ev in seen if isinstance(ev, RetryScheduled)]
            assert [(ev.run_id, ev.next_run_id, ev.attempt) for ev in retries] == [
                (chain[0].id, chain[1].id, 2), (chain[1].id, chain[2].id, 3)]
            # backoff: attempt 3 started no earlier than base * factor after attempt 2 ended
            assert chain[2].started_at >= chain[1].ended_at + 0.04 - 0.005
            assert orch.dead_letters() == []
            assert orch.registry.latest_attempt(res.run_id).id == chain[-1].id

    asyncio.run(main())


def test_retry_on_exit_codes(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            other = await orch.submit(TASK, ["--exit", "3"], max_retries=2, retry_on=[75], backoff_base=0.01)
            assert other.exit_code == 3 and other.attempts == 1
            assert orch.dead_letters() == []  # not retryable, so nothing was exhausted
            tempfail = await orch.submit(TASK, ["--exit", "75"], max_retries=2, retry_on=[75], backoff_base=0.01)
            assert tempfail.exit_code == 75 and tempfail.attempts == 3
            assert len([r for r in rows(orch) if r.parent_id == tempfail.run_id]) == 2

    asyncio.run(main())


def test_retry_on_timeout(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            args = ["sleep=30"]
            res = await orch.submit(TASK, args, timeout=0.3, grace_period=0.5, max_retries=1, retry_on=["timeout"],
                                    backoff_base=0.01)
            assert res.outcome.kind is OutcomeKind.TIMED_OUT and res.attempts == 2
            no = await orch.submit(TASK, args, timeout=0.3, grace_period=0.5, max_retries=1, retry_on=["failed"],
                                   backoff_base=0.01)
            assert no.outcome.kind is OutcomeKind.TIMED_OUT and no.attempts == 1

    asyncio.run(main())


def test_retry_on_failed_to_start(home, tmp_path):
    missing = str(tmp_path / "no_such_script.py")

    async def main():
        async with TaskOrchestrator(home) as orch:
            res = await orch.submit(missing, max_retries=2, retry_on=["failed_to_start"], backoff_base=0.01)
            assert res.outcome.kind is OutcomeKind.FAILED_TO_START and res.attempts == 3
            assert "not found" in res.outcome.message
            assert len(orch.dead_letters()) == 1
            default = await orch.submit(missing, max_retries=2, backoff_base=0.01)
            assert default.outcome.kind is OutcomeKind.FAILED_TO_START and default.attempts == 1

    asyncio.run(main())


def test_dead_letters_requeue_and_purge(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            seen = collect(orch)
            res = await orch.submit(TASK, ["--exit", "4"], max_retries=1, backoff_base=0.01, task_name="doomed")
            assert res.attempts == 2 and res.exit_code == 4
            [dl] = orch.dead_letters()
            chain = rows(orch)
            assert dl.first_run_id == res.run_id and dl.run_id == chain[-1].id and dl.attempts == 2
            assert dl.name == "doomed" and "4" in dl.reason and dl.requeued_run_id is None
            [announced] = [ev for ev in seen if isinstance(ev, DeadLettered)]
            assert announced.dead_letter_id == dl.id and announced.run_id == chain[-1].id

            new = orch.requeue_dead_letter(dl.id)
            assert new not in [r.id for r in chain]
            first = await stored(orch, new)
            assert first.parent_id is None and first.attempt == 1  # a new chain
            again = await orch.wait(new, timeout=15)
            assert again.attempts == 2 and again.exit_code == 4  # same retry policy
            assert [d.first_run_id for d in orch.dead_letters()] == [new]  # the old entry is marked requeued
            old = orch.registry.dead_letter(dl.id)
            assert old.requeued_run_id == new
            with pytest.raises(ValueError, match="already requeued"):
                orch.requeue_dead_letter(dl.id)
            with pytest.raises(KeyError):
                orch.requeue_dead_letter(424242)
            assert orch.purge_dead_letters() == 2
            assert orch.dead_letters() == [] and orch.registry.dead_letters(include_requeued=True) == []

    asyncio.run(main())


# ---------------------------------------------------------------- chaining
def test_on_success_and_on_failure_follow_ups(home):
    ok_spec = RunSpec(TASK, ("print=follow-up after success",))
    fail_spec = RunSpec(TASK, ("print=follow-up after failure",))

    async def main():
        async with TaskOrchestrator(home) as orch:
            good = await orch.submit(TASK, ["print=parent"], on_success=ok_spec, on_failure=fail_spec)
            assert good.ok and len(good.follow_up_ids) == 1
            child = await orch.wait(good.follow_up_ids[0], timeout=15)
            assert child.ok and child.stdout == "follow-up after success"

            bad = await orch.submit(TASK, ["--exit", "1"], on_success=ok_spec, on_failure=fail_spec)
            assert not bad.ok and len(bad.follow_up_ids) == 1
            child = await orch.wait(bad.follow_up_ids[0], timeout=15)
            assert child.stdout == "follow-up after failure"

            none = await orch.submit(TASK, ["--exit", "1"], on_success=ok_spec)
            assert none.follow_up_ids == ()
            retried = await orch.submit(TASK, ["--exit", "1"], on_failure=fail_spec, max_retries=2, backoff_base=0.01)
            assert retried.attempts == 3 and len(retried.follow_up_ids) == 1  # once, after the last attempt
            await orch.wait(retried.follow_up_ids[0], timeout=15)
            assert orch.registry.count() == 9

    asyncio.run(main())


def test_after_waits_for_the_parent_to_succeed(home, tmp_path):
    gate = tmp_path / "gate"

    async def main():
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            parent = orch.delay(TASK, [f"gate={gate}", "print=parent"])
            child = orch.delay(TASK, ["print=child"], after=[parent])
            await until(lambda: status_of(orch, parent) is RunStatus.RUNNING, what="parent running")
            await asyncio.sleep(0.3)
            assert orch.registry.get(child).status is RunStatus.QUEUED and orch.registry.get(child).started_at is None
            assert orch.registry.get(child).depends_on == (parent,)
            other = orch.delay(TASK, ["print=cancelled dependent"], after=[parent])
            assert orch.cancel(other) is True
            gate.touch()
            res = await orch.wait(child, timeout=15)
            assert res.ok and res.stdout == "child"
            cancelled = await orch.wait(other, timeout=15)
            assert cancelled.outcome.kind is OutcomeKind.CANCELLED and cancelled.run.started_at is None
            assert res.run.started_at >= orch.registry.get(parent).ended_at

    asyncio.run(main())


def test_after_a_retried_parent_waits_for_the_whole_chain(home, tmp_path):
    counter = tmp_path / "counter"

    async def main():
        async with TaskOrchestrator(home) as orch:
            parent = orch.delay(TASK, ["--fail-until", "2", "--counter", str(counter)], max_retries=1, backoff_base=0.05)
            child = orch.delay(TASK, ["print=child"], after=[parent])
            res = await orch.wait(child, timeout=15)
            assert res.ok
            last = orch.registry.latest_attempt(parent)
            assert last.attempt == 2 and res.run.started_at >= last.ended_at

    asyncio.run(main())


def test_a_chain_whose_parent_fails_ends_dependency_failed(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            parent = orch.delay(TASK, ["--exit", "6"])
            child = orch.delay(TASK, ["print=never"], after=[parent])
            grandchild = orch.delay(TASK, ["print=never either"], after=[child])
            res = await orch.wait(child, timeout=15)
            assert res.outcome.kind is OutcomeKind.DEPENDENCY_FAILED and f"#{parent}" in res.outcome.message
            run = orch.registry.get(child)
            assert run.status is RunStatus.DONE and run.outcome.kind is OutcomeKind.DEPENDENCY_FAILED
            assert run.started_at is None and run.pid is None
            gres = await orch.wait(grandchild, timeout=15)
            assert gres.outcome.kind is OutcomeKind.DEPENDENCY_FAILED and f"#{child}" in gres.outcome.message
            late = orch.delay(TASK, ["print=late"], after=[parent])  # parent already failed
            assert (await orch.wait(late, timeout=15)).outcome.kind is OutcomeKind.DEPENDENCY_FAILED
            missing = orch.delay(TASK, ["print=x"], after=[999999])
            assert (await orch.wait(missing, timeout=15)).outcome.kind is OutcomeKind.DEPENDENCY_FAILED
            assert "never" not in "".join(tail for r in rows(orch) for tail in [r.error or ""])

    asyncio.run(main())


# ---------------------------------------------------------------- idempotency
def test_idempotency_key(home, tmp_path):
    gate = tmp_path / "gate"

    async def main():
        async with TaskOrchestrator(home) as orch:
            first = orch.delay(TASK, [f"gate={gate}", "print=report"], idempotency_key="report-42")
            again = orch.delay(TASK, ["print=other"], idempotency_key="report-42")
            assert again == first and orch.registry.count() == 1  # still queued/running: the same run
            gate.touch()
            assert (await orch.wait(first, timeout=15)).ok
            within = orch.delay(TASK, ["print=report"], idempotency_key="report-42", idempotency_window=60)
            assert within == first and orch.registry.count() == 1  # succeeded within the window
            no_window = orch.delay(TASK, ["print=report"], idempotency_key="report-42")
            assert no_window != first
            await orch.wait(no_window, timeout=15)

            short = await orch.submit(TASK, ["print=short"], idempotency_key="k-short")
            await asyncio.sleep(0.3)
            after_window = orch.delay(TASK, ["print=short"], idempotency_key="k-short", idempotency_window=0.1)
            assert after_window != short.run_id
            await orch.wait(after_window, timeout=15)

            seen = collect(orch)
            flaky = orch.delay(TASK, ["--exit", "1"], idempotency_key="k-retry", max_retries=1, backoff_base=5, jitter=0)
            await until(lambda: any(isinstance(ev, RetryScheduled) for ev in seen), what="waiting for the retry")
            assert orch.delay(TASK, ["print=dup"], idempotency_key="k-retry") == flaky  # the chain is still active
            orch.cancel(flaky)

            failed = await orch.submit(TASK, ["--exit", "1"], idempotency_key="k-fail")
            retry = orch.delay(TASK, ["print=ok now"], idempotency_key="k-fail", idempotency_window=60)
            assert retry != failed.run_id
            assert (await orch.wait(retry, timeout=15)).ok

    asyncio.run(main())


# ---------------------------------------------------------------- events
def test_event_types_and_run_changed_kinds(home, tmp_path):
    async def main():
        async with TaskOrchestrator(home, backlog_warning=1) as orch:
            seen = collect(orch)
            rid = orch.delay(TICKER, interpreter=PY)
            await until(lambda: orch.status(rid).stdout.count("\n") >= 2, what="ticker output")
            assert orch.pause(rid) is True and orch.status(rid).status is RunStatus.PAUSED
            assert orch.resume(rid) is True and orch.status(rid).status is RunStatus.RUNNING
            orch.cancel(rid)
            await orch.wait(rid, timeout=15)
            kinds = [ev.kind for ev in seen if isinstance(ev, RunChanged) and ev.run.id == rid]
            assert kinds == ["queued", "started", "paused", "resumed", "finished"]
            finished = [ev for ev in seen if isinstance(ev, RunChanged) and ev.kind == "finished"][-1]
            assert finished.run.outcome.kind is OutcomeKind.CANCELLED

            await orch.submit(TASK, ["print=50%"])
            await orch.submit(TASK, ["--exit", "1"], max_retries=1, backoff_base=0.01)
            orch.pause_queue()
            orch.delay(TASK, ["print=a"])
            orch.delay(TASK, ["print=b"])  # 2 waiting > backlog_warning=1
            orch.cancel_all()
            types = {type(ev) for ev in seen}
            assert {RunChanged, OutputBatch, Progress, RetryScheduled, DeadLettered, Notice} <= types

    asyncio.run(main())


def test_a_slow_async_subscriber_never_stalls_the_orchestrator(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            release = asyncio.Event()
            got = []

            async def slow(ev):
                got.append(ev)
                await release.wait()  # stuck until we let it go

            sub = orch.bus.subscribe(slow)
            res = await orch.execute(TASK, pattern=TaskPattern.CONCURRENT, tasks=[[f"print={i}"] for i in range(4)])
            more = await orch.submit(TASK, ["print=more"], max_retries=1)
            assert res.ok and more.ok
            assert len(got) == 1, "the subscriber is still on its first event"
            release.set()
            await until(lambda: sum(isinstance(e, RunChanged) and e.kind == "finished" for e in got) == 5,
                        what="the subscriber caught up")
            sub.close()

    asyncio.run(main())


# ---------------------------------------------------------------- progress
@pytest.mark.parametrize(
    ("lines", "fraction"),
    [
        (["print=downloading 42%"], 0.42),
        (["print=epoch 3/10 done"], 0.3),
        (["print=[7/7] linking"], 1.0),
        (["print=PRISMQ:PROGRESS 0.42 exact"], 0.42),
        (["print=PRISMQ:PROGRESS 42% exact"], 0.42),
        (["print=PRISMQ:PROGRESS 3/10 exact"], 0.3),
    ],
)
def test_progress_from_output(home, lines, fraction):
    async def main():
        async with TaskOrchestrator(home) as orch:
            seen = collect(orch)
            res = await orch.submit(TASK, lines)
            assert res.progress == pytest.approx(fraction)
            assert orch.registry.get(res.run_id).progress == pytest.approx(fraction)  # persisted
            assert [round(ev.fraction, 6) for ev in seen if isinstance(ev, Progress)] == [round(fraction, 6)]
            if "PRISMQ" in lines[0]:
                assert res.run.progress_message == "exact"

    asyncio.run(main())


def test_progress_from_a_tqdm_like_bar(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            progress = []
            res = await orch.execute(TQDM, pattern=TaskPattern.LONG_RUNNING, on_progress=progress.append, interpreter=PY)
            fractions = [p.fraction for p in progress]
            assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0
            assert res.progress == 1.0 and orch.registry.get(res.run_id).progress == 1.0

    asyncio.run(main())


def test_explicit_progress_protocol_wins_over_heuristics_once_seen(home, tmp_path):
    gate1, gate2 = tmp_path / "g1", tmp_path / "g2"

    async def main():
        async with TaskOrchestrator(home) as orch:
            seen = collect(orch)
            fractions = []

            def on_progress(ev):
                fractions.append(round(ev.fraction, 6))
                (gate1 if ev.fraction == pytest.approx(0.1) else gate2).touch()

            res = await orch.execute(
                TASK, ["print=warming up 10%", f"gate={gate1}", "print=PRISMQ:PROGRESS 0.25 loading data",
                       f"gate={gate2}", "print=batch 90% 9/10", "print=PRISMQ:PROGRESS 3/10 copying", "print=99%"],
                pattern=TaskPattern.LONG_RUNNING, on_progress=on_progress,
            )
            published = [round(ev.fraction, 6) for ev in seen if isinstance(ev, Progress)]
            assert published == [0.1, 0.25, 0.3]  # what the engine extracted
            assert res.progress == pytest.approx(0.3) and res.run.progress_message == "copying"
            assert fractions == published, "on_progress must get every Progress event of the run"
            row = orch.registry.get(res.run_id)
            assert row.progress == pytest.approx(0.3) and row.progress_message == "copying"

    asyncio.run(main())


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.42", 0.42), ("42%", 0.42), ("3/10", 0.3), (" 1 ", 1.0), ("0", 0.0), ("100%", 1.0), ("12.5%", 0.125),
     ("150%", 1.0), ("-5%", 0.0), ("2", 1.0), ("3/0", None), ("abc", None), ("%", None), ("nan", None),
     ("1/2/3", None), ("", None)],
)
def test_parse_value(value, expected):
    got = parse_value(value)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_progress_tracker():
    t = ProgressTracker()
    assert t.feed("starting") is None
    assert t.feed("downloading 42%") == ProgressReading(0.42)
    assert t.feed("downloading 42%") is None  # unchanged
    assert t.feed("\r 45%|████▌     | 45/100 [00:01<00:01]").fraction == pytest.approx(0.45)
    assert t.feed("\r 10%|#|\r 20%|##|").fraction == pytest.approx(0.2)  # the newest redraw wins
    assert t.feed("file 12/200 copied").fraction == pytest.approx(0.06)
    assert t.feed("[3/7] compiling").fraction == pytest.approx(3 / 7)
    assert t.feed("released on 2024/01/05") is None  # a date is not a count
    assert t.feed("5/3 is not progress") is None
    assert t.feed("done 80%\nnext line without numbers\n").fraction == pytest.approx(0.8)
    assert not t.explicit_seen

    r = t.feed("PRISMQ:PROGRESS 3/10 copying files")
    assert r == ProgressReading(0.3, "copying files", explicit=True) and t.explicit_seen
    assert t.feed("90% by the heuristics") is None  # ignored from now on
    assert t.feed("PRISMQ:PROGRESS 0.5") == ProgressReading(0.5, None, True)
    assert t.feed("x PRISMQ:PROGRESS 10% a\nPRISMQ:PROGRESS 100% done\n") == ProgressReading(1.0, "done", True)
    assert t.feed("PRISMQ:PROGRESS nonsense") is None
    assert t.current == ProgressReading(1.0, "done", True)

    fresh = ProgressTracker()
    assert fresh.feed("PRISMQ:PROGRESS bogus but 30% here").fraction == pytest.approx(0.3)  # invalid marker: heuristics
    assert not fresh.explicit_seen


# ---------------------------------------------------------------- metrics and backlog
def test_metrics_per_task_name(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            for args in (["sleep=0.05"], ["sleep=0.1"], ["sleep=0.2"], ["--exit", "1"]):
                await orch.submit(TASK, args, task_name="nightly")
            await orch.submit(TASK, ["print=x"], task_name="other")
            m = orch.metrics("nightly")
            assert (m.name, m.count, m.succeeded) == ("nightly", 4, 3)
            assert m.success_rate == pytest.approx(0.75)
            ok = [r.duration for r in rows(orch) if r.name == "nightly" and r.outcome.kind is OutcomeKind.SUCCEEDED]
            assert m.p50_seconds == pytest.approx(statistics.median(ok))
            assert m.p50_seconds <= m.p95_seconds <= max(ok)
            assert (m.queued, m.running) == (0, 0)

            orch.pause_queue()
            orch.delay(TASK, ["print=q"], task_name="nightly")
            orch.delay(TASK, ["print=q"], task_name="nightly")
            orch.delay(TASK, ["print=q"], task_name="other")
            assert orch.metrics("nightly").queued == 2 and orch.metrics("other").queued == 1
            none = orch.metrics("never-ran")
            assert (none.count, none.success_rate, none.p50_seconds, none.p95_seconds) == (0, None, None, None)
            orch.cancel_all()

    asyncio.run(main())


def test_backlog_warning_notice(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=1, backlog_warning=3) as orch:
            seen = collect(orch)
            orch.pause_queue()

            def warnings():
                return [ev for ev in seen if isinstance(ev, Notice) and ev.level == "warning"]

            for _ in range(3):
                orch.delay(TASK, ["print=x"])
            assert warnings() == []  # at the threshold, not above it
            orch.delay(TASK, ["print=x"])
            [w] = warnings()
            assert w.data == {"queued": 4, "threshold": 3} and "backlog" in w.message and "3" in w.message
            orch.delay(TASK, ["print=x"])
            orch.delay(TASK, ["print=x"])
            assert len(warnings()) == 1  # not repeated for every submission
            orch.cancel_all()
            await until(lambda: orch.queue_length == 0, what="the queue drained")
            for _ in range(4):
                orch.delay(TASK, ["print=x"])
            assert len(warnings()) == 2  # warns again after the backlog drained
            orch.cancel_all()

    asyncio.run(main())


# ---------------------------------------------------------------- cancellation in every state
def test_cancel_while_queued(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            orch.pause_queue()
            rid = orch.delay(TASK, ["print=never"], max_retries=3)
            assert orch.cancel(rid) is True
            res = await orch.wait(rid, timeout=5)
            assert res.outcome.kind is OutcomeKind.CANCELLED and "while queued" in res.outcome.message
            orch.resume_queue()
            await asyncio.sleep(0.2)
            [run] = rows(orch)
            assert run.started_at is None and run.pid is None and run.outcome.kind is OutcomeKind.CANCELLED
            assert orch.dead_letters() == []

    asyncio.run(main())


def test_cancel_while_running(home, tmp_path):
    gate = tmp_path / "gate"

    async def main():
        async with TaskOrchestrator(home) as orch:
            rid = orch.delay(TASK, ["pid", f"gate={gate}"], max_retries=3, backoff_base=0.01)
            await until(lambda: "pid" in orch.status(rid).stdout, what="running")
            pid = orch.status(rid).run.pid
            assert orch.cancel(rid) is True
            res = await orch.wait(rid, timeout=15)
            assert res.outcome.kind is OutcomeKind.CANCELLED and "cancelled by the user" in res.outcome.message
            assert pid_gone(pid)
            await asyncio.sleep(0.2)
            assert orch.registry.count() == 1 and orch.dead_letters() == []  # a cancelled run is not retried

    asyncio.run(main())


def test_cancel_while_waiting_for_a_retry(home):
    clock = FakeClock()

    async def main():
        async with TaskOrchestrator(home, clock=clock) as orch:
            seen = collect(orch)
            rid = orch.delay(TASK, ["--exit", "1"], max_retries=3, backoff_base=3600, backoff_cap=3600, jitter=0)
            await until(lambda: any(isinstance(ev, RetryScheduled) for ev in seen), what="a retry is scheduled")
            assert orch.cancel(rid) is True
            res = await orch.wait(rid, timeout=5)
            assert res.outcome.kind is OutcomeKind.CANCELLED and "waiting to retry" in res.outcome.message
            assert res.attempts == 2
            clock.advance(7200)  # past the backoff: nothing may start (the timer was cancelled)
            assert clock.pending == [] and orch.running_count == 0
            chain = rows(orch)
            assert len(chain) == 2
            assert chain[1].parent_id == rid and chain[1].started_at is None
            assert chain[1].outcome.kind is OutcomeKind.CANCELLED
            assert orch.dead_letters() == [] and orch.queue_length == 0 and orch.running_count == 0

    asyncio.run(main())
