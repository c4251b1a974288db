"""A registry locked by another process past the busy timeout, at every write point but a run's end
(that one is in test_engine_faults.py).

A real second process (tests/scripts/lock_holder.py) holds `BEGIN EXCLUSIVE` several busy
timeouts long, taken at the exact moment under test, then lets go. What the engine, the
orchestrator and the scheduler own (a new run, a skip record, cancel all, a dead letter, a
claimed fire) is kept in memory and written once the lock is gone: never lost, never doubled,
never announced (nor started) before it is stored. A one-shot command (the CLI) says so in
one line naming the holder's pid, exits 1 and writes nothing.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from prismq_desktop.core import OutcomeKind, RunChanged, RunEngine, RunMode, RunRegistry, RunSpec, RunStatus
from prismq_desktop.core.events import DeadLettered, ScheduleChanged
from prismq_desktop.core.models import Outcome
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.paths import registry_path
from prismq_desktop.core.schedule.scheduler import make_trigger
from prismq_desktop.core.store import RegistryLocked, RunQuery
from prismq_desktop.core.store.schema import ENV_BUSY_TIMEOUT
from tests.core.test_cli import argv as cli_argv
from tests.core.test_cli import clean_env
from tests.helpers import LockHolder, wait_for

PY = sys.executable
BUSY = 0.3  # the lowered busy timeout
HOLD = 4 * BUSY + 0.5  # how long the holder keeps the lock: several busy timeouts


@pytest.fixture
def busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registries opened in this process give up waiting for a lock after BUSY seconds."""
    monkeypatch.setenv(ENV_BUSY_TIMEOUT, str(BUSY))


def touch(scripts: Path, marker: Path) -> RunSpec:
    """A run that proves it started: it creates `marker`."""
    return RunSpec(str(scripts / "cli_touch.py"), (str(marker),), interpreter=PY)


def changes(bus_events: list[Any], run_id: int) -> list[tuple[str, RunStatus]]:
    return [(ev.kind, ev.run.status) for ev in bus_events if isinstance(ev, RunChanged) and ev.run.id == run_id]


async def until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------ a new run's row
@pytest.mark.parametrize("mode", [RunMode.ASYNC, RunMode.THREADED])
def test_a_new_run_is_stored_before_it_is_announced_or_started(home: Path, scripts: Path, tmp_path: Path,
                                                               mode: RunMode) -> None:
    marker = tmp_path / "started"

    async def main() -> tuple[Any, list[Any], float]:
        engine = RunEngine(home, registry=RunRegistry(registry_path(home), busy_timeout=BUSY))
        events: list[Any] = []
        engine.bus.subscribe_sync(events.append)
        await engine.run(RunSpec(PY, ("-c", "pass")), mode=mode)  # this process now holds a block of run ids
        holder = LockHolder(registry_path(home), scripts)
        try:
            handle = await engine.start(touch(scripts, marker), mode=mode)  # its row cannot be written now
            await asyncio.sleep(HOLD)
            assert not marker.exists(), "the run started before its row was stored"
            assert handle.run.status is RunStatus.QUEUED and not handle.done
            assert engine.unsaved == 1
            assert engine.registry.get(handle.id) is None  # reads go on under the lock (WAL)
            assert changes(events, handle.id) == [], "announced before it was stored"
            holder.release()
        finally:
            holder.close()
        run = await asyncio.wait_for(handle.wait(), 20)
        await engine.shutdown()
        assert holder.released_at is not None
        return run, changes(events, handle.id), holder.released_at

    run, seen, released_at = asyncio.run(main())
    assert run.outcome is not None and run.outcome.kind is OutcomeKind.SUCCEEDED
    assert seen == [("queued", RunStatus.QUEUED), ("started", RunStatus.RUNNING), ("finished", RunStatus.DONE)]
    assert marker.stat().st_mtime >= released_at
    with RunRegistry(registry_path(home)) as reg:
        stored = reg.get(run.id)
    assert stored is not None and stored.outcome == run.outcome and stored.started_at >= released_at


