"""The registry's schema: append-only migrations applied inside one IMMEDIATE transaction."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from prismq_desktop.core.store.locks import lock_holder


class RegistryError(RuntimeError):
    """The registry cannot do what was asked (newer schema, unknown run, duplicate name).

    The subclasses below are what `sqlite3` errors become (`translate`): each carries one
    line saying what is wrong and what to do, for the CLI's stderr and the window's dialog.
    """


class RegistryUnusable(RegistryError):
    """The file itself cannot be used as a registry (damaged, a directory, newer, read-only):
    the window offers to open another data dir or to move the file aside."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class RegistryCorrupt(RegistryUnusable):
    """Not an SQLite file, scrambled pages, or a directory where the file should be."""


class RegistryNewer(RegistryUnusable):
    """Written by a newer PrismQ Desktop (its `user_version` is beyond our migrations)."""


class RegistryReadOnly(RegistryUnusable):
    """The file or its folder cannot be written (permissions, a read-only mount)."""


class RegistryLocked(RegistryError):
    """Another process held the registry's write lock for longer than the busy timeout.

    Passing: a write that hit it may be retried (the engine keeps and retries what it owns;
    a one-shot command says so and stops). `pid` is the holder's, when it can be known."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class RequeueTaken(RegistryError):
    """A dead letter another process requeued first (a requeue is stored once, never twice)."""


class RunKeyTaken(RegistryError):
    """A caller-chosen run id (`run_id="x"`) that another run already has: ids are unique."""


class RunNotFound(RegistryError, KeyError):
    """No run has this id or caller-chosen id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RegistryFull(RegistryError):
    """The disk holding the registry has no room left."""


_DATA_DIR_HINT = "or start with another data dir (--data-dir)"


#: what a registry call can raise: SQLite's errors, and UnicodeDecodeError when the message of
#: one quotes a damaged page's bytes (sqlite3 decodes it as UTF-8: "malformed database schema (…)")
_DB_ERRORS = (sqlite3.Error, UnicodeDecodeError)


def translate(exc: sqlite3.Error | UnicodeDecodeError, path: Path | str, busy_timeout: float | None = None) -> RegistryError:
    """The `RegistryError` (one line: what is wrong, what to do) for an `sqlite3` error on `path`."""
    path = Path(path)
    if isinstance(exc, UnicodeDecodeError):  # only a damaged file gives SQLite bytes that are not text
        exc = sqlite3.DatabaseError("database disk image is malformed")
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if path.is_dir():
        return RegistryCorrupt(f"the registry {path} is a directory, not a file; rename it {_DATA_DIR_HINT}", path)
    if primary in (5, 6) or "locked" in text:  # SQLITE_BUSY, SQLITE_LOCKED
        held = f" for over {busy_timeout:g}s" if busy_timeout is not None else ""
        pid = lock_holder(path)
        who = f" (pid {pid})" if pid is not None else ""
        return RegistryLocked(
            f"the registry {path} is locked by another process{who}{held}; "
            "close the other PrismQ Desktop (or wait) and try again",
            pid,
        )
    if primary == 13 or "disk is full" in text:  # SQLITE_FULL
        return RegistryFull(f"the disk holding the registry {path} is full; free some space and try again")
    if primary in (11, 26) or isinstance(exc, sqlite3.DatabaseError) and (
        "malformed" in text or "not a database" in text
    ):  # SQLITE_CORRUPT, SQLITE_NOTADB
        return RegistryCorrupt(
            f"the registry {path} is damaged ({text}); move it aside (a new one is made) or restore a backup, {_DATA_DIR_HINT}",
            path,
        )
    if primary in (3, 8, 14) or "readonly" in text or "unable to open" in text:  # PERM, READONLY, CANTOPEN
        folder = path.parent
        if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)) or primary == 8:
            return RegistryReadOnly(
                f"the registry {path} cannot be written (its folder or file is read-only); "
                f"make {folder} writable {_DATA_DIR_HINT}",
                path,
            )
        return RegistryReadOnly(f"the registry {path} cannot be opened ({text}); check {folder} {_DATA_DIR_HINT}", path)
    if primary == 10:  # SQLITE_IOERR
        return RegistryError(f"the registry {path} cannot be read or written ({text}); check the disk {_DATA_DIR_HINT}")
    return RegistryError(f"the registry {path} failed: {text}")


