"""Caller-chosen run ids (`run_key="training_job_123"`): unique, validated, and accepted wherever a
numeric id is (status, wait, get_result, events, cancel, after=, the CLI's logs and history).

Real child processes, a real registry per test; the CLI is run as a real command.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from prismq_desktop.core import OutcomeKind, RunRegistry
from prismq_desktop.core.events import OutputBatch
from prismq_desktop.core.models import InvalidRunKey, check_run_key
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.store import RunQuery
from prismq_desktop.core.store.schema import MIGRATIONS, RunKeyTaken, RunNotFound
from tests.core.test_cli import cli, history, one_line_error

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
TASK = str(SCRIPTS / "orch_task.py")
PY = sys.executable


async def _until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("bad, why", [
    ("", "empty"), ("x" * 129, "129 characters"), ("12", "start with a letter"), ("-rf", "start with a letter"),
    ("a b", "only letters"), ("a/b", "only letters"), ("a\nb", "only letters"), ("é", "start with a letter"),
    ("job;rm", "only letters"), ("a\x00", "only letters"),
])
def test_a_bad_run_key_is_refused_with_one_line(bad, why):
    with pytest.raises(InvalidRunKey) as info:
        check_run_key(bad)
    assert why in str(info.value) and "\n" not in str(info.value)


def test_run_key_rules_accept_what_the_guide_uses():
    for good in ("training_job_123", "_x", "a" * 128, "nightly.2025-11-05", "ns:job-1"):
        assert check_run_key(good) == good
    with pytest.raises(InvalidRunKey):
        check_run_key(123)


def test_a_run_key_works_for_status_wait_events_logs_and_get_result(home):
    async def main():
        async with TaskOrchestrator(home, max_concurrent=2) as orch:
            run_id = orch.delay(TASK, ["print=hello", "sleep=0.3"], run_key="training_job_123")
            seen = []
            stream = asyncio.ensure_future(_collect(orch.events("training_job_123"), seen))
            assert orch.resolve("training_job_123") == run_id == orch.resolve(f"#{run_id}") == orch.resolve(str(run_id))
            assert orch.get_result("training_job_123") is None  # pending
            assert orch.status("training_job_123").run_id == run_id
            result = await orch.wait("training_job_123", timeout=30)
            await asyncio.wait_for(stream, 10)
            assert result.ok and result.stdout.strip() == "hello" and result.run.key == "training_job_123"
            assert orch.get_result("training_job_123").run_id == run_id
            assert b"hello" in b"".join(c.data for ev in seen if isinstance(ev, OutputBatch) for c in ev.chunks)
            assert orch.run_key(run_id) == "training_job_123"
            return run_id

    run_id = asyncio.run(main())
    # a later session (and another process) finds it by the same id
    async def later():
        async with TaskOrchestrator(home) as orch:
            assert orch.status("training_job_123").run_id == run_id
            assert orch.get_result("training_job_123").ok
    asyncio.run(later())


async def _collect(aiter, into):
    async for ev in aiter:
        into.append(ev)


def test_a_run_key_cancels_the_run_and_its_tree(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            orch.delay(TASK, ["print=up", "sleep=60"], run_key="long_one")
            await _until(lambda: orch.status("long_one").run.status.value == "running")
            assert orch.cancel("long_one")
            result = await orch.wait("long_one", timeout=30)
            assert result.outcome.kind is OutcomeKind.CANCELLED
    asyncio.run(main())


def test_a_taken_run_key_is_refused_and_nothing_is_run(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            first = orch.delay(TASK, ["print=one"], run_key="job")
            before = orch.registry.count()
            with pytest.raises(RunKeyTaken) as info:
                orch.delay(TASK, ["print=two"], run_key="job")
            assert f"already used by run #{first}" in str(info.value)
            with pytest.raises(InvalidRunKey):
                orch.delay(TASK, ["print=three"], run_key="not ok")
            assert (await orch.wait("job", timeout=30)).stdout.strip() == "one"
            assert orch.registry.count() == before  # the refused ones left no row
            # unkeyed runs submitted in the same turn as a keyed one are all stored, in order
            ids = [orch.delay(TASK, [f"print={i}"]) for i in range(3)]
            keyed = orch.delay(TASK, ["print=k"], run_key="job2")
            ids.append(orch.delay(TASK, ["print=last"]))
            for rid in [*ids, keyed]:
                assert (await orch.wait(rid, timeout=30)).ok
            assert ids[:3] == sorted(ids[:3]) and ids[2] < keyed < ids[3]
            with pytest.raises(RunNotFound):
                orch.status("nobody")
            with pytest.raises(KeyError):  # RunNotFound is a KeyError, as "no run #N" always was
                orch.get_result("nobody")
    asyncio.run(main())


def test_two_processes_cannot_take_the_same_run_key(home):
    """The unique index decides between processes: the second insert fails, the registry stays sound."""
    async def main():
        async with TaskOrchestrator(home) as orch:
            orch.delay(TASK, ["sleep=0.1"], run_key="shared")
            await orch.wait("shared", timeout=30)
    asyncio.run(main())
    res = cli(home, "run", "--run-id", "shared", TASK)
    assert res.returncode == 1 and "already used by run #" in one_line_error(res)
    reg = RunRegistry(home / "registry.sqlite3")  # a racing writer that skipped the check gets the index
    try:
        run = reg.new_run(reg.get(reg.resolve("shared")).spec, key="shared")
        with pytest.raises(RunKeyTaken):
            reg.insert([run])
        assert reg.count() == 1
    finally:
        reg.close()


def test_after_and_retries_keep_the_key_on_the_chain(home, tmp_path):
    counter = tmp_path / "count"

    async def main():
        async with TaskOrchestrator(home) as orch:
            orch.delay(TASK, ["--fail-until", "2", "--counter", str(counter), "print=done"], run_key="flaky",
                       max_retries=2, backoff_base=0.05, jitter=0)
            child = orch.delay(TASK, ["print=after"], after=["flaky"])
            result = await orch.wait("flaky", timeout=30)
            assert result.ok and result.attempts == 2
            assert (await orch.wait(child, timeout=30)).ok
            runs = orch.registry.query(RunQuery(limit=10))
            assert [r.key for r in runs].count("flaky") == 1  # only the first attempt holds it
    asyncio.run(main())


def test_cli_run_id_logs_and_history(home):
    res = cli(home, "run", "--run-id", "nightly_report", TASK, "--", "print=report ready")
    assert res.returncode == 0, res.stderr
    logs = cli(home, "logs", "nightly_report")
    assert logs.returncode == 0 and logs.stdout == b"report ready\n"
    (row,) = history(home)
    assert row["run_key"] == "nightly_report"
    assert cli(home, "logs", str(row["id"])).stdout == b"report ready\n"
    table = cli(home, "history")
    assert b"RUN ID" in table.stdout and b"nightly_report" in table.stdout
    missing = cli(home, "logs", "no_such_job")
    assert missing.returncode == 1 and "no run with id 'no_such_job'" in one_line_error(missing)
    bad = cli(home, "run", "--run-id", "bad id", TASK)
    assert bad.returncode == 2 and "may hold only" in one_line_error(bad)
    # the History tab's text filter finds it by its id too
    with RunRegistry(home / "registry.sqlite3") as reg:
        assert [r.key for r in reg.query(RunQuery(text="nightly_rep"))] == ["nightly_report"]


def test_cli_fire_and_forget_with_a_run_id(home):
    res = cli(home, "run", "--pattern", "fire_and_forget", "--run-id", "bg_job", TASK, "--", "print=bg")
    assert res.returncode == 0, res.stderr
    assert b"logs bg_job --follow" in res.stdout
    deadline = time.monotonic() + 30
    while True:
        rows = history(home)
        if rows and rows[0]["status"] == "done":
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert rows[0]["run_key"] == "bg_job" and rows[0]["outcome"] == "succeeded"
    assert cli(home, "logs", "bg_job").stdout == b"bg\n"


def test_the_run_key_migration_is_self_contained_and_old_registries_load(home):
    con = sqlite3.connect(home / "registry.sqlite3")
    for i, migration in enumerate(MIGRATIONS[:-1]):
        con.executescript(migration)
        con.execute(f"PRAGMA user_version={i + 1}")
    con.execute("INSERT INTO runs (name, spec, status, outcome, exit_code, created_at) VALUES "
                "('old.py', ?, 'done', 'succeeded', 0, 1.0)",
                (json.dumps({"target": "old.py", "args": [], "kind": "script"}),))
    con.commit()
    con.close()
    with RunRegistry(home / "registry.sqlite3") as reg:
        (old,) = reg.query()
        assert old.key is None
    con = sqlite3.connect(home / "registry.sqlite3")
    assert "run_key" in [r[1] for r in con.execute("PRAGMA table_info(runs)")]
    assert con.execute("SELECT COUNT(*) FROM sqlite_master WHERE name='runs_run_key'").fetchone()[0] == 1
    con.close()
