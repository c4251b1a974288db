"""A run's start and end write only the columns that changed (issue #17): whatever sequence of
snapshots is saved, through save_many (changed columns), save (whole row) or both, mixed
with another connection's reads and a rolled-back batch, the stored row is the last snapshot
saved. Real SQLite file; every column compared."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import replace

import pytest

from prismq_desktop.core.models import Outcome, OutcomeKind, RunSpec, RunStatus, transition
from prismq_desktop.core.store.registry import RegistryError, RunRegistry
from prismq_desktop.core.store.rows import COLUMN_NAMES, run_values

DATA = [c for c in COLUMN_NAMES if c != "updated_at"]


def _row(reg: RunRegistry, run_id: int) -> dict:
    cur = reg._db.execute(f"SELECT {', '.join(DATA)} FROM runs WHERE id=?", (run_id,))
    return dict(zip(DATA, cur.fetchone(), strict=True))


def _expected(reg: RunRegistry, run) -> dict:
    values = run_values(run, reg.stored_spec(run.spec, refresh=False))
    return {k: values[k] for k in DATA}


def test_any_sequence_of_saved_snapshots_leaves_the_last_one_stored(tmp_path) -> None:
    rng = random.Random(17)
    with RunRegistry(tmp_path / "registry.sqlite3") as reg:
        runs = [reg.new_run(RunSpec("/bin/true", kind="executable"), priority=rng.randint(0, 3)) for _ in range(40)]
        reg.insert(runs)
        current = {r.id: r for r in runs}
        for step in range(400):
            picked = rng.sample(sorted(current), rng.randint(1, 6))
            batch = []
            for rid in picked:
                run = current[rid]
                # A -> B -> A on any column: a value back to an older one must be written too
                choice = rng.random()
                if run.status is RunStatus.QUEUED and choice < 0.3:
                    run = transition(run, RunStatus.RUNNING, pid=rng.choice([11, 12]), pid_create_time=rng.random(),
                                     argv=("/bin/true",), cwd=rng.choice(["/tmp", "/"]))
                elif run.status is RunStatus.RUNNING and choice < 0.15:
                    run = transition(run, RunStatus.DONE, Outcome(OutcomeKind.FAILED, 1, rng.choice(["x", None])),
                                     peak_cpu=rng.random())
                else:
                    run = run.with_changes(progress=rng.choice([None, 0.5, 0.25]), priority=rng.randint(0, 3),
                                           progress_message=rng.choice([None, "a", "b"]))
                current[rid] = run
                batch.append(run)
            if rng.random() < 0.3:
                for run in batch:
                    reg.save(run)
            else:
                reg.save_many(batch, check=True)
            if step % 50 == 0:
                for rid, run in current.items():
                    assert _row(reg, rid) == _expected(reg, run), f"run {rid} at step {step}"
        for rid, run in current.items():
            assert _row(reg, rid) == _expected(reg, run)
        with RunRegistry(tmp_path / "registry.sqlite3") as other:  # another connection reads the same
            for rid, run in current.items():
                got = other.get(rid)
                assert got is not None and replace(got, spec=run.spec) == replace(run, spec=run.spec)


def test_a_refused_batch_writes_nothing_and_the_next_one_writes_every_change(tmp_path) -> None:
    path = tmp_path / "registry.sqlite3"
    with RunRegistry(path) as reg:
        runs = [reg.new_run(RunSpec("/bin/true", kind="executable")) for _ in range(3)]
        reg.insert(runs)
        started = [transition(r, RunStatus.RUNNING, pid=100 + r.id, pid_create_time=5.0) for r in runs]
        ghost = replace(started[0], id=started[0].id + 1000)
        with pytest.raises(RegistryError):
            reg.save_many([*started, ghost], check=True)  # one row is missing: nothing is stored
        for run in runs:
            assert _row(reg, run.id)["status"] == "queued"
        blocker = sqlite3.connect(path, timeout=0)
        blocker.execute("BEGIN IMMEDIATE")
        reg._db.execute("PRAGMA busy_timeout=50")
        with pytest.raises(RegistryError):
            reg.save_many(started, check=True)  # locked: rolled back
        blocker.rollback()
        blocker.close()
        for run in runs:
            assert _row(reg, run.id)["status"] == "queued"
        reg.save_many(started, check=True)
        for run in started:
            assert _row(reg, run.id) == _expected(reg, run)
        ended = [transition(r, RunStatus.DONE, Outcome(OutcomeKind.SUCCEEDED, 0, None)) for r in started]
        reg.save_many(ended, check=True)
        for run in ended:
            assert _row(reg, run.id) == _expected(reg, run)
        assert not reg._written  # nothing kept for finished runs


def _field_values(rng: random.Random, run_id: int) -> dict:
    """A new value for any field a snapshot can change (odd ones too: a non-UTF-8 path)."""
    return {
        "spec": rng.choice([RunSpec("/bin/true", kind="executable"), RunSpec("/bin/echo", ("x",), kind="executable",
                                                                            name="echo job")]),
        "status": rng.choice(list(RunStatus)),
        "outcome": rng.choice([None, Outcome(OutcomeKind.SUCCEEDED, 0, None), Outcome(OutcomeKind.FAILED, 3, "bad\udcff")]),
        "started_at": rng.choice([None, 1.5, 2.5]), "ended_at": rng.choice([None, 3.5]),
        "pid": rng.choice([None, 7, 8]), "pid_create_time": rng.choice([None, 0.25]),
        "argv": rng.choice([(), ("/bin/true",), ("a", "b\udcfe")]),
        "cwd": rng.choice([None, "/tmp", "/tmp/\udcff"]), "log_path": rng.choice([None, f"/logs/run-{run_id}.log"]),
        "dry_run": rng.choice([False, True]), "owner_pid": rng.choice([None, 1, 2]),
        "not_before": rng.choice([None, 9.0]), "depends_on": rng.choice([(), (1,), (1, 2)]),
        "progress": rng.choice([None, 0.5]), "progress_message": rng.choice([None, "m"]),
        "options": rng.choice([{}, {"a": 1}, {"a": 2, "b": [1]}]), "schedule_id": rng.choice([None, 4]),
        "trigger": rng.choice([None, "schedule", "run now"]), "peak_cpu": rng.choice([None, 12.5]),
        "mean_rss": rng.choice([None, 1024]), "result": rng.choice([None, '{"value": 1}']),
        "worker_host": rng.choice([None, "w1"]), "remote_id": rng.choice([None, "r-1"]),
        "attempt": rng.choice([1, 2]), "parent_id": rng.choice([None, 1]), "idempotency_key": rng.choice([None, "k"]),
    }


def test_every_field_a_snapshot_changes_is_written_and_nothing_else_is_encoded_twice(tmp_path) -> None:
    """Any field, alone or with others, back and forth: the stored row is the last snapshot
    (the changed-columns path compares fields, it must map each one to all of its columns)."""
    rng = random.Random(1717)
    with RunRegistry(tmp_path / "registry.sqlite3") as reg:
        runs = [reg.new_run(RunSpec("/bin/true", kind="executable")) for _ in range(12)]
        reg.insert(runs)
        current = {r.id: r for r in runs}
        for _step in range(300):
            batch = []
            for rid in rng.sample(sorted(current), rng.randint(1, 4)):
                values = _field_values(rng, rid)
                picked = dict(rng.sample(sorted(values.items()), rng.randint(1, 4)))
                if picked.get("status", current[rid].status) is RunStatus.DONE:
                    picked["status"] = RunStatus.RUNNING  # a done row is forgotten: tested above
                current[rid] = replace(current[rid], **picked)
                batch.append(current[rid])
            reg.save_many(batch, check=True)
            for run in batch:
                assert _row(reg, run.id) == _expected(reg, run), sorted(picked)
