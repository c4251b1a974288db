"""RunRegistry: every run, in one SQLite file (WAL), surviving crashes.

The engine writes every state change here *before* announcing it, so a view never
shows a state the database does not have. On open, runs still marked queued, running or
paused whose owning process is gone become `interrupted` with a reason, and a child the
dead app left running is stopped: a run is never dropped and never left "running".
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from prismq_desktop.core.models import (
    Outcome,
    OutcomeKind,
    Run,
    RunSpec,
    RunStatus,
    transition,
)
from prismq_desktop.core.process.tree import kill_orphan

# Each entry moves the schema from version i to i+1. Never edit a shipped one: append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        status TEXT NOT NULL,
        outcome TEXT,
        exit_code INTEGER,
        error TEXT,
        mode TEXT,
        dry_run INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        pid INTEGER,
        pid_create_time REAL,
        argv TEXT,
        cwd TEXT,
        log_path TEXT,
        owner_pid INTEGER,
        owner_create_time REAL
    );
    CREATE INDEX runs_status_created ON runs(status, created_at DESC);
    CREATE INDEX runs_outcome_created ON runs(outcome, created_at DESC);
    CREATE INDEX runs_name_created ON runs(name, created_at DESC);
    """,
    """
    ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 2;
    ALTER TABLE runs ADD COLUMN pattern TEXT NOT NULL DEFAULT 'simple';
    ALTER TABLE runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE runs ADD COLUMN parent_id INTEGER;
    ALTER TABLE runs ADD COLUMN idempotency_key TEXT;
    ALTER TABLE runs ADD COLUMN not_before REAL;
    ALTER TABLE runs ADD COLUMN depends_on TEXT;
    ALTER TABLE runs ADD COLUMN progress REAL;
    ALTER TABLE runs ADD COLUMN progress_message TEXT;
    ALTER TABLE runs ADD COLUMN options TEXT;
    CREATE INDEX runs_idempotency ON runs(idempotency_key, created_at DESC) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX runs_parent ON runs(parent_id) WHERE parent_id IS NOT NULL;
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL,
        first_run_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        options TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        reason TEXT,
        created_at REAL NOT NULL,
        requeued_run_id INTEGER
    );
    """,
    """
    ALTER TABLE runs ADD COLUMN schedule_id INTEGER;
    ALTER TABLE runs ADD COLUMN trigger TEXT;
    ALTER TABLE runs ADD COLUMN peak_cpu REAL;
    ALTER TABLE runs ADD COLUMN mean_cpu REAL;
    ALTER TABLE runs ADD COLUMN peak_rss INTEGER;
    ALTER TABLE runs ADD COLUMN mean_rss INTEGER;
    CREATE INDEX runs_schedule_created ON runs(schedule_id, created_at DESC) WHERE schedule_id IS NOT NULL;
    CREATE TABLE schedules (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        spec TEXT NOT NULL,
        trigger TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        overlap TEXT NOT NULL DEFAULT 'forbid',
        misfire_grace REAL NOT NULL DEFAULT 60,
        catchup TEXT NOT NULL DEFAULT 'coalesce',
        catchup_limit INTEGER NOT NULL DEFAULT 10,
        jitter REAL NOT NULL DEFAULT 0,
        options TEXT,
        last_fire REAL,
        next_fire REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE schedule_fires (
        schedule_id INTEGER NOT NULL,
        due REAL NOT NULL,
        claimed_by INTEGER NOT NULL,
        claimed_at REAL NOT NULL,
        run_id INTEGER,
        PRIMARY KEY (schedule_id, due)
    );
    """,
    """
    CREATE INDEX runs_created ON runs(created_at DESC, id DESC);
    DROP INDEX runs_status_created;
    CREATE INDEX runs_status_created ON runs(status, created_at DESC, id DESC);
    DROP INDEX runs_outcome_created;
    CREATE INDEX runs_outcome_created ON runs(outcome, created_at DESC, id DESC);
    DROP INDEX runs_name_created;
    CREATE INDEX runs_name_created ON runs(name, created_at DESC, id DESC);
    """,
]

_COLUMNS = (
    "id, name, spec, status, outcome, exit_code, error, mode, dry_run, created_at, started_at, "
    "ended_at, pid, pid_create_time, argv, cwd, log_path, owner_pid, owner_create_time, "
    "priority, pattern, attempt, parent_id, idempotency_key, not_before, depends_on, progress, "
    "progress_message, options, schedule_id, trigger, peak_cpu, mean_cpu, peak_rss, mean_rss"
)


SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class DeadLetter:
    """A run whose retries ran out; it can be requeued (a fresh chain) or purged."""

    id: int
    run_id: int
    first_run_id: int
    name: str
    spec: RunSpec
    options: dict[str, Any]
    attempts: int
    reason: str | None
    created_at: float
    requeued_run_id: int | None


def _storable(text: str | None) -> str | None:
    """Text SQLite can store: a path that is not UTF-8 (lone surrogates from the OS) keeps a
    readable form here; the exact bytes survive in the JSON of the spec and argv."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


_JSON_PATH = "json:"  # never the start of an absolute path


def _path_to_db(path: str | None) -> str | None:
    """Store a path exactly: one that is not valid UTF-8 is kept as JSON (which escapes its surrogates)."""
    if path is None or _storable(path) == path:
        return path
    return _JSON_PATH + json.dumps(path)


def _path_from_db(value: str | None) -> str | None:
    if value is not None and value.startswith(_JSON_PATH):
        return str(json.loads(value[len(_JSON_PATH):]))
    return value


class RegistryError(RuntimeError):
    pass


def _me() -> tuple[int, float]:
    proc = psutil.Process()
    return proc.pid, proc.create_time()


def owner_alive(pid: int | None, create_time: float | None) -> bool:
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 0.01
    except psutil.Error:
        return False


class RunRegistry:
    """Thread-safe access to the runs table of one database file."""

    def __init__(self, path: str | os.PathLike[str], *, recover: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        try:
            self._migrate()
        except BaseException:
            self._db.close()
            raise
        self._owner = _me()
        self._next_id = self._block_end = 0
        self._block = 4
        self._logs_dir = str(self.path.parent / "logs")
        names = [c.strip() for c in _COLUMNS.split(",")]
        self._insert_sql = f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        self.recovered: list[Run] = self.recover() if recover else []

    # -- schema
    def _migrate(self) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                if version > len(MIGRATIONS):
                    raise RegistryError(
                        f"{self.path} was written by a newer PrismQ Desktop (schema {version}, "
                        f"this one knows {len(MIGRATIONS)})"
                    )
                for i in range(version, len(MIGRATIONS)):
                    for stmt in MIGRATIONS[i].split(";"):
                        if stmt.strip():
                            self._db.execute(stmt)
                    self._db.execute(f"PRAGMA user_version={i + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._release_ids()
            self._db.close()

    def _release_ids(self) -> None:
        """Give back the unused rest of our id block, if nobody reserved after us (keeps ids dense)."""
        if self._next_id >= self._block_end:
            return
        try:
            self._db.execute(
                "UPDATE sqlite_sequence SET seq=? WHERE name='runs' AND seq=?", (self._next_id - 1, self._block_end - 1)
            )
        except sqlite3.Error:
            pass
        self._next_id = self._block_end

    def __enter__(self) -> RunRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- rows
    @staticmethod
    def _row_to_run(row: sqlite3.Row) -> Run:
        outcome = None
        if row["outcome"]:
            outcome = Outcome(OutcomeKind(row["outcome"]), row["exit_code"], row["error"])
        return Run(
            id=row["id"],
            spec=RunSpec.from_dict(json.loads(row["spec"])),
            status=RunStatus(row["status"]),
            outcome=outcome,
            mode=row["mode"] or "",
            created_at=row["created_at"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            pid=row["pid"],
            pid_create_time=row["pid_create_time"],
            argv=tuple(json.loads(row["argv"])) if row["argv"] else (),
            cwd=_path_from_db(row["cwd"]),
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
        )

    @staticmethod
    def _values(run: Run) -> dict[str, Any]:
        values = RunRegistry._raw_values(run)
        for key in ("name", "error", "log_path", "trigger", "progress_message"):
            values[key] = _storable(values[key])
        values["cwd"] = _path_to_db(values["cwd"])
        return values

    @staticmethod
    def _raw_values(run: Run) -> dict[str, Any]:
        out = run.outcome
        return {
            "id": run.id,
            "name": run.name,
            "spec": run.spec.json,
            "status": run.status.value,
            "outcome": out.kind.value if out else None,
            "exit_code": out.exit_code if out else None,
            "error": out.message if out else None,
            "mode": run.mode,
            "dry_run": int(run.dry_run),
            "created_at": run.created_at,
            "started_at": run.started_at,
            "ended_at": run.ended_at,
            "pid": run.pid,
            "pid_create_time": run.pid_create_time,
            "argv": json.dumps(list(run.argv)) if run.argv else None,
            "cwd": run.cwd,
            "log_path": run.log_path,
            "owner_pid": run.owner_pid,
            "owner_create_time": run.owner_create_time,
            "priority": run.priority,
            "pattern": run.pattern,
            "attempt": run.attempt,
            "parent_id": run.parent_id,
            "idempotency_key": run.idempotency_key,
            "not_before": run.not_before,
            "depends_on": json.dumps(list(run.depends_on)) if run.depends_on else None,
            "progress": run.progress,
            "progress_message": run.progress_message,
            "options": json.dumps(run.options) if run.options else None,
            "schedule_id": run.schedule_id,
            "trigger": run.trigger,
            "peak_cpu": run.peak_cpu,
            "mean_cpu": run.mean_cpu,
            "peak_rss": run.peak_rss,
            "mean_rss": run.mean_rss,
        }

    ID_BLOCK_MAX = 1024

    def reserve_id(self) -> int:
        """A fresh run id with no SQL on the common path.

        Ids are taken from blocks reserved by advancing the table's AUTOINCREMENT counter
        in `sqlite_sequence` inside an IMMEDIATE transaction, so two processes sharing the
        file never hand out the same id and plain AUTOINCREMENT inserts skip our blocks.
        """
        with self._lock:
            if self._next_id >= self._block_end:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='runs'").fetchone()
                    top = max(int(row[0]) if row else 0,
                              int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM runs").fetchone()[0]))
                    # blocks grow while submissions keep coming, so a burst costs few reservations
                    self._block = min(self.ID_BLOCK_MAX, self._block * 2)
                    if row:
                        self._db.execute("UPDATE sqlite_sequence SET seq=? WHERE name='runs'", (top + self._block,))
                    else:
                        self._db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('runs', ?)", (top + self._block,))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._next_id, self._block_end = top + 1, top + self._block + 1
            run_id = self._next_id
            self._next_id += 1
            return run_id

    def new_run(self, spec: RunSpec, *, mode: str = "", dry_run: bool = False, **fields: Any) -> Run:
        """A queued Run with a reserved id, owned by this process, not yet stored (see insert)."""
        run = Run(id=self.reserve_id(), spec=spec, mode=mode, dry_run=dry_run, **fields)
        run.owner_pid, run.owner_create_time = self._owner
        run.log_path = self.default_log_path(run.id)
        return run

    def default_log_path(self, run_id: int) -> str:
        return f"{self._logs_dir}{os.sep}run-{run_id}.log"

    def insert(self, runs: Sequence[Run]) -> None:
        """Store new runs in one transaction (a burst of submissions costs one commit)."""
        if not runs:
            return
        rows = [tuple(self._values(run).values()) for run in runs]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(self._insert_sql, rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def create(self, spec: RunSpec, *, mode: str = "", dry_run: bool = False, **fields: Any) -> Run:
        """Insert a new queued run owned by this process and return it with its id."""
        run = self.new_run(spec, mode=mode, dry_run=dry_run, **fields)
        self.insert([run])
        return run

    def save_many(self, runs: Sequence[Run]) -> None:
        """Save several runs in one transaction (cancel-all on a long queue)."""
        rows = []
        for run in runs:
            values = self._values(run)
            run_id = values.pop("id")
            rows.append((*values.values(), run_id))
        if not rows:
            return
        cols = [c.strip() for c in _COLUMNS.split(",") if c.strip() != "id"]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(f"UPDATE runs SET {', '.join(f'{k}=?' for k in cols)} WHERE id=?", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def save(self, run: Run) -> None:
        values = self._values(run)
        run_id = values.pop("id")
        with self._lock:
            cur = self._db.execute(
                f"UPDATE runs SET {', '.join(f'{k}=?' for k in values)} WHERE id=?",
                (*values.values(), run_id),
            )
            if cur.rowcount != 1:
                raise RegistryError(f"run {run_id} is not in the registry")

    def get(self, run_id: int) -> Run | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM runs WHERE id=?", (run_id,)).fetchone()
        return self._row_to_run(row) if row else None

    def _where(
        self,
        status: Iterable[str] | str | None,
        outcome: Iterable[str] | str | None,
        name: str | None,
        schedule_id: int | None = None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for col, val in (("status", status), ("outcome", outcome)):
            if val is None:
                continue
            vals = [val] if isinstance(val, str) else list(val)
            # one value: "=" lets SQLite walk the (col, created_at) index in order
            clauses.append(f"{col} = ?" if len(vals) == 1 else f"{col} IN ({', '.join('?' * len(vals))})")
            params.extend(vals)
        if name is not None:
            clauses.append("name = ?")
            params.append(name)
        if schedule_id is not None:
            clauses.append("schedule_id = ?")
            params.append(schedule_id)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def list(
        self,
        *,
        status: Iterable[str] | str | None = None,
        outcome: Iterable[str] | str | None = None,
        name: str | None = None,
        schedule_id: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Run]:
        """Newest first."""
        where, params = self._where(status, outcome, name, schedule_id)
        sql = f"SELECT {_COLUMNS} FROM runs{where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._db.execute(sql, (*params, limit, offset)).fetchall()
        return [self._row_to_run(r) for r in rows]

    SORTABLE = {"id": "id", "name": "name", "pattern": "pattern", "trigger": "trigger", "status": "outcome",
                "started": "started_at", "created": "created_at", "duration": "(ended_at - started_at)",
                "exit_code": "exit_code", "peak_cpu": "peak_cpu", "peak_rss": "peak_rss"}

    def _search_where(self, text: str | None, statuses: Iterable[str] | None, since: float | None,
                      until: float | None, schedule_id: int | None = None) -> tuple[str, builtins.list[Any]]:
        clauses: builtins.list[str] = []
        params: builtins.list[Any] = []
        if schedule_id is not None:
            clauses.append("schedule_id = ?")
            params.append(schedule_id)
        if text:
            clauses.append("(name LIKE ? ESCAPE '\\' OR trigger LIKE ? ESCAPE '\\' OR error LIKE ? ESCAPE '\\')")
            like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [like, like, like]
        if statuses:
            wanted = builtins.list(statuses)
            lifecycle = [s for s in wanted if s in ("queued", "running", "paused")]
            outcomes = [s for s in wanted if s not in lifecycle]
            parts = []
            if lifecycle:
                parts.append(f"status IN ({', '.join('?' * len(lifecycle))})")
                params += lifecycle
            if outcomes:
                parts.append(f"outcome IN ({', '.join('?' * len(outcomes))})")
                params += outcomes
            clauses.append("(" + " OR ".join(parts) + ")")
        if since is not None:
            clauses.append("created_at >= ?")
            params.append(since)
        if until is not None:
            clauses.append("created_at < ?")
            params.append(until)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def search(
        self,
        *,
        text: str | None = None,
        statuses: Iterable[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        schedule_id: int | None = None,
        sort: str = "created",
        descending: bool = True,
        limit: int = 200,
        offset: int = 0,
    ) -> builtins.list[Run]:
        """One page of history for the History tab: text filter, status/outcome and date filters, sorting."""
        where, params = self._search_where(text, statuses, since, until, schedule_id)
        col = self.SORTABLE.get(sort, "created_at")
        direction = "DESC" if descending else "ASC"
        sql = f"SELECT {_COLUMNS} FROM runs{where} ORDER BY {col} {direction}, id {direction} LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._db.execute(sql, (*params, limit, offset)).fetchall()
        return [self._row_to_run(r) for r in rows]

    def search_count(self, *, text: str | None = None, statuses: Iterable[str] | None = None,
                     since: float | None = None, until: float | None = None, schedule_id: int | None = None) -> int:
        where, params = self._search_where(text, statuses, since, until, schedule_id)
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM runs{where}", params).fetchone()[0])

    def apply_retention(self, *, keep_days: float | None = None, keep_runs: int | None = None) -> builtins.list[str]:
        """Delete finished runs beyond the retention setting; returns their log paths (for the caller to remove)."""
        doomed: builtins.list[tuple[int, str | None]] = []
        with self._lock:
            if keep_days is not None:
                cutoff = time.time() - keep_days * 86400
                doomed += self._db.execute(
                    "SELECT id, log_path FROM runs WHERE status='done' AND created_at < ?", (cutoff,)).fetchall()
            if keep_runs is not None:
                doomed += self._db.execute(
                    "SELECT id, log_path FROM runs WHERE status='done' ORDER BY created_at DESC LIMIT -1 OFFSET ?",
                    (keep_runs,)).fetchall()
            ids = sorted({int(r[0]) for r in doomed})
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                self._db.execute(f"DELETE FROM runs WHERE id IN ({', '.join('?' * len(part))})", part)
        return sorted({r[1] for r in doomed if r[1]})

    def count(
        self,
        *,
        status: Iterable[str] | str | None = None,
        outcome: Iterable[str] | str | None = None,
        name: str | None = None,
    ) -> int:
        where, params = self._where(status, outcome, name)
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM runs{where}", params).fetchone()[0])

    def delete(self, run_ids: Sequence[int]) -> int:
        with self._lock:
            cur = self._db.execute(
                f"DELETE FROM runs WHERE id IN ({', '.join('?' * len(run_ids))})", tuple(run_ids)
            )
        return cur.rowcount

    def find_idempotent(self, key: str, window: float | None) -> Run | None:
        """The newest run with this key that is still active, or succeeded within `window` seconds."""
        since = time.time() - window if window else None
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM runs WHERE idempotency_key=? AND (status != 'done' OR "
                "(outcome = 'succeeded' AND ? IS NOT NULL AND ended_at >= ?)) ORDER BY created_at DESC LIMIT 1",
                (key, since, since),
            ).fetchone()
        return self._row_to_run(row) if row else None

    def latest_attempt(self, first_id: int) -> Run | None:
        """The newest retry of run `first_id` (or the run itself when it was never retried)."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM runs WHERE parent_id=? ORDER BY attempt DESC LIMIT 1", (first_id,)
            ).fetchone()
        return self._row_to_run(row) if row else self.get(first_id)

    def durations(self, name: str, limit: int = 1000) -> builtins.list[tuple[str, float | None]]:
        """(outcome, duration) of the newest finished runs with this name."""
        with self._lock:
            rows = self._db.execute(
                "SELECT outcome, ended_at - started_at FROM runs WHERE name=? AND status='done' "
                "ORDER BY created_at DESC LIMIT ?",
                (name, limit),
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    # -- dead letters
    def add_dead_letter(self, run: Run, first_run_id: int, attempts: int, reason: str | None) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO dead_letters (run_id, first_run_id, name, spec, options, attempts, reason, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run.id, first_run_id, run.name, json.dumps(run.spec.to_dict(), sort_keys=True),
                 json.dumps(run.options, sort_keys=True), attempts, reason, time.time()),
            )
        return int(cur.lastrowid or 0)

    def dead_letters(self, include_requeued: bool = False) -> builtins.list[DeadLetter]:
        where = "" if include_requeued else " WHERE requeued_run_id IS NULL"
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM dead_letters{where} ORDER BY id").fetchall()
        return [
            DeadLetter(r["id"], r["run_id"], r["first_run_id"], r["name"], RunSpec.from_dict(json.loads(r["spec"])),
                       json.loads(r["options"]), r["attempts"], r["reason"], r["created_at"], r["requeued_run_id"])
            for r in rows
        ]

    def dead_letter(self, dead_letter_id: int) -> DeadLetter | None:
        found = [d for d in self.dead_letters(include_requeued=True) if d.id == dead_letter_id]
        return found[0] if found else None

    def mark_requeued(self, dead_letter_id: int, run_id: int) -> None:
        with self._lock:
            self._db.execute("UPDATE dead_letters SET requeued_run_id=? WHERE id=?", (run_id, dead_letter_id))

    def purge_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        with self._lock:
            if ids is None:
                cur = self._db.execute("DELETE FROM dead_letters")
            else:
                cur = self._db.execute(
                    f"DELETE FROM dead_letters WHERE id IN ({', '.join('?' * len(ids))})", tuple(ids)
                )
        return cur.rowcount

    # -- schedules
    def _schedule_row(self, row: sqlite3.Row) -> dict[str, Any]:
        data = dict(row)
        data["spec"] = json.loads(data["spec"])
        data["trigger"] = json.loads(data["trigger"])
        data["options"] = json.loads(data["options"]) if data["options"] else {}
        data["enabled"] = bool(data["enabled"])
        return data

    def add_schedule(self, values: dict[str, Any]) -> int:
        row = self._schedule_values(values)
        row["created_at"] = row["updated_at"] = time.time()
        with self._lock:
            try:
                cur = self._db.execute(
                    f"INSERT INTO schedules ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
                )
            except sqlite3.IntegrityError:
                raise RegistryError(f"a schedule named {values['name']!r} already exists") from None
        return int(cur.lastrowid or 0)

    @staticmethod
    def _schedule_values(values: dict[str, Any]) -> dict[str, Any]:
        row = dict(values)
        row.pop("id", None)
        for key in ("spec", "trigger", "options"):
            if key in row and not isinstance(row[key], str):
                row[key] = json.dumps(row[key], sort_keys=True)
        if "enabled" in row:
            row["enabled"] = int(bool(row["enabled"]))
        return row

    def update_schedule(self, schedule_id: int, values: dict[str, Any]) -> None:
        row = self._schedule_values(values)
        row["updated_at"] = time.time()
        with self._lock:
            try:
                cur = self._db.execute(
                    f"UPDATE schedules SET {', '.join(f'{k}=?' for k in row)} WHERE id=?", (*row.values(), schedule_id)
                )
            except sqlite3.IntegrityError:
                raise RegistryError(f"a schedule named {values.get('name')!r} already exists") from None
        if cur.rowcount != 1:
            raise RegistryError(f"no schedule #{schedule_id}")

    def get_schedule(self, key: int | str) -> dict[str, Any] | None:
        col = "id" if isinstance(key, int) else "name"
        with self._lock:
            row = self._db.execute(f"SELECT * FROM schedules WHERE {col}=?", (key,)).fetchone()
        return self._schedule_row(row) if row else None

    def list_schedules(self) -> builtins.list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM schedules ORDER BY name").fetchall()
        return [self._schedule_row(r) for r in rows]

    def delete_schedule(self, schedule_id: int) -> bool:
        """Delete a schedule; its runs (and their schedule_id) stay in history."""
        with self._lock:
            cur = self._db.execute("DELETE FROM schedules WHERE id=?", (schedule_id,))
        return cur.rowcount == 1

    def claim_fires(self, schedule_id: int, expected_next: float | None, dues: Sequence[float],
                    next_fire: float | None, last_fire: float | None) -> bool:
        """Atomically claim due times of a schedule and move its next fire on.

        Exactly once across processes: the claim only succeeds if the schedule's stored
        next fire is still what this process saw, and every (schedule, due) pair is a
        primary key, so a second process trying the same due time fails and fires nothing.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT next_fire FROM schedules WHERE id=?", (schedule_id,)).fetchone()
                if row is None or row[0] != expected_next:
                    self._db.execute("ROLLBACK")
                    return False
                me, now = self._owner[0], time.time()
                self._db.executemany(
                    "INSERT INTO schedule_fires (schedule_id, due, claimed_by, claimed_at) VALUES (?, ?, ?, ?)",
                    [(schedule_id, due, me, now) for due in dues],
                )
                self._db.execute(
                    "UPDATE schedules SET next_fire=?, last_fire=COALESCE(?, last_fire), updated_at=? WHERE id=?",
                    (next_fire, last_fire, now, schedule_id),
                )
                self._db.execute("COMMIT")
                return True
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                return False
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def fire_claims(self, schedule_id: int) -> builtins.list[tuple[float, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT due, claimed_by FROM schedule_fires WHERE schedule_id=? ORDER BY due", (schedule_id,)
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    # -- crash recovery
    def recover(self) -> builtins.list[Run]:  # `list` is also a method of this class
        """Mark runs orphaned by a dead owner `interrupted`, stopping children left alive."""
        active = [RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.PAUSED.value]
        recovered = []
        for run in self.list(status=active, limit=1_000_000):
            if owner_alive(run.owner_pid, run.owner_create_time):
                continue
            was = run.status.value
            reason = f"PrismQ process {run.owner_pid} ended while this run was {was}"
            if run.pid and run.status is not RunStatus.QUEUED and kill_orphan(run.pid, run.pid_create_time):
                reason += f"; its process tree (pid {run.pid}) was still alive and has been stopped"
            transition(run, RunStatus.DONE, Outcome(OutcomeKind.INTERRUPTED, None, reason), now=time.time())
            self.save(run)
            recovered.append(run)
        return recovered
