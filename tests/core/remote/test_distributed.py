"""Guarantees across processes and data dirs that share one Redis: idempotency, exactly-once fires,
and the orchestrator's retries, dead letters, priorities, after= and callbacks on remote runs."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prismq_desktop.core.models import OutcomeKind, RunSpec
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.patterns import Priority
from prismq_desktop.core.remote.locks import DistributedLocks
from prismq_desktop.core.store.query import RunQuery
from prismq_desktop.core.store.registry import RunRegistry
from tests.core.remote.conftest import CLI, remote_env

# POSIX-only: needs redis-server (no Windows build is supported by Redis) and POSIX signals to kill workers
pytestmark = [pytest.mark.slow, pytest.mark.posix_only]

REPO = str(Path(__file__).parents[3])

SUBMITTER = """
import asyncio, sys, time
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.models import RunSpec

home, url, script, at = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])

async def main():
    async with TaskOrchestrator(home, broker=url) as orch:
        while time.time() < at:   # both processes submit at the same instant
            pass
        run_id = orch.delay(RunSpec(script, where="remote:shared"), idempotency_key="nightly-report")
        result = await orch.wait(run_id, timeout=60)
        print(result.run.outcome.kind.value, flush=True)

asyncio.run(main())
"""


def test_two_submitting_processes_with_one_idempotency_key_make_one_run(redis_url, shared_worker, tmp_path):
    marker = tmp_path / "ran"
    script = tmp_path / "once.py"
    script.write_text(f"import os, time\nopen({str(marker)!r}, 'a').write(os.environ['PRISMQ_RUN_ID'] + '\\n')\n"
                      "time.sleep(1)\n")
    sub = tmp_path / "submit.py"
    sub.write_text(SUBMITTER)
    at = time.time() + 3
    procs = [subprocess.Popen([sys.executable, str(sub), str(tmp_path / f"home{i}"), redis_url, str(script), str(at)],
                              env=remote_env(redis_url), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(2)]
    outs = [p.communicate(timeout=90) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert len(marker.read_text().split()) == 1  # it ran once
    kinds = sorted(o[0].decode().strip() for o in outs)
    assert kinds == ["skipped", "succeeded"], outs  # the other one was told, and recorded why
    for i in range(2):
        with RunRegistry(tmp_path / f"home{i}" / "registry.sqlite3") as reg:
            for run in reg.query(RunQuery(limit=10)):
                if run.outcome.kind is OutcomeKind.SKIPPED:
                    # the owner's run id is named once it is recorded; a claim a moment older names its process
                    assert "nightly-report" in run.outcome.message
                    assert re.search(r"held by (run #\d+|a submission) on \S+ \(pid \d+\)", run.outcome.message)


def test_a_dead_owners_idempotency_key_expires(redis_url, tmp_path, rclient):
    holder = tmp_path / "hold.py"
    holder.write_text(textwrap.dedent(f"""
        import time
        from prismq_desktop.core.remote.locks import DistributedLocks
        locks = DistributedLocks({redis_url!r}, ttl=1.0)
        token, _ = locks.acquire("dead-owner", {{"run_id": 1}})
        assert token
        print("held", flush=True)
        time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, str(holder)], cwd=REPO, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"held\n"
    locks = DistributedLocks(redis_url, ttl=1.0)
    try:
        token, info = locks.acquire("dead-owner", {})
        assert token is None and info["run_id"] == 1  # held by a live owner
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        time.sleep(1.2)
        token, info = locks.acquire("dead-owner", {})
        assert token is not None  # expired: nobody waits on a dead owner
        assert locks.release("dead-owner", token) and not rclient.exists("prismq:idem:dead-owner")
        assert not locks.release("dead-owner", "someone-else")
    finally:
        locks.close()


def test_a_live_owner_keeps_its_key_past_the_ttl_and_releases_it_at_the_end(redis_url, shared_worker, tmp_path, rclient):
    script = tmp_path / "two.py"
    script.write_text("import time; time.sleep(2)\n")

    async def main() -> None:
        async with TaskOrchestrator(tmp_path / "home", broker=redis_url, lock_ttl=0.6) as orch:
            run_id = orch.delay(RunSpec(str(script), where="remote:shared"), idempotency_key="long-one")
            await asyncio.sleep(1.5)  # past the TTL: refreshed by its live owner
            assert rclient.exists("prismq:idem:long-one")
            again = orch.delay(RunSpec(str(script), where="remote:shared"), idempotency_key="long-one")
            assert again == run_id
            result = await orch.wait(run_id, timeout=30)
            assert result.run.outcome.kind is OutcomeKind.SUCCEEDED
            assert not rclient.exists("prismq:idem:long-one")  # released at the end

    asyncio.run(main())