class _Cursor(sqlite3.Cursor):
    """A cursor whose fetches raise `RegistryError`s (a damaged page may only show when read)."""

    def _fail(self, exc: sqlite3.Error | UnicodeDecodeError) -> RegistryError:
        conn = self.connection
        assert isinstance(conn, RegistryConnection)
        return translate(exc, conn.registry_path, conn.busy_timeout)

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except _DB_ERRORS as exc:
            raise self._fail(exc) from exc

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except _DB_ERRORS as exc:
            raise self._fail(exc) from exc

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except _DB_ERRORS as exc:
            raise self._fail(exc) from exc

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except _DB_ERRORS as exc:
            raise self._fail(exc) from exc


class RegistryConnection(sqlite3.Connection):
    """The registry's connection: every `sqlite3` error but a constraint violation
    (`IntegrityError`, which the tables turn into their own messages) leaves it as a
    `RegistryError` subclass.

    A ROLLBACK with no transaction open (SQLite already rolled back after a full disk or
    an I/O error) is a no-op, so it never hides the error that caused it.
    """

    registry_path: Path = Path()
    busy_timeout: float | None = None
    #: opened read-only because the disk is full (`connect`): a write says the disk is full
    disk_full: bool = False

    def _error(self, exc: sqlite3.Error | UnicodeDecodeError) -> RegistryError:
        if self.disk_full:  # opened read-only on a full disk (`_full_disk_reader`): it stays read-only
            import shutil

            try:
                room = shutil.disk_usage(self.registry_path.parent).free >= _FULL_BELOW
            except OSError:
                room = False
            if room:
                return RegistryFull(f"the registry {self.registry_path} was opened read-only because its disk was "
                                    "full; there is room now: restart PrismQ Desktop (or run the command again)")
            return RegistryFull(f"the disk holding the registry {self.registry_path} is full; free some space and try again")
        return translate(exc, self.registry_path, self.busy_timeout)

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if sql == "ROLLBACK" and not self.in_transaction:
            return self.cursor(_Cursor)
        cur = self.cursor(_Cursor)
        try:
            return cur.execute(sql, parameters)
        except sqlite3.IntegrityError:
            raise  # a constraint (a duplicate name, a claimed fire): the tables answer it themselves
        except _DB_ERRORS as exc:
            raise self._error(exc) from exc

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        cur = self.cursor(_Cursor)
        try:
            return cur.executemany(sql, parameters)
        except sqlite3.IntegrityError:
            raise
        except _DB_ERRORS as exc:
            raise self._error(exc) from exc

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        try:
            return super().executescript(sql_script)
        except _DB_ERRORS as exc:
            raise self._error(exc) from exc


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
    # 6: remote runs (Celery workers): the worker's hostname, and the id naming the run's
    # Redis stream (so a restarted app can reattach to a run still going on a worker)
    """
    ALTER TABLE runs ADD COLUMN worker_host TEXT;
    ALTER TABLE runs ADD COLUMN remote_id TEXT;
    """,
]

# Function tasks (issue 15): the runner's report ('{"value": ...}' or '{"error": {...}}') kept with
# the run. Self-contained (one column, nothing else depends on its position), so it can be
# renumbered when merged with other migrations.
FUNCTION_RESULT_MIGRATION = """
    ALTER TABLE runs ADD COLUMN result TEXT;
    """
MIGRATIONS.append(FUNCTION_RESULT_MIGRATION)

# Caller-chosen run ids (issue 15, `run_id="training_job_123"`): one column and its own unique
# index (NULL for the many runs without one). Self-contained like the one above: it can be
# renumbered at a merge as long as it stays after FUNCTION_RESULT_MIGRATION's column.
RUN_KEY_MIGRATION = """
    ALTER TABLE runs ADD COLUMN run_key TEXT;
    CREATE UNIQUE INDEX runs_run_key ON runs(run_key) WHERE run_key IS NOT NULL;
    """
MIGRATIONS.append(RUN_KEY_MIGRATION)

