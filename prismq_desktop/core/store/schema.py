"""The registry's schema: append-only migrations applied inside one IMMEDIATE transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class RegistryError(RuntimeError):
    """The registry cannot do what was asked (newer schema, unknown run, duplicate name)."""


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
    # 5: when each row last changed, so a window can follow runs of other processes (CLI,
    # headless scheduler) without rereading the table
    """
    ALTER TABLE runs ADD COLUMN updated_at REAL;
    UPDATE runs SET updated_at = COALESCE(ended_at, started_at, created_at);
    CREATE INDEX runs_updated ON runs(updated_at);
    """,
]

COLUMNS = (
    "id, name, spec, status, outcome, exit_code, error, mode, dry_run, created_at, started_at, "
    "ended_at, pid, pid_create_time, argv, cwd, log_path, owner_pid, owner_create_time, "
    "priority, pattern, attempt, parent_id, idempotency_key, not_before, depends_on, progress, "
    "progress_message, options, schedule_id, trigger, peak_cpu, mean_cpu, peak_rss, mean_rss, updated_at"
)


SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """Open (and migrate) the database file; WAL so readers never block the writer."""
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db, path)
    except BaseException:
        db.close()
        raise
    return db


def migrate(db: sqlite3.Connection, path: Path) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RegistryError(
                f"{path} was written by a newer PrismQ Desktop (schema {version}, this one knows {len(MIGRATIONS)})"
            )
        for i in range(version, len(MIGRATIONS)):
            for stmt in MIGRATIONS[i].split(";"):
                if stmt.strip():
                    db.execute(stmt)
            db.execute(f"PRAGMA user_version={i + 1}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