def test_a_blocking_run_waits_for_its_row(home: Path, scripts: Path, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    engine = RunEngine(home, registry=RunRegistry(registry_path(home), busy_timeout=BUSY))
    holder = None
    try:
        engine.run_blocking(RunSpec(PY, ("-c", "pass")))  # ids reserved: the next insert is what meets the lock
        holder = LockHolder(registry_path(home), scripts)
        timer = threading.Timer(HOLD, holder.release)
        timer.start()
        try:
            handle = engine.run_blocking(touch(scripts, marker))
        finally:
            timer.join()
    finally:
        if holder is not None:
            holder.close()
        engine.close()
    assert holder.released_at is not None
    assert handle.run.outcome is not None and handle.run.outcome.kind is OutcomeKind.SUCCEEDED
    assert marker.stat().st_mtime >= holder.released_at
    with RunRegistry(registry_path(home)) as reg:
        stored = reg.get(handle.id)
    assert stored is not None and stored.outcome == handle.run.outcome


def test_a_skip_record_is_kept_until_stored(home: Path, scripts: Path) -> None:
    async def main() -> tuple[Any, list[Any]]:
        engine = RunEngine(home, registry=RunRegistry(registry_path(home), busy_timeout=BUSY))
        events: list[Any] = []
        engine.bus.subscribe_sync(events.append)
        engine.record_unstarted(RunSpec("x.py"), Outcome(OutcomeKind.SKIPPED, None, "first"))  # reserves ids
        holder = LockHolder(registry_path(home), scripts)
        try:
            done = engine.record_unstarted(RunSpec("x.py"), Outcome(OutcomeKind.SKIPPED, None, "while locked"))
            assert done.status is RunStatus.DONE
            await asyncio.sleep(HOLD)
            assert engine.registry.get(done.id) is None and engine.unsaved == 1
            assert changes(events, done.id) == []
            holder.release()
        finally:
            holder.close()
        assert await engine.wait_saved(20)
        stored = engine.registry.get(done.id)
        await engine.shutdown()
        return stored, changes(events, done.id)

    stored, seen = asyncio.run(main())
    assert stored is not None and stored.outcome is not None
    assert stored.outcome.kind is OutcomeKind.SKIPPED and stored.outcome.message == "while locked"
    assert seen == [("finished", RunStatus.DONE)]


@pytest.mark.parametrize("mode", ["async", "local"])
def test_cli_run_under_a_lock_is_one_line_and_writes_nothing(home: Path, scripts: Path, tmp_path: Path,
                                                              mode: str) -> None:
    marker = tmp_path / "started"
    RunRegistry(registry_path(home)).close()
    holder = LockHolder(registry_path(home), scripts)
    try:
        res = subprocess.run(cli_argv(home, "run", "--mode", mode, "--python", PY, str(scripts / "cli_touch.py"),
                                      "--", str(marker)),
                             env=clean_env({ENV_BUSY_TIMEOUT: str(BUSY)}), capture_output=True, text=True, timeout=60)
        holder.release()
    finally:
        holder.close()
    assert res.returncode == 1, res
    assert_locked_line(res.stderr, holder.pid)
    assert not marker.exists()
    with RunRegistry(registry_path(home)) as reg:
        assert reg.query(RunQuery(limit=10)) == []


def assert_locked_line(stderr: str, pid: int) -> None:
    assert "Traceback" not in stderr, stderr
    assert stderr.count("\n") == 1, f"expected one line, got {stderr!r}"
    assert f"is locked by another process (pid {pid}) for over {BUSY:g}s" in stderr, stderr
    assert stderr.rstrip().endswith("try again"), stderr


def test_an_idempotency_key_holds_while_the_first_row_waits(home: Path, scripts: Path, busy: None) -> None:
    async def main() -> tuple[int, int, list[Any]]:
        async with TaskOrchestrator(home, max_concurrent=1, mode=RunMode.ASYNC) as orch:
            await orch.submit(RunSpec(PY, ("-c", "pass")))  # ids at hand: the insert is what meets the lock
            holder = LockHolder(registry_path(home), scripts)
            try:
                first = orch.delay(RunSpec(PY, ("-c", "pass")), idempotency_key="nightly-report")
                await asyncio.sleep(HOLD)  # its row is refused meanwhile
                second = orch.delay(RunSpec(PY, ("-c", "pass")), idempotency_key="nightly-report")
                holder.release()
            finally:
                holder.close()
            await asyncio.wait_for(orch.wait(first), 20)
            return first, second, orch.registry.query(RunQuery(limit=10))

    first, second, runs = asyncio.run(main())
    assert second == first
    assert [r.idempotency_key for r in runs].count("nightly-report") == 1


# ------------------------------------------------------------------ cancel all
def test_cancel_all_under_a_lock_is_announced_and_released_once_stored(home: Path, scripts: Path, tmp_path: Path,
                                                                        busy: None) -> None:
    go = tmp_path / "go"

    async def main() -> tuple[list[Any], list[int], list[Any]]:
        async with TaskOrchestrator(home, max_concurrent=1, mode=RunMode.ASYNC) as orch:
            finished: list[int] = []
            orch.bus.subscribe_sync(
                lambda ev: finished.append(ev.run.id) if isinstance(ev, RunChanged) and ev.kind == "finished" else None)
            running = orch.delay(RunSpec(str(scripts / "wait_for_file.py"), (str(go), "0"), interpreter=PY))
            queued = [orch.delay(RunSpec(PY, ("-c", "pass"))) for _ in range(5)]
            ids = [running, *queued]
            await until(lambda: orch.status(running).run.status is RunStatus.RUNNING)
            waiters = [asyncio.ensure_future(orch.wait(i)) for i in ids]
            holder = LockHolder(registry_path(home), scripts)
            try:
                assert orch.cancel_all() == 6
                await asyncio.sleep(HOLD)
                assert finished == [], "announced before it was stored"
                assert not any(w.done() for w in waiters), "a waiter was released before the end was stored"
                stored = [orch.registry.get(i) for i in ids]
                assert [r.status for r in stored if r] == [RunStatus.RUNNING] + [RunStatus.QUEUED] * 5
                holder.release()
            finally:
                holder.close()
            results = await asyncio.wait_for(asyncio.gather(*waiters), 20)
            await until(lambda: len(finished) == 6)
            return results, sorted(finished), [orch.registry.get(i) for i in ids]

    results, finished, stored = asyncio.run(main())
    assert all(r.outcome.kind is OutcomeKind.CANCELLED for r in results)
    assert [r.outcome.message for r in results[1:]] == ["cancelled while queued (cancel all)"] * 5
    assert finished == sorted(r.run_id for r in results)  # each announced once
    assert [r.outcome for r in stored] == [r.outcome for r in results]


# ------------------------------------------------------------------ dead letters
def test_a_dead_letter_is_written_and_announced_after_the_lock(home: Path, scripts: Path, busy: None) -> None:
    async def main() -> tuple[Any, list[Any], list[Any]]:
        async with TaskOrchestrator(home, max_concurrent=1, mode=RunMode.ASYNC) as orch:
            holder = LockHolder(registry_path(home), scripts, later=True)
            try:
                dead: list[DeadLettered] = []

                def watch(ev: Any) -> None:
                    if isinstance(ev, DeadLettered):
                        dead.append(ev)
                    elif isinstance(ev, RunChanged) and ev.kind == "finished" and ev.run.attempt == 2 \
                            and holder.released_at is None:
                        holder.lock()  # the last attempt's end is stored: its dead letter is the next write

                orch.bus.subscribe_sync(watch)
                run_id = orch.delay(RunSpec(PY, ("-c", "raise SystemExit(3)")), max_retries=1, backoff_base=0.01,
                                    jitter=0)
                waiter = asyncio.ensure_future(orch.wait(run_id))
                await until(lambda: holder.locked)
                await asyncio.sleep(HOLD)
                assert dead == [] and not waiter.done()
                assert orch.registry.dead_letters() == []
                holder.release()
                result = await asyncio.wait_for(waiter, 20)
            finally:
                holder.close()
            return result, dead, orch.registry.dead_letters()

    result, dead, entries = asyncio.run(main())
    assert result.outcome.kind is OutcomeKind.FAILED and result.attempts == 2
    (entry,) = entries
    assert [d.dead_letter_id for d in dead] == [entry.id]
    assert entry.attempts == 2 and entry.run_id == result.run.id


def test_a_requeue_under_a_lock_is_refused_whole_and_works_once_released(home: Path, scripts: Path, busy: None) -> None:
    """A requeue claims its dead letter inside the run's own transaction (two processes never both
    requeue it: tests/core/orchestrator/test_requeue_race.py), so it cannot be kept for later: under
    a lock it is refused in one line with neither the run nor the mark written."""
    async def main() -> tuple[Any, Any, float]:
        async with TaskOrchestrator(home, max_concurrent=1, mode=RunMode.ASYNC) as orch:
            first = await orch.submit(RunSpec(PY, ("-c", "raise SystemExit(2)")), max_retries=1, backoff_base=0.01,
                                      jitter=0)
            assert first.outcome.kind is OutcomeKind.FAILED
            (entry,) = orch.registry.dead_letters()
            before = orch.registry.count()
            holder = LockHolder(registry_path(home), scripts)
            try:
                with pytest.raises(RegistryLocked, match="locked by another process") as refused:
                    orch.requeue_dead_letter(entry.id)
                assert "\n" not in str(refused.value)
                holder.release()
            finally:
                holder.close()
            assert orch.registry.count() == before and orch.registry.dead_letter(entry.id).requeued_run_id is None
            run_id = orch.requeue_dead_letter(entry.id)
            with pytest.raises(ValueError, match="already requeued"):
                orch.requeue_dead_letter(entry.id)
            result = await asyncio.wait_for(orch.wait(run_id), 20)
            assert holder.released_at is not None
            return result, orch.registry.dead_letter(entry.id), holder.released_at

    result, entry, released_at = asyncio.run(main())
    assert result.outcome.kind is OutcomeKind.FAILED  # the same failing spec, run again: it really ran
    assert result.run.started_at >= released_at
    assert entry.requeued_run_id == result.run_id


# ------------------------------------------------------------------ the scheduler's own writes
@pytest.mark.parametrize("ids", ["no id reserved yet", "ids reserved"])
def test_a_claimed_fire_is_recorded_then_started_after_the_lock(home: Path, scripts: Path, tmp_path: Path,
                                                                busy: None, ids: str) -> None:
    """The claim is stored, then the lock comes: the fire's run cannot be created (no id) or
    stored (ids at hand). It is kept, written once the lock goes, and only then started:
    one run for the due time, never two, never none."""
    marker = tmp_path / "fired"

    async def main() -> tuple[list[Any], list[Any], float, float]:
        async with TaskOrchestrator(home, max_concurrent=2, mode=RunMode.ASYNC) as orch:
            if ids == "ids reserved":
                orch.registry.reserve_id()
            due = time.time() + 0.5
            s = orch.scheduler.add("tick", touch(scripts, marker), make_trigger(interval_seconds=3600, start=due))
            holder = LockHolder(registry_path(home), scripts, later=True)
            try:
                def on_fired(ev: Any) -> None:
                    if isinstance(ev, ScheduleChanged) and ev.what == "fired" and holder.released_at is None:
                        holder.lock()  # right after the claim was stored, before the run is written

                orch.bus.subscribe_sync(on_fired)
                orch.scheduler.start()
                await until(lambda: holder.locked, 10)
                await asyncio.sleep(HOLD)
                assert not marker.exists(), "the fire started before its run was stored"
                assert orch.registry.query(RunQuery(schedule_id=s.id)) == []
                assert [d for d, _ in orch.registry.fire_claims(s.id)] == [due]
                holder.release()
            finally:
                holder.close()
            await until(lambda: [r.status for r in orch.registry.query(RunQuery(schedule_id=s.id))] == [RunStatus.DONE])
            await asyncio.sleep(1.0)  # time for a second fire, if there were to be one
            assert holder.released_at is not None
            return (orch.registry.query(RunQuery(schedule_id=s.id)), orch.registry.fire_claims(s.id),
                    holder.released_at, due)

    runs, claims, released_at, due = asyncio.run(main())
    (run,) = runs
    assert run.trigger == "schedule" and run.outcome is not None and run.outcome.kind is OutcomeKind.SUCCEEDED
    assert [d for d, _ in claims] == [due]
    assert run.started_at is not None and run.started_at >= released_at
    assert marker.stat().st_mtime >= released_at


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_the_headless_scheduler_fires_once_after_a_lock_over_the_due_time(home: Path, scripts: Path,
                                                                          tmp_path: Path) -> None:
    """`prismq-desktop scheduler` meets the lock at the claim itself: the fire waits (backoff),
    is claimed once the lock goes, and runs once."""
    marker = tmp_path / "fired"
    env = clean_env({ENV_BUSY_TIMEOUT: str(BUSY)})
    due = round(time.time() + 8)
    at = datetime.fromtimestamp(due, UTC).isoformat()
    res = subprocess.run(cli_argv(home, "schedule", "add", "once", "--at", at, "--python", PY,
                                  str(scripts / "cli_touch.py"), "--", str(marker)),
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    proc = subprocess.Popen(cli_argv(home, "scheduler"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    holder = None
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("scheduler running with 1 schedule(s)")
        time.sleep(max(0.0, due - 1.5 - time.time()))
        holder = LockHolder(registry_path(home), scripts)
        assert time.time() < due - 0.2, "this machine was too slow to take the lock before the due time"
        time.sleep(max(0.0, due + HOLD - time.time()))  # the lock is held across the due time
        assert not marker.exists()
        with RunRegistry(registry_path(home)) as reg:
            (row,) = reg.list_schedules()
            assert row["next_fire"] == due and reg.fire_claims(row["id"]) == []  # nothing claimed under the lock
        holder.release()
        wait_for(marker.exists, 20)
        time.sleep(1.0)  # a second fire would come now
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if holder is not None:
            holder.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and err.count("locked by another process") == 1, err  # said once, in the log
    assert holder.released_at is not None and marker.stat().st_mtime >= holder.released_at
    with RunRegistry(registry_path(home)) as reg:
        (row,) = reg.list_schedules()
        runs = reg.query(RunQuery(schedule_id=row["id"]))
        claims = reg.fire_claims(row["id"])
    assert [(r.trigger, r.outcome.kind if r.outcome else None) for r in runs] == [("schedule", OutcomeKind.SUCCEEDED)]
    assert [d for d, _ in claims] == [due]
    assert out.count("run #") == 2  # started, finished: one fire


# ------------------------------------------------------------------ one-shot commands
def state(home: Path) -> str:
    """Everything a command could change, as one comparable text."""
    with RunRegistry(registry_path(home)) as reg:
        return json.dumps({"schedules": reg.list_schedules(), "dead": [d.__dict__ | {"spec": d.spec.to_dict()}
                                                                        for d in reg.dead_letters(True)],
                           "runs": [r.id for r in reg.query(RunQuery(limit=100))]}, sort_keys=True, default=str)


ONE_SHOT = {
    "schedule add": ("schedule", "add", "second", "--every", "1h", "{script}"),
    "schedule enable": ("schedule", "enable", "first"),
    "schedule disable": ("schedule", "disable", "first"),
    "schedule remove": ("schedule", "remove", "first"),
    "schedule run-now": ("schedule", "run-now", "first"),
    "dead-letters purge": ("dead-letters", "--purge"),
    "dead-letters requeue": ("dead-letters", "--requeue", "1"),
}


@pytest.mark.parametrize("case", ONE_SHOT, ids=ONE_SHOT.keys())
def test_one_shot_commands_under_a_lock_say_so_and_change_nothing(home: Path, scripts: Path, tmp_path: Path,
                                                                   case: str) -> None:
    marker = tmp_path / "ran"
    script = str(scripts / "cli_touch.py")
    with RunRegistry(registry_path(home)) as reg:
        failed = reg.create(RunSpec(script, (str(marker),)))
        reg.add_dead_letter(failed, failed.id, 2, "gave up after 2 attempts")
        reg.add_schedule({"name": "first", "spec": RunSpec(script, (str(marker),), interpreter=PY).to_dict(),
                          "trigger": make_trigger(interval_seconds=3600).to_dict(), "enabled": case != "schedule enable",
                          "next_fire": time.time() + 3600})
    before = state(home)
    holder = LockHolder(registry_path(home), scripts)
    try:
        args = [a.replace("{script}", script) for a in ONE_SHOT[case]]
        res = subprocess.run(cli_argv(home, *args), env=clean_env({ENV_BUSY_TIMEOUT: str(BUSY)}),
                             capture_output=True, text=True, timeout=60)
        holder.release()
    finally:
        holder.close()
    assert res.returncode == 1, res
    assert_locked_line(res.stderr, holder.pid)
    assert state(home) == before, "a refused command changed the registry"
    assert not marker.exists()


def test_editing_a_schedule_under_a_lock_raises_and_changes_nothing(home: Path, scripts: Path, busy: None) -> None:
    async def main() -> None:
        async with TaskOrchestrator(home, max_concurrent=1) as orch:
            s = orch.scheduler.add("nightly", RunSpec("x.py"), make_trigger(interval_seconds=3600))
            before = orch.registry.get_schedule(s.id)
            holder = LockHolder(registry_path(home), scripts)
            try:
                with pytest.raises(RegistryLocked) as err:
                    orch.scheduler.update(s.id, jitter=5.0, name="renamed")
                assert err.value.pid == holder.pid
                assert orch.registry.get_schedule(s.id) == before
            finally:
                holder.close()

    asyncio.run(main())
