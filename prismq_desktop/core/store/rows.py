"""Run snapshots to SQLite rows and back (the only place that knows the column layout)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from prismq_desktop.core.models import Outcome, OutcomeKind, Run, RunMode, RunSpec, RunStatus
from prismq_desktop.core.store.schema import COLUMNS

COLUMN_NAMES: tuple[str, ...] = tuple(c.strip() for c in COLUMNS.split(","))

_JSON_PATH = "json:"  # never the start of an absolute path


def storable(text: str | None) -> str | None:
    """Text SQLite can store: a path that is not UTF-8 (lone surrogates from the OS) keeps a
    readable form here; the exact bytes survive in the JSON of the spec and argv."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def path_to_db(path: str | None) -> str | None:
    """Store a path exactly: one that is not valid UTF-8 is kept as JSON (which escapes its surrogates)."""
    if path is None or storable(path) == path:
        return path
    return _JSON_PATH + json.dumps(path)


def path_from_db(value: str | None) -> str | None:
    if value is not None and value.startswith(_JSON_PATH):
        return str(json.loads(value[len(_JSON_PATH):]))
    return value


def run_from_row(row: sqlite3.Row) -> Run:
    outcome = None
    if row["outcome"]:
        outcome = Outcome(OutcomeKind(row["outcome"]), row["exit_code"], row["error"])
    return Run(
        id=row["id"],
        spec=RunSpec.from_dict(json.loads(row["spec"])),
        status=RunStatus(row["status"]),
        outcome=outcome,
        mode=RunMode(row["mode"] or "auto"),
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        pid=row["pid"],
        pid_create_time=row["pid_create_time"],
        argv=tuple(json.loads(row["argv"])) if row["argv"] else (),
        cwd=path_from_db(row["cwd"]),
        log_path=row["log_path"],
        dry_run=bool(row["dry_run"]),
        owner_pid=row["owner_pid"],
        owner_create_time=row["owner_create_time"],
        priority=row["priority"],
        pattern=row["pattern"],
        attempt=row["attempt"],
        parent_id=row["parent_id"],
        idempotency_key=row["idempotency_key"],
        not_before=row["not_before"],
        depends_on=tuple(json.loads(row["depends_on"])) if row["depends_on"] else (),
        progress=row["progress"],
        progress_message=row["progress_message"],
        options=json.loads(row["options"]) if row["options"] else {},
        schedule_id=row["schedule_id"],
        trigger=row["trigger"],
        peak_cpu=row["peak_cpu"],
        mean_cpu=row["mean_cpu"],
        peak_rss=row["peak_rss"],
        mean_rss=row["mean_rss"],
        result=row["result"],
        worker_host=row["worker_host"],
        remote_id=row["remote_id"],
        key=row["run_key"],
    )


def run_values(run: Run, spec_json: str | None = None) -> dict[str, Any]:
    """Column -> value for one run, in COLUMN_NAMES order (`spec_json`: the spec as stored)."""
    out = run.outcome
    return {
        "id": run.id,
        "name": storable(run.name),
        "spec": run.spec.json if spec_json is None else spec_json,
        "status": run.status.value,
        "outcome": out.kind.value if out else None,
        "exit_code": out.exit_code if out else None,
        "error": storable(out.message) if out else None,
        "mode": run.mode.value,
        "dry_run": int(run.dry_run),
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "pid": run.pid,
        "pid_create_time": run.pid_create_time,
        "argv": json.dumps(list(run.argv)) if run.argv else None,
        "cwd": path_to_db(run.cwd),
        "log_path": storable(run.log_path),
        "owner_pid": run.owner_pid,
        "owner_create_time": run.owner_create_time,
        "priority": int(run.priority),
        "pattern": run.pattern.value,
        "attempt": run.attempt,
        "parent_id": run.parent_id,
        "idempotency_key": run.idempotency_key,
        "not_before": run.not_before,
        "depends_on": json.dumps(list(run.depends_on)) if run.depends_on else None,
        "progress": run.progress,
        "progress_message": storable(run.progress_message),
        "options": json.dumps(dict(run.options)) if run.options else None,
        "schedule_id": run.schedule_id,
        "trigger": storable(run.trigger),
        "peak_cpu": run.peak_cpu,
        "mean_cpu": run.mean_cpu,
        "peak_rss": run.peak_rss,
        "mean_rss": run.mean_rss,
        "updated_at": time.time(),
        "result": run.result,
        "worker_host": storable(run.worker_host),
        "remote_id": run.remote_id,
        "run_key": run.key,
    }


