"""RunRegistry on real SQLite files: schema, indexes, CRUD, durability, and crash recovery
with real owner processes that are SIGKILLed while their run's process tree is alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import psutil
import pytest

from prismq_desktop.core.engine import recover_orphans
from prismq_desktop.core.models import Outcome, OutcomeKind, RunSpec, RunStatus, transition
from prismq_desktop.core.store import RunQuery
from prismq_desktop.core.store.registry import RegistryError, RunRegistry
from prismq_desktop.core.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.helpers import pid_gone, wait_for

PY = sys.executable


@pytest.fixture
def db(home: Path) -> Path:
    return home / "registry.sqlite3"


def raw(path: Path) -> sqlite3.Connection:
    """A plain second connection, independent of the registry under test."""
    return sqlite3.connect(str(path))


def read_json_line(proc: subprocess.Popen, timeout: float = 20.0) -> dict:
    """One JSON line from a child's stdout, without blocking past `timeout`."""
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no line from pid {proc.pid} in {timeout}s; got {buf!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise AssertionError(f"pid {proc.pid} closed stdout early: {buf!r} {err}")
            buf += chunk
    return json.loads(buf.split(b"\n", 1)[0])


def kill_all(pids) -> None:
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


# ---------------------------------------------------------------------------- schema


def test_wal_mode_and_schema_version(db):
    with RunRegistry(db) as reg:
        assert reg.schema_version == len(MIGRATIONS) == SCHEMA_VERSION
    con = raw(db)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
        assert con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        con.close()
    with RunRegistry(db) as reg:  # reopening an up-to-date file changes nothing
        assert reg.schema_version == len(MIGRATIONS)


def test_newer_schema_is_refused_with_a_clear_message_and_left_alone(db):
    newer = len(MIGRATIONS) + 3
    con = raw(db)
    con.execute("CREATE TABLE future_stuff (x)")
    con.execute(f"PRAGMA user_version={newer}")
    con.commit()
    con.close()
    with pytest.raises(RegistryError) as info:
        RunRegistry(db)
    message = str(info.value)
    assert "newer" in message and str(newer) in message and str(len(MIGRATIONS)) in message
    assert str(db) in message
    con = raw(db)
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == newer
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "runs" not in tables and "future_stuff" in tables
    finally:
        con.close()


def test_old_schema_is_migrated_and_old_rows_stay_readable(db):
    """A file written by schema 1 gains every later migration and keeps its runs."""
    con = raw(db)
    con.executescript(MIGRATIONS[0])
    spec = RunSpec(target="old.py", args=("a",))
    con.execute(
        "INSERT INTO runs (name, spec, status, outcome, exit_code, mode, created_at, started_at, ended_at) "
        "VALUES (?, ?, 'done', 'failed', 4, 'async', 10.0, 11.0, 12.0)",
        ("old.py", json.dumps(spec.to_dict())),
    )
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()
    with RunRegistry(db) as reg:
        assert reg.schema_version == len(MIGRATIONS)
        (old,) = reg.query()
        assert old.spec == spec and old.status is RunStatus.DONE
        assert old.outcome == Outcome(OutcomeKind.FAILED, 4) and (old.started_at, old.ended_at) == (11.0, 12.0)
        new = reg.create(RunSpec(target="new.py"))
        assert new.id != old.id and reg.count() == 2


def _plan(reg: RunRegistry, call) -> tuple[str, list[str]]:
    """Run `call(reg)`, catch the SQL it really sent, and return it with its query plan."""
    seen: list[str] = []
    reg._db.set_trace_callback(seen.append)
    try:
        call(reg)
    finally:
        reg._db.set_trace_callback(None)
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, seen
    plan = [row[3] for row in reg._db.execute("EXPLAIN QUERY PLAN " + selects[0])]
    return selects[0], plan


@pytest.mark.parametrize(
    ("label", "call", "index"),
    [
        ("latest by status", lambda r: r.query(RunQuery.of("done", limit=20)), "runs_status_created"),
        ("latest by name", lambda r: r.query(RunQuery(name="job-7.py", limit=20)), "runs_name_created"),
        ("latest by outcome", lambda r: r.query(RunQuery.of("failed", limit=20)), "runs_outcome_created"),
        ("count by status", lambda r: r.count(RunQuery.of("running")), "runs_status_created"),
    ],
)
def test_indexes_serve_the_common_queries(db, label, call, index):
    with RunRegistry(db) as reg:
        indexes = {r[0] for r in reg._db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"runs_status_created", "runs_outcome_created", "runs_name_created"} <= indexes
        for i in range(300):
            run = reg.create(RunSpec(target=f"job-{i % 10}.py"))
            if i % 3:
                run = transition(run, RunStatus.RUNNING)
                run = transition(run, RunStatus.DONE, Outcome.from_exit_code(i % 2))
                reg.save(run)
        reg._db.execute("ANALYZE")
        sql, plan = _plan(reg, call)
        text = " | ".join(plan)
        assert any(index in step and ("SEARCH" in step) for step in plan), f"{label}: {sql}\n{text}"
        assert not any(step.startswith("SCAN runs") for step in plan), f"{label} scans the table: {text}"
        # "latest N" must not sort every matching row (a partial sort of equal created_at is fine)
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan, f"{label} sorts all matches: {text}"


# ---------------------------------------------------------------------------- rows


def test_create_save_get_round_trip_every_field(db):
    spec = RunSpec(
        target="tools/job.py",
        args=("--n", "3", "two words"),
        kind="script",
        cwd="/tmp/work",
        env={"A": "1", "REMOVE": None},
        interpreter="/usr/bin/python3",
        soft_timeout=1.5,
        hard_timeout=9,
        grace_period=0.25,
        encoding="latin-1",
        name="nightly",
    )
    with RunRegistry(db) as reg:
        run = reg.create(spec, mode="threaded")
        assert run.id > 0 and run.status is RunStatus.QUEUED and run.owner_pid == os.getpid()
        assert asdict(reg.get(run.id)) == asdict(run)
        run = transition(run, RunStatus.RUNNING, now=100.25)
        run = replace(run, pid=4242, pid_create_time=99.5)
        run = replace(run, argv=(PY, "/abs/tools/job.py", "--n", "3", "two words"), cwd="/tmp/work",
                      log_path=str(db.parent / "logs" / f"run-{run.id}.log"))
        reg.save(run)
        assert asdict(reg.get(run.id)) == asdict(run)
        run = transition(run, RunStatus.DONE, Outcome(OutcomeKind.TIMED_OUT, -15, "soft timeout of 1.5s reached"), now=101.5)
        reg.save(run)
        got = reg.get(run.id)
        assert asdict(got) == asdict(run)
        assert got.outcome == Outcome(OutcomeKind.TIMED_OUT, -15, "soft timeout of 1.5s reached")
        assert got.duration == pytest.approx(1.25)
        typed = reg.create(RunSpec(target="x.py", args="--flag 'a b'"), dry_run=True)
        got = reg.get(typed.id)
        assert got.spec.args == "--flag 'a b'" and got.dry_run is True
        assert reg.get(10**9) is None


def test_save_of_an_unknown_run_raises(db):
    with RunRegistry(db) as reg:
        ghost = reg.create(RunSpec(target="a.py"))
        assert reg.delete([ghost.id]) == 1
        with pytest.raises(RegistryError, match=str(ghost.id)):
            reg.save(ghost)


def test_list_filters_order_count_and_delete(db):
    with RunRegistry(db) as reg:
        made = {}
        plan = [
            ("a.py", RunStatus.DONE, OutcomeKind.SUCCEEDED),
            ("b.py", RunStatus.DONE, OutcomeKind.FAILED),
            ("a.py", RunStatus.RUNNING, None),
            ("c.py", RunStatus.QUEUED, None),
            ("a.py", RunStatus.DONE, OutcomeKind.FAILED),
            ("b.py", RunStatus.PAUSED, None),
        ]
        for n, (target, status, kind) in enumerate(plan):
            run = reg.create(RunSpec(target=target))
            run = replace(run, created_at=1000.0 + n)
            if status is not RunStatus.QUEUED:
                run = transition(run, RunStatus.RUNNING)
            if status is RunStatus.PAUSED:
                run = transition(run, RunStatus.PAUSED)
            if status is RunStatus.DONE:
                run = transition(run, RunStatus.DONE, Outcome(kind, 0 if kind is OutcomeKind.SUCCEEDED else 1))
            reg.save(run)
            made[n] = run.id
        tie = reg.create(RunSpec(target="a.py"))  # same created_at as the newest: id breaks the tie
        tie = replace(tie, created_at=1005.0)
        reg.save(tie)

        def ids(**kw):
            return [r.id for r in reg.query(RunQuery.of(kw.pop("status", None) or kw.pop("outcome", None), **kw))]

        assert ids() == [tie.id, made[5], made[4], made[3], made[2], made[1], made[0]]
        assert ids(status="done") == [made[4], made[1], made[0]]
        assert ids(status=["running", "paused"]) == [made[5], made[2]]
        assert ids(status=("queued",)) == [tie.id, made[3]]
        assert ids(outcome="failed") == [made[4], made[1]]
        assert ids(outcome=["succeeded", "failed"], name="a.py") == [made[4], made[0]]
        assert ids(name="b.py") == [made[5], made[1]]
        assert ids(name="zzz") == []
        assert ids(limit=2) == [tie.id, made[5]]
        assert ids(limit=2, offset=2) == [made[4], made[3]]
        assert ids(status="done", limit=1, offset=1) == [made[1]]
        assert reg.count() == 7
        assert reg.count(RunQuery.of("done")) == 3
        assert reg.count(RunQuery.of(["queued", "running", "paused"])) == 4
        assert reg.count(RunQuery.of("failed", name="a.py")) == 1
        assert reg.count(RunQuery(name="a.py")) == 4

        assert reg.delete([]) == 0
        assert reg.delete([10**9]) == 0
        assert reg.delete([made[0], made[1], 10**9]) == 2
        assert reg.get(made[0]) is None and reg.get(made[1]) is None
        assert reg.count() == 5 and ids(outcome="failed") == [made[4]]


def test_state_changes_survive_reopen_and_are_seen_by_another_connection(db):
    reg = RunRegistry(db)
    run = reg.create(RunSpec(target="a.py", name="persisted"), mode="async")
    other = RunRegistry(db)  # a second reader, open while the first writes
    run = transition(run, RunStatus.RUNNING, now=5.0)
    reg.save(run)
    assert other.get(run.id).status is RunStatus.RUNNING
    run = transition(run, RunStatus.PAUSED)
    reg.save(run)
    assert other.get(run.id).status is RunStatus.PAUSED
    reg.close()
    other.close()
    with RunRegistry(db) as again:  # owned by this (live) process: recovery leaves it alone
        assert recover_orphans(again) == []
        got = again.get(run.id)
        assert got.status is RunStatus.PAUSED and got.started_at == 5.0 and got.name == "persisted"
        got = transition(got, RunStatus.RUNNING)
        got = transition(got, RunStatus.DONE, Outcome(OutcomeKind.CANCELLED, 130, "cancelled by the user"))
        again.save(got)
    with RunRegistry(db) as last:
        final = last.get(run.id)
        assert final.status is RunStatus.DONE and final.outcome == Outcome(OutcomeKind.CANCELLED, 130,
                                                                              "cancelled by the user")


def test_concurrent_threads_get_unique_ids(db):
    with RunRegistry(db) as reg:
        got: list[int] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def work():
            try:
                for i in range(40):
                    run = reg.create(RunSpec(target=f"t{i}.py"))
                    run = transition(run, RunStatus.RUNNING)
                    reg.save(run)
                    with lock:
                        got.append(run.id)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        assert len(got) == len(set(got)) == 240
        assert reg.count(RunQuery.of("running")) == 240


def test_processes_writing_at_once_get_unique_ids_and_nothing_is_lost(db, scripts, tmp_path):
    """Three writers (real processes) create runs at the same moment, then die without closing:
    every committed run is there, ids never collide, and the next open recovers them."""
    go = tmp_path / "go"
    RunRegistry(db).close()  # schema in place before the race
    writers = [
        subprocess.Popen([PY, str(scripts / "reg_writer.py"), str(db), "40", str(go)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    try:
        for w in writers:
            assert "ready" in read_json_line(w, 30)
        go.touch()
        results = [read_json_line(w, 30) for w in writers]
        for w in writers:
            assert w.wait(30) == 0
    finally:
        kill_all(w.pid for w in writers)
    ids = [i for r in results for i in r["ids"]]
    assert len(ids) == len(set(ids)) == 120
    with RunRegistry(db) as reg:
        recovered = recover_orphans(reg)
        assert reg.count() == 120
        assert sorted(r.id for r in reg.query(RunQuery(limit=1000))) == sorted(ids)
        assert len(recovered) == 120  # their owners are dead: queued runs become interrupted
        for run in reg.query(RunQuery(limit=1000)):
            assert run.status is RunStatus.DONE and run.outcome.kind is OutcomeKind.INTERRUPTED
            assert f"PrismQ process {run.owner_pid} ended while this run was queued" in run.error
        assert {r.owner_pid for r in reg.query(RunQuery(limit=1000))} == {r["pid"] for r in results}


# ---------------------------------------------------------------------------- crash recovery


def start_holder(home: Path, scripts: Path, mode: str, pause: bool, script: str, *args: str):
    holder = subprocess.Popen(
        [PY, str(scripts / "reg_holder.py"), str(home), mode, "1" if pause else "0", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        info = read_json_line(holder, 30)
    except BaseException:
        holder.kill()
        holder.wait(10)
        raise
    assert "error" not in info, info
    return holder, info


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
@pytest.mark.parametrize(
    ("mode", "pause", "script", "args"),
    [
        ("async", False, "reg_tree.py", ()),
        ("threaded", False, "reg_tree.py", ()),
        ("async", True, "reg_tree.py", ()),  # a SIGSTOPped orphan tree must still be stopped
        ("async", False, "reg_tree.py", ("ignore-term",)),  # an orphan tree that ignores SIGTERM must still die
    ],
    ids=["async", "threaded", "paused", "ignores-term"],
)
def test_dead_owner_run_becomes_interrupted_and_orphan_tree_is_stopped(home, db, scripts, mode, pause, script, args):
    holder, info = start_holder(home, scripts, mode, pause, script, *args)
    tree = [info["pid"], *info["pids"]]
    try:
        assert len(tree) == 3 and all(not pid_gone(p) for p in tree)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        time.sleep(0.2)
        assert all(not pid_gone(p) for p in tree), "the tree must outlive its owner for this test to mean anything"

        t0 = time.monotonic()
        with RunRegistry(db) as reg:
            elapsed = time.monotonic() - t0
            assert [r.id for r in recover_orphans(reg)] == [info["run_id"]]
            run = reg.get(info["run_id"])
        assert run.status is RunStatus.DONE and run.outcome.kind is OutcomeKind.INTERRUPTED
        was = "paused" if pause else "running"
        assert f"PrismQ process {holder.pid} ended while this run was {was}" in run.error
        assert f"process tree (pid {info['pid']}) was still alive and has been stopped" in run.error
        assert run.ended_at is not None and run.started_at is not None and run.ended_at >= run.started_at
        wait_for(lambda: all(pid_gone(p) for p in tree), timeout=5)
        assert elapsed < 10
        with RunRegistry(db) as again:  # recovery is done once; the record stays as it is
            assert recover_orphans(again) == []
            assert asdict(again.get(run.id)) == asdict(run)
    finally:
        holder.kill()
        holder.wait(10)
        kill_all(tree)


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_run_of_a_live_owner_is_left_alone(home, db, scripts):
    holder, info = start_holder(home, scripts, "async", False, "reg_tree.py")
    tree = [info["pid"], *info["pids"]]
    try:
        with RunRegistry(db) as reg:
            assert recover_orphans(reg) == []
            run = reg.get(info["run_id"])
            assert run.status is RunStatus.RUNNING and run.outcome is None
            assert run.owner_pid == holder.pid and run.pid == info["pid"]
        time.sleep(0.3)
        assert holder.poll() is None and all(not pid_gone(p) for p in tree)
        # and once the owner dies, the next open does recover it
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        with RunRegistry(db) as reg:
            assert [r.id for r in recover_orphans(reg)] == [info["run_id"]]
        wait_for(lambda: all(pid_gone(p) for p in tree), timeout=5)
    finally:
        holder.kill()
        holder.wait(10)
        kill_all(tree)


def test_recovery_checks_start_times_not_just_pids(db):
    """A reused pid is not the owner (so its run is recovered) and not the run's process
    (so the unrelated process that now has that pid is not killed)."""
    sleeper = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    bystander = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    try:
        s_ct = psutil.Process(sleeper.pid).create_time()
        b_ct = psutil.Process(bystander.pid).create_time()
        with RunRegistry(db) as reg:
            stale = reg.create(RunSpec(target="stale.py"))
            stale = transition(stale, RunStatus.RUNNING)
            stale = replace(stale, owner_pid=sleeper.pid, owner_create_time=s_ct - 1000,  # pid reused by `sleeper`
                            pid=bystander.pid, pid_create_time=b_ct - 1000)  # pid reused by `bystander`
            reg.save(stale)
            live = reg.create(RunSpec(target="live.py"))
            live = transition(live, RunStatus.RUNNING)
            live = replace(live, owner_pid=sleeper.pid, owner_create_time=s_ct,  # really owned by `sleeper`
                           pid=bystander.pid, pid_create_time=b_ct)
            reg.save(live)
        with RunRegistry(db) as reg:
            assert [r.id for r in recover_orphans(reg)] == [stale.id]
            got = reg.get(stale.id)
            assert got.outcome.kind is OutcomeKind.INTERRUPTED
            assert "has been stopped" not in got.error
            assert reg.get(live.id).status is RunStatus.RUNNING
        time.sleep(0.2)
        assert sleeper.poll() is None and bystander.poll() is None
    finally:
        for p in (sleeper, bystander):
            p.kill()
            p.wait(10)