# History's "name contains" filter at a million runs (issue 17): a trigram index over what
# RunQuery.text looks in (name, trigger, error, run_key), so a filter reads the runs that match
# instead of every row. Contentless, holding SQLite's lower() of each value with a
# case-sensitive tokenizer: a phrase of trigrams then matches exactly the rows that
# `LIKE '%needle%'` does (ASCII-only case folding, like LIKE), so no recheck of the rows is
# needed. `runs_total` holds how many runs there are (History's unfiltered count, without
# reading a million index entries). A new run (or one whose name, trigger, error or key
# changed) is only noted in `runs_fts_pending`, and the window indexes the noted runs in
# batches while idle (RunTable.index_pending); reads LIKE-check the noted ones, so answers stay
# exact. New runs are noted, and counted, by RunTable.insert in the insert's own transaction
# (one executemany for a whole burst): an AFTER INSERT trigger, even an empty one, made
# queueing 10,000 runs about 0.35 s slower (1.05 s vs 0.69 s, bench_peers). Changes and
# deletes go through triggers (rare: a run's error at its end, a rename, pruning); an UPDATE
# that leaves the four columns alone (the engine's status saves) fires nothing. Self-contained: it can be
# renumbered at a merge. Optional: an SQLite without FTS5's trigram tokenizer (< 3.34) skips
# it and the filter stays a LIKE scan (runs.RunTable checks for the table).
FTS_MIGRATION = """
    CREATE VIRTUAL TABLE runs_fts USING fts5(name, trigger, error, run_key, content='',
        tokenize='trigram case_sensitive 1');
    INSERT INTO runs_fts(rowid, name, trigger, error, run_key)
        SELECT id, lower(name), lower(trigger), lower(error), lower(run_key) FROM runs;
    CREATE TABLE runs_fts_pending (id INTEGER PRIMARY KEY);
    CREATE TABLE runs_total (n INTEGER NOT NULL);
    INSERT INTO runs_total (n) SELECT COUNT(*) FROM runs;
    CREATE TRIGGER runs_fts_delete AFTER DELETE ON runs BEGIN
        INSERT INTO runs_fts(runs_fts, rowid, name, trigger, error, run_key)
        SELECT 'delete', old.id, lower(old.name), lower(old.trigger), lower(old.error), lower(old.run_key)
        WHERE NOT EXISTS (SELECT 1 FROM runs_fts_pending WHERE id = old.id);
        DELETE FROM runs_fts_pending WHERE id = old.id;
        UPDATE runs_total SET n = n - 1;
    END;
    CREATE TRIGGER runs_fts_update AFTER UPDATE OF id, name, trigger, error, run_key ON runs
    WHEN old.id IS NOT new.id OR old.name IS NOT new.name OR old.trigger IS NOT new.trigger
        OR old.error IS NOT new.error OR old.run_key IS NOT new.run_key BEGIN
        INSERT INTO runs_fts(runs_fts, rowid, name, trigger, error, run_key)
        SELECT 'delete', old.id, lower(old.name), lower(old.trigger), lower(old.error), lower(old.run_key)
        WHERE NOT EXISTS (SELECT 1 FROM runs_fts_pending WHERE id = old.id);
        DELETE FROM runs_fts_pending WHERE id = old.id;
        INSERT INTO runs_fts_pending (id) VALUES (new.id);
    END;
    """
MIGRATIONS.append(FTS_MIGRATION)

COLUMNS = (
    "id, name, spec, status, outcome, exit_code, error, mode, dry_run, created_at, started_at, "
    "ended_at, pid, pid_create_time, argv, cwd, log_path, owner_pid, owner_create_time, "
    "priority, pattern, attempt, parent_id, idempotency_key, not_before, depends_on, progress, "
    "progress_message, options, schedule_id, trigger, peak_cpu, mean_cpu, peak_rss, mean_rss, updated_at, "
    "result, worker_host, remote_id, run_key"
)


SCHEMA_VERSION = len(MIGRATIONS)


BUSY_TIMEOUT = 30.0  # seconds a write waits for another process's lock before RegistryLocked
ENV_BUSY_TIMEOUT = "PRISMQ_REGISTRY_BUSY_TIMEOUT"  # overrides the default (tests, slow network disks)


def default_busy_timeout() -> float:
    try:
        return float(os.environ.get(ENV_BUSY_TIMEOUT) or BUSY_TIMEOUT)
    except ValueError:
        return BUSY_TIMEOUT


PAGE_CACHE_KIB = 1024


