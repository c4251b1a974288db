"""History services on a real SQLite registry with real runs and their real log files."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import stat
import sys
import time
from pathlib import Path

import pytest

from prismq_desktop.core import Outcome, OutcomeKind, RunEngine, RunMode, RunSpec, RunStatus
from prismq_desktop.core.services.history import (
    CSV_FIELDS,
    RetentionPolicy,
    apply_retention,
    delete_logs,
    delete_runs,
    export_history,
    export_row,
    iter_history,
    preview_retention,
    run_to_json,
    write_runs,
)
from prismq_desktop.core.store import RunQuery

PY = sys.executable
DAY = 86400.0
JSON_FIELDS = {"id", "name", "status", "outcome", "exit_code", "error", "created_at", "started_at", "ended_at",
               "duration", "mode", "dry_run", "argv", "cwd", "pid", "log_path", "result", "result_error",
               "where", "worker_host", "run_key"}


@pytest.fixture
def engine(home: Path):
    eng = RunEngine(home, mode=RunMode.LOCAL)
    yield eng
    eng.close()


def finished_runs(engine: RunEngine, n: int, *, env: dict[str, str] | None = None, name: str = "job") -> list[int]:
    """n real runs (each a child process that prints its number), all finished, each with a log file."""
    ids = []
    for i in range(n):
        spec = RunSpec(PY, ("-S", "-c", f"print('line {i}')"), env=env or {}, name=f"{name}{i}")
        handle = engine.run_blocking(spec)
        assert handle.run.status is RunStatus.DONE and Path(handle.run.log_path).is_file()
        ids.append(handle.id)
    return ids


def backdate(engine: RunEngine, run_id: int, days_ago: float) -> None:
    run = engine.registry.get(run_id)
    engine.registry.save(dataclasses.replace(run, created_at=time.time() - days_ago * DAY))  # a test's time machine


def test_delete_runs_removes_rows_and_log_files(engine):
    ids = finished_runs(engine, 3)
    logs = {i: engine.registry.get(i).log_path for i in ids}
    Path(logs[ids[1]]).unlink()  # a log already gone is not an error

    result = delete_runs(engine.registry, [ids[0], ids[1], 999_999])

    assert result.run_ids == (ids[0], ids[1]) and result.runs == 2
    assert result.log_paths == (logs[ids[0]],) and not result.log_errors and not result.skipped_active
    assert engine.registry.get(ids[0]) is None and engine.registry.get(ids[1]) is None
    assert not Path(logs[ids[0]]).exists()
    assert engine.registry.get(ids[2]) is not None and Path(logs[ids[2]]).is_file()


def test_delete_runs_never_deletes_an_active_run(engine):
    done = finished_runs(engine, 1)
    queued = engine.create(RunSpec(PY, ("-c", "pass"))).id  # recorded, not started
    result = delete_runs(engine.registry, [done[0], queued])
    assert result.run_ids == (done[0],) and result.skipped_active == (queued,)
    assert engine.registry.get(queued).status is RunStatus.QUEUED
    engine.finish_unstarted(engine.handle(queued), Outcome(OutcomeKind.CANCELLED, None, "test over"))


def test_delete_logs_reports_what_it_could_not_remove(tmp_path):
    a = tmp_path / "a.log"
    a.write_text("x")
    folder = tmp_path / "not-a-file.log"
    folder.mkdir()
    removed, errors = delete_logs([str(a), str(a), None, str(tmp_path / "missing.log"), str(folder)])
    assert removed == [str(a)] and not a.exists()
    assert len(errors) == 1 and errors[0].startswith(str(folder)) and "\n" not in errors[0]


def test_retention_preview_is_what_apply_deletes(engine):
    ids = finished_runs(engine, 10)
    for n, run_id in enumerate(ids):  # ids[0] is 9 days old ... ids[9] is from today
        backdate(engine, run_id, len(ids) - 1 - n + 0.5)
    logs = {i: engine.registry.get(i).log_path for i in ids}

    by_days = RetentionPolicy(keep_days=3)
    assert preview_retention(engine.registry, by_days) == 7  # 9.5, 8.5, ... 3.5 days old
    by_runs = RetentionPolicy(keep_runs=8)
    assert preview_retention(engine.registry, by_runs) == 2
    both = RetentionPolicy(keep_days=7, keep_runs=5)  # union: 3 older than 7 days, 5 beyond the newest 5
    expected = preview_retention(engine.registry, both)
    assert expected == 5

    result = apply_retention(engine.registry, both)

    assert result.runs == expected and result.run_ids == tuple(ids[:5])
    assert set(result.log_paths) == {logs[i] for i in ids[:5]}
    assert all(not Path(logs[i]).exists() for i in ids[:5])
    assert all(Path(logs[i]).is_file() and engine.registry.get(i) for i in ids[5:])
    assert preview_retention(engine.registry, both) == 0
    assert apply_retention(engine.registry, both).runs == 0


def test_no_limit_keeps_everything(engine):
    ids = finished_runs(engine, 2)
    backdate(engine, ids[0], 10_000)
    policy = RetentionPolicy()
    assert policy.keeps_everything and policy.describe() == "keep everything"
    assert preview_retention(engine.registry, policy) == 0
    assert apply_retention(engine.registry, policy).runs == 0
    assert engine.registry.count() == 2


def test_a_running_run_is_never_deleted_by_retention(home):
    async def main():
        async with RunEngine(home) as engine:
            handle = engine.create(RunSpec(PY, ("-S", "-c", "print('finished', flush=True)")))
            engine.launch(handle)
            await handle.wait(30)
            done = [handle.id]
            sleeper = engine.create(RunSpec(PY, ("-S", "-c", "import time; print('up', flush=True); time.sleep(60)")))
            engine.launch(sleeper)
            deadline = time.monotonic() + 20

            def started() -> bool:
                run = engine.registry.get(sleeper.id)
                return run is not None and run.status is RunStatus.RUNNING and Path(run.log_path).is_file()

            while not started():  # running, and its log file has been written
                assert time.monotonic() < deadline, "the run did not start"
                await asyncio.sleep(0.02)
            backdate(engine, sleeper.id, 365)  # old and beyond any count: still not a candidate
            everything = RetentionPolicy(keep_days=0, keep_runs=0)
            preview = preview_retention(engine.registry, everything)
            result = apply_retention(engine.registry, everything)
            still = engine.registry.get(sleeper.id)
            log_kept = Path(still.log_path).is_file()
            sleeper.cancel()
            await sleeper.wait(30)
            after = apply_retention(engine.registry, everything)
            return done, sleeper.id, preview, result, still, log_kept, after

    done, sleeper_id, preview, result, still, log_kept, after = asyncio.run(main())
    assert preview == 1 and result.run_ids == tuple(done)
    assert still is not None and still.status is RunStatus.RUNNING and log_kept
    assert after.run_ids == (sleeper_id,)  # once it has finished it is history like any other


def test_policy_from_the_form_and_from_settings():
    assert RetentionPolicy.from_form(0, 0) == RetentionPolicy()
    assert RetentionPolicy.from_form(30, 0) == RetentionPolicy(keep_days=30.0)
    assert RetentionPolicy.from_form(0, 500) == RetentionPolicy(keep_runs=500)
    assert RetentionPolicy.from_settings(None, "") == RetentionPolicy()
    assert RetentionPolicy.from_settings(0, 0) == RetentionPolicy()
    assert RetentionPolicy.from_settings("7", 100) == RetentionPolicy(keep_days=7.0, keep_runs=100)
    assert RetentionPolicy.from_settings("1.5", "20") == RetentionPolicy(keep_days=1.5, keep_runs=20)
    for days, runs, word in (("soon", None, "keep_days"), (None, "1.5", "keep_runs"), ([3], None, "keep_days"),
                             ("-2", None, "keep_days"), (None, "-1", "keep_runs")):
        with pytest.raises(ValueError, match=word) as info:
            RetentionPolicy.from_settings(days, runs)
        assert "\n" not in str(info.value)
    assert "newest 5" in RetentionPolicy(keep_days=2, keep_runs=5).describe()


def test_run_to_json_has_the_cli_fields(engine):
    (run_id,) = finished_runs(engine, 1)
    row = run_to_json(engine.registry.get(run_id))
    assert set(row) == JSON_FIELDS
    assert row["status"] == "done" and row["outcome"] == "succeeded" and row["exit_code"] == 0
    assert json.loads(json.dumps(row)) == row


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_export_json_and_csv_round_trip(engine, tmp_path):
    ids = finished_runs(engine, 3, env={"API_TOKEN": "s3cr3t", "MODE": "fast"})
    runs = [engine.registry.get(i) for i in ids]
    expected = [export_row(r) for r in runs]

    out_json = tmp_path / "history.json"
    assert write_runs(runs, out_json) == 3
    assert json.loads(out_json.read_text("utf-8")) == json.loads(json.dumps(expected))
    assert "s3cr3t" not in out_json.read_text("utf-8") and "API_TOKEN" in out_json.read_text("utf-8")
    assert set(expected[0]) >= JSON_FIELDS and expected[0]["env"]["MODE"] == "fast"

    out_csv = tmp_path / "history.csv"
    assert write_runs(runs, out_csv) == 3
    with open(out_csv, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CSV_FIELDS
        back = list(reader)
    assert [{k: row[k] for k in CSV_FIELDS} for row in back] == [
        {k: "" if row[k] is None else str(row[k]) for k in CSV_FIELDS} for row in expected]
    for path in (out_json, out_csv):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_export_history_follows_the_filter_across_pages(engine, tmp_path):
    finished_runs(engine, 7, name="keep")
    finished_runs(engine, 2, name="other")
    query = RunQuery(text="keep", sort="id", descending=False)
    got = [r.name for r in iter_history(engine.registry, query, page=3)]
    assert got == [f"keep{i}" for i in range(7)]
    out = tmp_path / "subset.json"
    assert export_history(engine.registry, out, query, fmt="json") == 7
    assert [r["name"] for r in json.loads(out.read_text("utf-8"))] == got
    assert export_history(engine.registry, tmp_path / "all.csv") == 9


def test_a_failed_export_leaves_the_old_file(engine, tmp_path):
    ids = finished_runs(engine, 1)
    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "history.json"
    out.write_text("previous")

    class Boom(Exception):
        pass

    def runs():
        yield engine.registry.get(ids[0])
        raise Boom

    with pytest.raises(Boom):
        write_runs(runs(), out)
    assert out.read_text() == "previous" and [p.name for p in folder.iterdir()] == ["history.json"]