# -- a live run's next snapshot: only what changed is encoded (save_many's hot path)
def _outcome_part(i: int) -> Callable[[Run], Any]:
    def get(run: Run) -> Any:
        out = run.outcome
        if out is None:
            return None
        return (out.kind.value, out.exit_code, storable(out.message))[i]
    return get


#: column -> its value from a Run (every column but id, spec and updated_at, which the caller
#: gives: the spec as stored and the time of the write); run_values is the whole-row form
COLUMN_OF: dict[str, Callable[[Run], Any]] = {
    "name": lambda r: storable(r.name),
    "status": lambda r: r.status.value,
    "outcome": _outcome_part(0),
    "exit_code": _outcome_part(1),
    "error": _outcome_part(2),
    "mode": lambda r: r.mode.value,
    "dry_run": lambda r: int(r.dry_run),
    "created_at": lambda r: r.created_at,
    "started_at": lambda r: r.started_at,
    "ended_at": lambda r: r.ended_at,
    "pid": lambda r: r.pid,
    "pid_create_time": lambda r: r.pid_create_time,
    "argv": lambda r: json.dumps(list(r.argv)) if r.argv else None,
    "cwd": lambda r: path_to_db(r.cwd),
    "log_path": lambda r: storable(r.log_path),
    "owner_pid": lambda r: r.owner_pid,
    "owner_create_time": lambda r: r.owner_create_time,
    "priority": lambda r: int(r.priority),
    "pattern": lambda r: r.pattern.value,
    "attempt": lambda r: r.attempt,
    "parent_id": lambda r: r.parent_id,
    "idempotency_key": lambda r: r.idempotency_key,
    "not_before": lambda r: r.not_before,
    "depends_on": lambda r: json.dumps(list(r.depends_on)) if r.depends_on else None,
    "progress": lambda r: r.progress,
    "progress_message": lambda r: storable(r.progress_message),
    "options": lambda r: json.dumps(dict(r.options)) if r.options else None,
    "schedule_id": lambda r: r.schedule_id,
    "trigger": lambda r: storable(r.trigger),
    "peak_cpu": lambda r: r.peak_cpu,
    "mean_cpu": lambda r: r.mean_cpu,
    "peak_rss": lambda r: r.peak_rss,
    "mean_rss": lambda r: r.mean_rss,
    "result": lambda r: r.result,
    "worker_host": lambda r: storable(r.worker_host),
    "remote_id": lambda r: r.remote_id,
    "run_key": lambda r: r.key,
}

#: Run field -> the columns it is stored in
_FIELD_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (f.name, {"spec": ("name", "spec"), "outcome": ("outcome", "exit_code", "error"), "key": ("run_key",)}.get(
        f.name, (f.name,)))
    for f in dataclasses.fields(Run)
    if f.name != "id"
)


def changed_columns(old: Run, new: Run) -> list[str]:
    """The columns whose stored value differs between two snapshots of one run, found by
    comparing fields (a new snapshot shares every unchanged field's object with the old one):
    no whole-row encode to find the two or three columns a start or an end changes."""
    changed: list[str] = []
    for name, columns in _FIELD_COLUMNS:
        a = getattr(old, name)
        b = getattr(new, name)
        if a is not b and a != b:
            changed.extend(columns)
    return changed