def connect(path: Path, busy_timeout: float | None = None) -> RegistryConnection:
    """Open (and migrate) the database file; WAL so readers never block the writer.

    Any `sqlite3` error (here or on later use) is a `RegistryError` subclass with one line."""
    timeout = default_busy_timeout() if busy_timeout is None else busy_timeout
    if path.is_dir():
        raise translate(sqlite3.OperationalError("unable to open database file"), path)
    try:
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=timeout,
                             factory=RegistryConnection)
    except sqlite3.Error as exc:
        raise translate(exc, path, timeout) from exc
    assert isinstance(db, RegistryConnection)
    db.registry_path, db.busy_timeout = path, timeout
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        # SQLite's page cache is per connection and fills up to its bound as the registry grows;
        # 1 MiB (not the 2 MiB default) keeps a long-lived app's memory flat within its soak goal,
        # and reads of a large registry lean on the OS page cache either way (benchmarks/bench_soak.py).
        db.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        migrate(db, path)
    except RegistryError as exc:
        db.close()
        fallback = _full_disk_reader(path, timeout, exc)
        if fallback is None:
            raise
        return fallback
    except BaseException:
        db.close()
        raise
    return db


def _full_disk_reader(path: Path, timeout: float, exc: RegistryError) -> RegistryConnection | None:
    """On a full disk, the registry read-only, so the history can still be looked at.

    The last connection to close checkpoints the WAL and deletes it, and opening a WAL database
    means making its -wal and -shm files again: on a full disk that is an I/O error, and even
    `history` could not run. With no (or an empty) -wal file every committed run is in the main
    file and no other process has written since, so SQLite's `immutable=1` reads it
    consistently without making either file (sqlite.org/uri.html#uriimmutable). Any write on it
    is refused as "the disk is full". None when that is not the case (the error stands)."""
    import shutil
    import urllib.parse

    try:
        full = shutil.disk_usage(path.parent).free < _FULL_BELOW
    except OSError:
        return None
    wal = Path(f"{path}-wal")
    try:  # the failed open may have left an empty -wal: empty, it holds nothing the main file lacks
        wal_bytes = wal.stat().st_size if wal.exists() else 0
    except OSError:
        return None
    if not full or not path.is_file() or wal_bytes or isinstance(exc, RegistryLocked):
        return None
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?immutable=1"
    try:
        db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=timeout,
                             factory=RegistryConnection)
    except sqlite3.Error:
        return None
    assert isinstance(db, RegistryConnection)
    db.registry_path, db.busy_timeout, db.disk_full = path, timeout, True
    db.row_factory = sqlite3.Row
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version != SCHEMA_VERSION:  # an older file needs a migration, which needs room
            db.close()
            return None
        db.execute("PRAGMA foreign_keys=ON")
    except RegistryError:
        db.close()
        return None
    if path not in _READ_ONLY_SAID:  # once a process, though each table opens its own connection
        _READ_ONLY_SAID.add(path)
        logging.getLogger(__name__).warning("the disk holding %s is full: the registry is open read-only", path)
    return db


_READ_ONLY_SAID: set[Path] = set()
_FULL_BELOW = 64 * 1024  # bytes free under which a disk counts as full (as the CLI's check)


def statements(script: str) -> list[str]:
    """A migration's statements, one by one (a trigger's body keeps its own semicolons)."""
    out: list[str] = []
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n\t;"):
                out.append(buf.strip())
            buf = ""
    if buf.strip(" \n\t;"):
        out.append(buf.strip().rstrip(";"))
    return out


def _no_trigram(exc: Exception) -> bool:
    text = str(exc)
    return "no such tokenizer" in text or "no such module: fts5" in text


def has_trigram_index(db: sqlite3.Connection) -> bool:
    """Whether the registry has FTS_MIGRATION's index (an SQLite without trigrams skipped it)."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='runs_fts'").fetchone() is not None


def migrate(db: sqlite3.Connection, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):  # checked before any write, so a read-only copy says this too
        raise RegistryNewer(
            f"{path} was written by a newer PrismQ Desktop (schema {version}, this one knows {len(MIGRATIONS)}); "
            f"upgrade PrismQ Desktop {_DATA_DIR_HINT}",
            path,
        )
    if version == len(MIGRATIONS):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RegistryNewer(
                f"{path} was written by a newer PrismQ Desktop (schema {version}, this one knows {len(MIGRATIONS)}); "
                f"upgrade PrismQ Desktop {_DATA_DIR_HINT}",
                path,
            )
        for i in range(version, len(MIGRATIONS)):
            for n, stmt in enumerate(statements(MIGRATIONS[i])):
                try:
                    db.execute(stmt)
                except RegistryError as exc:
                    if not (n == 0 and MIGRATIONS[i] is FTS_MIGRATION and _no_trigram(exc)):
                        raise
                    break  # this SQLite has no trigram tokenizer: History filters by LIKE scans
            db.execute(f"PRAGMA user_version={i + 1}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