def test_two_schedulers_on_separate_data_dirs_and_one_redis_fire_each_slot_once(redis_url, tmp_path, rclient):
    """60 s at 1 s: 0 double fires, 0 missed (each slot fired by exactly one of the two)."""
    homes = [tmp_path / "a", tmp_path / "b"]
    env = remote_env(redis_url)
    for home in homes:
        res = subprocess.run([*CLI, "--data-dir", str(home), "schedule", "add", "--cron", "* * * * * *",
                              "--overlap", "allow", "tick", "true"], env=env, capture_output=True, timeout=60)
        assert res.returncode == 0, res.stderr
    rclient.delete(*(rclient.keys("prismq:fire:tick:*") or ["none"]))
    procs = [subprocess.Popen([*CLI, "--data-dir", str(h), "scheduler"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for h in homes]
    try:
        time.sleep(60)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        errs = [p.communicate(timeout=30)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    dues = sorted(float(k.decode().rsplit(":", 1)[1]) for k in rclient.keys("prismq:fire:tick:*"))
    assert len(dues) >= 55, len(dues)
    assert all(abs((b - a) - 1.0) < 1e-6 for a, b in zip(dues, dues[1:], strict=False)), "a slot was missed"
    fired, missed, winners = 0, 0, set()
    for home in homes:
        with RunRegistry(home / "registry.sqlite3") as reg:
            runs = [r for r in reg.query(RunQuery(limit=1000)) if r.schedule_id is not None]
        missed += sum(1 for r in runs if r.outcome is not None and r.outcome.kind in (OutcomeKind.MISSED, OutcomeKind.SKIPPED))
        mine = [r for r in runs if r.outcome is None or r.outcome.kind not in (OutcomeKind.MISSED, OutcomeKind.SKIPPED)]
        fired += len(mine)
        if mine:
            winners.add(home.name)
    assert missed == 0
    assert fired == len(dues), (fired, len(dues))  # every claimed slot ran once, none twice
    print(json.dumps({"slots": len(dues), "fired": fired, "schedulers_that_fired": sorted(winners)}))


def test_retries_dead_letters_priorities_after_and_callbacks_apply_to_remote_runs(redis_url, start_worker, tmp_path):
    start_worker("orch-q", concurrency=1)
    order = tmp_path / "order"
    fail = tmp_path / "fail.py"
    fail.write_text("import sys; print('failing'); sys.exit(5)\n")
    note = tmp_path / "note.py"
    note.write_text(f"import sys, time\ntime.sleep(float(sys.argv[2]))\nopen({str(order)!r}, 'a').write(sys.argv[1] + '\\n')\n")

    def spec(path: Path, *args: str) -> RunSpec:
        return RunSpec(str(path), args=args, where="remote:orch-q")

    async def main() -> dict[str, object]:
        called: list[object] = []
        async with TaskOrchestrator(tmp_path / "home", broker=redis_url, max_concurrent=8) as orch:
            # retries, then a dead letter, then the callback
            failing = orch.delay(spec(fail), max_retries=1, backoff_base=0.1, jitter=0, callback=called.append)
            res = await orch.wait(failing, timeout=60)
            assert res.run.outcome.kind is OutcomeKind.FAILED and res.run.exit_code == 5 and res.run.attempt == 2
            assert [d.first_run_id for d in orch.registry.dead_letters()] == [failing]
            # priorities at the broker: one worker slot busy, then LOW, LOW, CRITICAL queued behind it
            blocker = orch.delay(spec(note, "blocker", "1.5"))
            while orch.engine.get(blocker).status.value != "running":
                await asyncio.sleep(0.05)
            lows = [orch.delay(spec(note, f"low{i}", "0"), priority=Priority.LOW) for i in range(2)]
            await asyncio.sleep(0.3)
            crit = orch.delay(spec(note, "critical", "0"), priority=Priority.CRITICAL)
            # after=: runs only once its parent succeeded
            child = orch.delay(spec(note, "child", "0"), after=[crit])
            for rid in (blocker, *lows, crit, child):
                assert (await orch.wait(rid, timeout=60)).run.outcome.kind is OutcomeKind.SUCCEEDED
            await asyncio.sleep(0.2)
            return {"called": called, "order": order.read_text().split()}

    got = asyncio.run(main())
    assert len(got["called"]) == 1  # the callback ran once, with the final result
    order_seen = got["order"]
    assert order_seen[0] == "blocker"
    assert order_seen.index("critical") < order_seen.index("low0") and order_seen.index("critical") < order_seen.index("low1")
    assert order_seen.index("child") > order_seen.index("critical")
