"""Scheduler and triggers with real runs, a real registry and real second processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prismq_desktop.core import OutcomeKind, RunSpec, RunStatus
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator, TaskPattern
from prismq_desktop.core.schedule.model import ScheduleError
from prismq_desktop.core.schedule.scheduler import make_trigger
from prismq_desktop.core.schedule.triggers import (
    CronTrigger,
    IntervalTrigger,
    OneShotTrigger,
    TriggerError,
    describe_cron,
    local_text,
    next_fires,
    parse_when,
)
from prismq_desktop.core.store import RunQuery

PY = sys.executable
SCRIPTS = Path(__file__).parents[2] / "scripts"
BERLIN = "Europe/Berlin"


def run_async(coro):
    with asyncio.Runner() as runner:
        return runner.run(coro)


def sleeper(seconds: float) -> RunSpec:
    return RunSpec(PY, ("-S", "-c", f"import time; time.sleep({seconds})"))


def intervals(runs):
    return sorted((r.started_at, r.ended_at) for r in runs if r.started_at is not None)


# ---------------------------------------------------------------- triggers
def test_interval_grid_has_no_drift():
    t = IntervalTrigger(10, start=1000.0)
    assert t.next_after(999) == 1000
    assert t.next_after(1000) == 1010
    assert t.next_after(1013.7) == 1020  # a late wake-up stays on the grid
    fires = next_fires(t, 1000, after=1000.0)
    assert fires[-1] == 1000 + 1000 * 10
    assert all(b > a for a, b in zip(fires, fires[1:], strict=False))
    assert IntervalTrigger(10, 1000.0, end=1025).next_after(1020) is None


def test_interval_float_steps_always_advance():
    t = IntervalTrigger(0.1, start=1795448000.3)
    ts = t.start
    for _ in range(5000):
        nxt = t.next_after(ts)
        assert nxt is not None and nxt > ts
        ts = nxt


def test_cron_fields_aliases_and_errors():
    after = parse_when("2026-11-23T10:07:00", "UTC")
    assert [local_text(x, "UTC") for x in next_fires(CronTrigger("*/15 * * * *"), 3, after)] == [
        "2026-11-23 10:15:00 UTC", "2026-11-23 10:30:00 UTC", "2026-11-23 10:45:00 UTC"]
    assert [local_text(x, "UTC") for x in next_fires(CronTrigger("30 * * * * *"), 2, after)] == [
        "2026-11-23 10:07:30 UTC", "2026-11-23 10:08:30 UTC"]  # six fields: seconds first
    assert local_text(next_fires(CronTrigger("@hourly"), 1, after)[0], "UTC") == "2026-11-23 11:00:00 UTC"
    assert local_text(next_fires(CronTrigger("@daily"), 1, after)[0], "UTC") == "2026-11-24 00:00:00 UTC"
    for bad in ("61 * * * *", "* * *", "@sometimes", "a b c d e"):
        with pytest.raises(TriggerError):
            CronTrigger(bad)
    with pytest.raises(TriggerError, match="unknown timezone"):
        CronTrigger("* * * * *", "Mars/Olympus")
    with pytest.raises(TriggerError):
        IntervalTrigger(0, 0)


def test_cron_across_dst_spring_forward():
    after = parse_when("2026-03-28T03:00", BERLIN)
    fires = [local_text(x, BERLIN) for x in next_fires(CronTrigger("30 2 * * *", BERLIN), 3, after)]
    # 02:30 does not exist on 29 March 2026 in Berlin: it fires once, at 03:00
    assert fires == ["2026-03-29 03:00:00 CEST", "2026-03-30 02:30:00 CEST", "2026-03-31 02:30:00 CEST"]


def test_cron_across_dst_fall_back():
    after = parse_when("2026-10-24T03:00", BERLIN)
    fixed = [local_text(x, BERLIN) for x in next_fires(CronTrigger("30 2 * * *", BERLIN), 3, after)]
    assert fixed == ["2026-10-25 02:30:00 CEST", "2026-10-26 02:30:00 CET", "2026-10-27 02:30:00 CET"]  # once, not twice
    after = parse_when("2026-10-25T01:50", BERLIN)
    stepped = next_fires(CronTrigger("*/30 * * * *", BERLIN), 6, after)
    # every 30 minutes of real time, through the repeated hour
    assert [b - a for a, b in zip(stepped, stepped[1:], strict=False)] == [1800.0] * 5
    assert [local_text(x, BERLIN) for x in stepped[:4]] == [
        "2026-10-25 02:00:00 CEST", "2026-10-25 02:30:00 CEST", "2026-10-25 02:00:00 CET", "2026-10-25 02:30:00 CET"]


def test_interval_is_real_time_across_dst():
    start = parse_when("2026-10-25T01:00", BERLIN)
    fires = next_fires(IntervalTrigger(3600, start, timezone=BERLIN), 4, after=start)
    assert [b - a for a, b in zip(fires, fires[1:], strict=False)] == [3600.0] * 3


def test_one_shot_and_words():
    t = OneShotTrigger(2000.0)
    assert t.next_after(1000) == 2000 and t.next_after(2000) is None
    assert describe_cron("0 2 * * 1-5") == "at 02:00 on weekdays"
    assert describe_cron("*/5 * * * *") == "every 5 minutes"
    assert describe_cron("15 9 1 * *") == "at 09:15 on day 1 of each month"
    assert IntervalTrigger(300, 0).describe() == "every 5 minutes"
    assert IntervalTrigger(7200, 0).describe() == "every 2 hours"


# ---------------------------------------------------------------- overlap policies
@pytest.mark.usefixtures("fast_intervals")
def test_forbid_records_skips_and_never_overlaps(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            sch = orch.scheduler
            s = sch.add("slow", sleeper(0.9), make_trigger(interval_seconds=0.3))
            sch.start()
            await asyncio.sleep(2.6)
            await sch.stop()
            while orch.engine.active():
                await asyncio.sleep(0.05)
            return sch.history(s.id, limit=100)

    runs = run_async(main())
    started = [r for r in runs if r.outcome.kind is OutcomeKind.SUCCEEDED]
    skipped = [r for r in runs if r.outcome.kind is OutcomeKind.SKIPPED]
    assert len(started) >= 2 and len(skipped) >= 3
    assert all("overlap policy forbid" in r.error for r in skipped)
    spans = intervals(started)
    assert all(prev_end <= next_start for (_, prev_end), (next_start, _) in zip(spans, spans[1:], strict=False))


@pytest.mark.usefixtures("fast_intervals")
def test_allow_overlaps(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            s = orch.scheduler.add("free", sleeper(0.8), make_trigger(interval_seconds=0.25), overlap="allow")
            orch.scheduler.start()
            await asyncio.sleep(1.3)
            await orch.scheduler.stop()
            while orch.engine.active():
                await asyncio.sleep(0.05)
            return orch.scheduler.history(s.id)

    spans = intervals(run_async(main()))
    assert len(spans) >= 3
    assert any(prev_end > next_start for (_, prev_end), (next_start, _) in zip(spans, spans[1:], strict=False))


@pytest.mark.usefixtures("fast_intervals")
def test_replace_cancels_the_running_one(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            s = orch.scheduler.add("fresh", sleeper(30), make_trigger(interval_seconds=0.6), overlap="replace")
            orch.scheduler.start()
            await asyncio.sleep(1.5)
            await orch.scheduler.stop()
            return orch.scheduler.history(s.id)

    runs = run_async(main())
    cancelled = [r for r in runs if r.outcome and r.outcome.kind is OutcomeKind.CANCELLED]
    assert len(runs) >= 2 and len(cancelled) >= 1


def test_queue_starts_the_fire_when_the_running_one_ends(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            sch = orch.scheduler
            s = sch.add("line", sleeper(0.7), make_trigger(interval_seconds=5), overlap="queue")
            sch.start()
            first = sch.run_now(s.id)
            await asyncio.sleep(0.2)
            assert sch.run_now(s.id) is None  # queued behind `first`
            await orch.wait(first)
            deadline = time.monotonic() + 10
            while len([r for r in sch.history(s.id) if r.status is RunStatus.DONE]) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await sch.stop()
            return sch.history(s.id)

    runs = run_async(main())
    done = [r for r in runs if r.outcome and r.outcome.kind is OutcomeKind.SUCCEEDED]
    assert len(done) == 2
    assert {r.trigger for r in done} == {"run now", "queued fire"}
    spans = intervals(done)
    assert spans[0][1] <= spans[1][0]


# ---------------------------------------------------------------- misfires and catch-up
@pytest.mark.parametrize(("policy", "runs_expected", "missed_expected"), [("coalesce", 1, 0), ("all", 3, 2), ("skip", 0, 5)])
def test_catch_up_after_downtime(home, policy, runs_expected, missed_expected):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            sch = orch.scheduler
            now = time.time()
            # a schedule whose last fire is in the past when the scheduler starts: 5 fires were missed
            trig = IntervalTrigger(60, start=now - 5 * 60 + 30)  # the next regular fire is 30 s away
            s = sch.add("nightly", RunSpec(PY, ("-S", "-c", "pass")), trig, catchup=policy, catchup_limit=3, misfire_grace=5)
            orch.registry.update_schedule(s.id, {"next_fire": trig.start})
            sch.start()
            await asyncio.sleep(1.0)
            while orch.engine.active():
                await asyncio.sleep(0.05)
            await sch.stop()
            return sch.history(s.id, limit=50), sch.get(s.id)

    runs, sched = run_async(main())
    ran = [r for r in runs if r.outcome.kind is OutcomeKind.SUCCEEDED]
    missed = [r for r in runs if r.outcome.kind is OutcomeKind.MISSED]
    assert len(ran) == runs_expected
    assert len(missed) == missed_expected
    assert all("missed the fire due" in r.error for r in missed)
    if policy == "coalesce":  # ONE record in Runs and History, naming how many fires it stands for
        assert len(runs) == 1 and "5 missed fires coalesced" in runs[0].trigger
    assert sched.next_fire > time.time() - 1  # back on the grid, in the future
    assert (sched.next_fire - sched.trigger.start) % 60 == pytest.approx(0, abs=1e-6)


@pytest.mark.usefixtures("fast_intervals")
def test_two_scheduler_processes_fire_each_due_time_once(home):
    async def setup():
        async with TaskOrchestrator(home) as orch:
            s = orch.scheduler.add("shared", RunSpec(PY, ("-S", "-c", "pass")), make_trigger(interval_seconds=0.25))
            return s.id

    sid = run_async(setup())
    procs = [subprocess.Popen([PY, str(SCRIPTS / "sched_process.py"), str(home), "3"], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.wait(60) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    async def check():
        async with TaskOrchestrator(home) as orch:
            return orch.registry.fire_claims(sid), orch.registry.query(RunQuery(schedule_id=sid, limit=1000))

    claims, runs = run_async(check())
    dues = [due for due, _ in claims]
    assert len(dues) >= 8
    assert len(dues) == len(set(dues))  # each due time claimed once
    assert len({owner for _, owner in claims}) == 2  # and both processes really competed
    assert len(runs) == len(dues)  # one run (or skip record) per due time, never two
    assert all(r.status is RunStatus.DONE for r in runs)


# ---------------------------------------------------------------- CRUD
def test_edit_enable_disable_delete_run_now(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            sch = orch.scheduler
            s = sch.add("job", RunSpec(PY, ("-S", "-c", "print('hi')")), make_trigger(interval_seconds=3600))
            first_next = s.next_fire
            with pytest.raises(ScheduleError, match="already exists"):
                sch.add("job", RunSpec(PY), make_trigger(interval_seconds=5))
            edited = sch.update(s.id, trigger=make_trigger(cron="0 3 * * *", timezone=BERLIN))
            assert edited.next_fire != first_next and edited.describe() == "at 03:00 every day"
            assert local_text(edited.next_fire, BERLIN).endswith("03:00:00 CET")
            assert not sch.disable("job").enabled
            assert sch.enable("job").enabled
            run_id = sch.run_now("job")
            result = await orch.wait(run_id)
            assert result.ok and result.stdout == "hi" and result.run.trigger == "run now"
            sch.remove("job")
            with pytest.raises(ScheduleError):
                sch.get("job")
            kept = orch.registry.get(run_id)
            return kept

    kept = run_async(main())
    assert kept is not None and kept.schedule_id is not None  # history survives the schedule


def test_one_shot_fires_once(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            sch = orch.scheduler
            s = sch.add("once", RunSpec(PY, ("-S", "-c", "pass")), make_trigger(at=time.time() + 0.3))
            sch.start()
            await asyncio.sleep(1.2)
            while orch.engine.active():
                await asyncio.sleep(0.05)
            await sch.stop()
            return sch.history(s.id), sch.get(s.id)

    runs, s = run_async(main())
    assert len(runs) == 1 and runs[0].outcome.kind is OutcomeKind.SUCCEEDED
    assert s.next_fire is None


@pytest.mark.usefixtures("fast_intervals")
def test_jitter_delays_within_bound_and_keeps_grid(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            sch = orch.scheduler
            trig = make_trigger(interval_seconds=0.4)
            s = sch.add("jit", RunSpec(PY, ("-S", "-c", "pass")), trig, jitter=0.2, overlap="allow")
            sch.start()
            await asyncio.sleep(2.0)
            await sch.stop()
            while orch.engine.active():
                await asyncio.sleep(0.05)
            return orch.registry.fire_claims(s.id), sch.history(s.id), trig

    claims, runs, trig = run_async(main())
    assert len(claims) >= 3
    for due, _ in claims:
        assert (due - trig.start) / 0.4 == pytest.approx(round((due - trig.start) / 0.4), abs=1e-6)
    created = sorted(r.created_at for r in runs)
    dues = sorted(d for d, _ in claims)
    assert all(0 <= c - d < 0.2 + 0.15 for c, d in zip(created, dues, strict=False))


@pytest.mark.usefixtures("fast_intervals")
def test_execute_periodic_creates_a_schedule(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            result = await orch.execute(PY, ["-S", "-c", "print('p')"], interval_seconds=0.3, task_name="cleanup_temp_files")
            assert result.pattern is TaskPattern.PERIODIC and result.schedule_id is not None
            await asyncio.sleep(1.0)
            await orch.scheduler.stop()
            while orch.engine.active():
                await asyncio.sleep(0.05)
            return orch.scheduler.get("cleanup_temp_files"), orch.scheduler.history("cleanup_temp_files")

    s, runs = run_async(main())
    assert s.describe() == "every 0.3 seconds"
    assert len(runs) >= 2 and all(r.name == "cleanup_temp_files" for r in runs)


def test_cli_schedule_commands(home):
    base = [PY, "-m", "prismq_desktop", "--data-dir", str(home), "schedule"]

    def cli(*args):
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)

    out = cli("add", "tick", "--every", "1h", PY, "--", "-S", "-c", "print('tock')")
    assert out.returncode == 0 and "every hour" in out.stdout
    bad = cli("add", "bad", "--cron", "99 * * * *", PY)
    assert bad.returncode == 2 and "invalid cron expression" in bad.stderr and bad.stderr.count("\n") == 1
    listing = cli("list", "--json")
    assert '"name": "tick"' in listing.stdout
    assert cli("disable", "tick").returncode == 0
    now = cli("run-now", "tick")
    assert now.returncode == 0 and "tock" in now.stdout
    assert "run now" in cli("history", "tick").stdout
    assert cli("remove", "tick").returncode == 0
    assert cli("list").stdout.strip() == "no schedules"
