"""The runs table: ids, inserts in bursts, snapshots saved by the engine, history queries."""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from prismq_desktop.core.models import InvalidRunKey, Run, RunMode, RunSpec, RunStatus, check_run_key
from prismq_desktop.core.store.database import Database
from prismq_desktop.core.store.query import FTS_MATCH, PENDING_LIKE, RunQuery, fts_phrase, like_pattern
from prismq_desktop.core.store.rows import COLUMN_NAMES, COLUMN_OF, changed_columns, run_from_row, run_values
from prismq_desktop.core.store.schema import (
    COLUMNS,
    RegistryError,
    RequeueTaken,
    RunKeyTaken,
    RunNotFound,
    has_trigram_index,
)

#: what names a run: its numeric id (12, "12", "#12") or its caller-chosen id ("training_job_123")
RunRef = int | str

_INSERT_SQL = f"INSERT INTO runs ({', '.join(COLUMN_NAMES)}) VALUES ({', '.join('?' * len(COLUMN_NAMES))})"
_UPDATE_SQL = f"UPDATE runs SET {', '.join(f'{k}=?' for k in COLUMN_NAMES if k != 'id')} WHERE id=?"
_ALL = tuple(k for k in COLUMN_NAMES if k != "id")


@functools.lru_cache(maxsize=64)
def _update_sql(cols: tuple[str, ...]) -> str:
    """UPDATE of these columns of one row by id."""
    return f"UPDATE runs SET {', '.join(f'{c}=?' for c in cols)} WHERE id=?"


class RunTable(Database):
    """The runs table (a part of RunRegistry). Only the engine writes runs."""

    ID_BLOCK_MAX = 1024

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float | None = None) -> None:
        super().__init__(path, busy_timeout=busy_timeout)
        self._next_id = self._block_end = 0
        self._block = 4
        self._logs_dir = str(self.path.parent / "logs")
        # the snapshot this connection last wrote, for live runs (dropped once written done):
        # save_many then encodes and writes only the columns that changed, so an index is
        # touched only when its column changes (a run's start or end rewrote all ~40 columns
        # and 9 indexes)
        self._written: dict[int, Run] = {}
        self._fts = has_trigram_index(self._db)

    @property
    def owner(self) -> tuple[int, float]:
        """(pid, start time) of this process, as recorded on the runs it owns."""
        return self._owner

    def close(self) -> None:
        with self._lock:
            self._release_ids()
        super().close()

    def _release_ids(self) -> None:
        """Give back the unused rest of our id block, if nobody reserved after us (keeps ids dense)."""
        if self._next_id >= self._block_end:
            return
        try:
            self._db.execute(
                "UPDATE sqlite_sequence SET seq=? WHERE name='runs' AND seq=?", (self._next_id - 1, self._block_end - 1)
            )
        except Exception:  # noqa: BLE001 - a closed or locked file only costs a gap in the ids
            pass
        self._next_id = self._block_end

    # -- new runs
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

    def new_run(self, spec: RunSpec, *, mode: RunMode | str = RunMode.AUTO, dry_run: bool = False, **fields: Any) -> Run:
        """A queued Run with a reserved id, owned by this process, not yet stored (see insert)."""
        run_id = self.reserve_id()
        return Run(id=run_id, spec=spec, mode=RunMode(mode), dry_run=dry_run, owner_pid=self._owner[0],
                   owner_create_time=self._owner[1], log_path=self.default_log_path(run_id), **fields)

    def default_log_path(self, run_id: int) -> str:
        return f"{self._logs_dir}{os.sep}run-{run_id}.log"

    def insert(self, runs: Sequence[Run]) -> None:
        """Store new runs in one transaction (a burst of submissions costs one commit).

        A run requeued from a dead letter (`options["requeue_of"]`) marks that dead letter in
        the same transaction, so neither is ever stored without the other. A run whose
        caller-chosen id is taken raises RunKeyTaken and nothing is stored."""
        if not runs:
            return
        rows = [tuple(run_values(run, self.stored_spec(run.spec)).values()) for run in runs]
        requeued = [(run.id, int(run.options["requeue_of"])) for run in runs
                    if run.options.get("requeue_of") is not None and run.attempt <= 1]  # not its retries
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for run_id, dead_letter_id in requeued:  # the first run of the new chain (retries carry it too)
                    # marked first, under the write lock: of two processes requeueing one dead
                    # letter at once, the second finds it marked and stores nothing
                    cur = self._db.execute("UPDATE dead_letters SET requeued_run_id=? WHERE id=? AND requeued_run_id IS NULL",
                                           (run_id, dead_letter_id))
                    if cur.rowcount == 0:
                        row = self._db.execute("SELECT requeued_run_id FROM dead_letters WHERE id=?",
                                               (dead_letter_id,)).fetchone()
                        self._db.execute("ROLLBACK")
                        taken = f" as run #{row[0]}" if row is not None and row[0] else ""
                        raise RequeueTaken(f"dead letter #{dead_letter_id} was already requeued{taken} "
                                           f"(by another process); nothing was started")
                self._db.executemany(_INSERT_SQL, rows)
                if self._fts:  # noted for the trigram index and counted, in this transaction (schema.FTS_MIGRATION)
                    self._db.executemany("INSERT OR IGNORE INTO runs_fts_pending (id) VALUES (?)", [(r[0],) for r in rows])
                    self._db.execute("UPDATE runs_total SET n = n + ?", (len(rows),))
                self._db.execute("COMMIT")
                self._remember(runs)
            except sqlite3.IntegrityError as exc:
                self._db.execute("ROLLBACK")
                keys = [run.key for run in runs if run.key]
                if keys and "run_key" in str(exc):
                    raise self._key_taken(keys) from None
                raise
            except RequeueTaken:
                raise
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _key_taken(self, keys: Sequence[str]) -> RunKeyTaken:
        for key in keys:
            row = self._db.execute("SELECT id FROM runs WHERE run_key=?", (key,)).fetchone()
            if row is not None:
                return RunKeyTaken(f"run id {key!r} is already used by run #{row[0]}; choose another")
        return RunKeyTaken(f"run id {keys[0]!r} is already used; choose another")

    # -- caller-chosen ids
    def by_key(self, key: str) -> Run | None:
        """The run whose caller-chosen id is `key` (the first attempt of its chain)."""
        with self._lock:
            row = self._db.execute(f"SELECT {COLUMNS} FROM runs WHERE run_key=?", (key,)).fetchone()
        return run_from_row(row) if row else None

    def key_owner(self, key: str) -> int | None:
        """The id of the run holding caller-chosen id `key`, if any."""
        with self._lock:
            row = self._db.execute("SELECT id FROM runs WHERE run_key=?", (key,)).fetchone()
        return int(row[0]) if row else None

    def resolve(self, ref: RunRef) -> int:
        """The numeric id `ref` names: 12, "12", "#12", or a caller-chosen id. RunNotFound otherwise.

        The one lookup the CLI, the orchestrator and the window share."""
        if isinstance(ref, bool):
            raise RunNotFound(f"no run {ref!r}")
        if isinstance(ref, int):
            return ref
        text = str(ref).strip()
        digits = text[1:] if text.startswith("#") else text
        if digits.isascii() and digits.isdigit():
            return int(digits)
        try:
            key = check_run_key(text)
        except InvalidRunKey as exc:
            raise RunNotFound(f"no run {text[:60]!r} ({exc})") from None
        found = self.key_owner(key)
        if found is None:
            raise RunNotFound(f"no run with id {key!r}")
        return found

    def create(self, spec: RunSpec, *, mode: RunMode | str = RunMode.AUTO, dry_run: bool = False, **fields: Any) -> Run:
        """Insert a new queued run owned by this process and return it with its id."""
        run = self.new_run(spec, mode=mode, dry_run=dry_run, **fields)
        self.insert([run])
        return run

    # -- saving snapshots (the engine's job)
    def _update_row(self, run: Run) -> tuple[Any, ...]:
        values = run_values(run, self.stored_spec(run.spec, refresh=False))
        run_id = values.pop("id")
        return (*values.values(), run_id)

    def _remember(self, runs: Sequence[Run]) -> None:
        """Snapshots just committed: kept while their run is live."""
        written = self._written
        for run in runs:
            if run.status is RunStatus.DONE:
                written.pop(run.id, None)
            else:
                written[run.id] = run

    def save_many(self, runs: Sequence[Run], check: bool = False) -> None:
        """Save several runs in one transaction (cancel-all on a long queue, the engine's
        per-loop-turn batch). `check`: RegistryError, and nothing saved, unless every row exists.

        A run this connection wrote before gets only its changed columns (and updated_at)."""
        if not runs:
            return
        with self._lock:
            now = time.time()
            groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
            for run in runs:
                old = self._written.get(run.id)
                if old is None:
                    values = run_values(run, self.stored_spec(run.spec, refresh=False))
                    values["updated_at"] = now
                    del values["id"]
                    groups.setdefault(_ALL, []).append((*values.values(), run.id))
                    continue
                cols = (*changed_columns(old, run), "updated_at")
                row = [now if c == "updated_at" else self.stored_spec(run.spec, refresh=False) if c == "spec"
                       else COLUMN_OF[c](run) for c in cols]
                row.append(run.id)
                groups.setdefault(cols, []).append(tuple(row))
            self._db.execute("BEGIN")
            try:
                count = 0
                for cols, rows in groups.items():
                    count += self._db.executemany(_update_sql(cols), rows).rowcount
                if check and count != len(runs):
                    raise RegistryError(f"{len(runs) - count} of runs {[r.id for r in runs]} are not in the registry")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._remember(runs)

    def save(self, run: Run) -> None:
        with self._lock:
            row = self._update_row(run)
            cur = self._db.execute(_UPDATE_SQL, row)
            if cur.rowcount != 1:
                self._written.pop(run.id, None)
                raise RegistryError(f"run {run.id} is not in the registry")
            if not self._db.in_transaction:  # autocommitted: the row is what we wrote
                self._remember([run])
            else:
                self._written.pop(run.id, None)

    # -- reading
    def get(self, run_id: int) -> Run | None:
        with self._lock:
            row = self._db.execute(f"SELECT {COLUMNS} FROM runs WHERE id=?", (run_id,)).fetchone()
        return run_from_row(row) if row else None

    #: a text filter matching at least this many runs is paged by a LIKE scan in sort order
    #: (it meets a page of matches soon); fewer, by reading the matches from the trigram index
    COMMON_MATCHES = 4000

    def index_pending(self, limit: int = 5000) -> int:
        """Put up to `limit` of the runs the triggers noted (new or renamed, schema.FTS_MIGRATION)
        into the trigram index, in one short transaction; returns how many are still noted.

        Reads never need it (they LIKE-check the noted runs), so it is done off the hot paths:
        the window calls it while idle. It never waits on another process's write lock (it
        tries again later) and a read-only or full disk only leaves the runs noted."""
        if not self._fts:
            return 0
        with self._lock:
            if self._db.in_transaction or not self._pending_count():
                return self._pending_count()
            timeout_ms = int(float(getattr(self._db, "busy_timeout", None) or 30.0) * 1000)
            self._db.execute("PRAGMA busy_timeout=50")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute("CREATE TEMP TABLE IF NOT EXISTS fts_batch (id INTEGER PRIMARY KEY)")
                    self._db.execute("DELETE FROM fts_batch")
                    self._db.execute("INSERT INTO fts_batch SELECT id FROM runs_fts_pending ORDER BY id LIMIT ?", (limit,))
                    self._db.execute("INSERT INTO runs_fts(rowid, name, trigger, error, run_key) "
                                     "SELECT r.id, lower(r.name), lower(r.trigger), lower(r.error), lower(r.run_key) "
                                     "FROM fts_batch b JOIN runs r ON r.id = b.id")
                    self._db.execute("DELETE FROM runs_fts_pending WHERE id IN (SELECT id FROM fts_batch)")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except RegistryError:
                pass  # locked by another process, read-only, full: the runs stay noted, reads stay exact
            finally:
                self._db.execute(f"PRAGMA busy_timeout={timeout_ms}")
            return self._pending_count()

    def _pending_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM runs_fts_pending").fetchone()[0])

    def _use_index(self, query: RunQuery, matches: int | None = None) -> bool:
        """Whether to answer `query.text` from the trigram index: only when it has few matches
        (`matches`: how many the caller just counted, else probed here).

        A common text (in most runs) is met within a few pages of a scan in the sort's index
        order, which stops at the page; the index would hand over every match to be sorted."""
        if not (self._fts and query.indexed_text()):
            return False
        if matches is None or not self._text_only(query):  # with other filters, the count says less
            sql = f"SELECT COUNT(*) FROM ({FTS_MATCH} LIMIT ?)"
            assert query.text is not None
            matches = int(self._db.execute(sql, (fts_phrase(query.text), self.COMMON_MATCHES)).fetchone()[0])
        return matches < self.COMMON_MATCHES

    @staticmethod
    def _text_only(query: RunQuery) -> bool:
        return replace(query, sort="created", descending=True, limit=0, offset=0) == RunQuery(text=query.text, limit=0)

    def query(self, query: RunQuery = RunQuery(), *, matches: int | None = None) -> list[Run]:
        """One page of runs (newest first unless the query sorts otherwise). `matches`: the
        count of `query` the caller just made (History), which decides how a text is answered."""
        with self._lock:
            where, params = query.where(fts=self._use_index(query, matches))
            sql = f"SELECT {COLUMNS} FROM runs{where}{query.order_by()} LIMIT ? OFFSET ?"
            rows = self._db.execute(sql, (*params, query.limit, query.offset)).fetchall()
        return [run_from_row(r) for r in rows]

    def count(self, query: RunQuery = RunQuery()) -> int:
        """How many runs `query` selects; a text filter alone is counted in the trigram index
        without reading a row of the table."""
        with self._lock:
            if self._fts and query.text is None and self._text_only(query):  # every run: kept by triggers
                return int(self._db.execute("SELECT n FROM runs_total").fetchone()[0])
            if self._fts and query.text is not None and query.indexed_text() and self._text_only(query):
                counted = self._count_text(query.text, None)
                assert counted is not None
                return counted
            where, params = query.where(fts=self._use_index(query))
            return int(self._db.execute(f"SELECT COUNT(*) FROM runs{where}", params).fetchone()[0])

    def count_up_to(self, query: RunQuery, cap: int) -> int | None:
        """`count(query)`, or None when a text filter alone matches at least `cap` runs of the
        trigram index: counting stops there, so History can show a first page of a common text
        without the full phrase count (which walks the doclists of trigrams in every run)."""
        with self._lock:
            if self._fts and query.text is not None and query.indexed_text() and self._text_only(query):
                return self._count_text(query.text, cap)
        return self.count(query)

    def _count_text(self, text: str, cap: int | None) -> int | None:
        """Runs whose text contains `text`: the index's matches plus the noted runs', in one read
        transaction (a row is in the index or noted, never both; another process's `index_pending`
        moving rows between two autocommitted reads would count them twice or not at all)."""
        own = not self._db.in_transaction
        if own:
            self._db.execute("BEGIN")
        try:
            params: tuple[str | int, ...] = (fts_phrase(text),)
            if cap is None:
                sql = "SELECT COUNT(*) FROM runs_fts WHERE runs_fts MATCH ?"
            else:
                sql, params = f"SELECT COUNT(*) FROM ({FTS_MATCH} LIMIT ?)", (*params, cap)
            indexed = int(self._db.execute(sql, params).fetchone()[0])
            if cap is not None and indexed >= cap:
                return None
            noted = self._db.execute(f"SELECT COUNT(*) FROM ({PENDING_LIKE})", [like_pattern(text)] * 4)
            return indexed + int(noted.fetchone()[0])
        finally:
            if own:
                self._db.execute("COMMIT")

    def outcome_stats(self, bounds: tuple[float, ...]) -> tuple[dict[str, int], list[int], float, int]:
        """For /metrics: finished runs by outcome, and the duration histogram of those that
        started (cumulative counts per upper bound in `bounds`, the sum of durations, the count)."""
        with self._lock:
            counts = {str(o): int(n) for o, n in self._db.execute(
                "SELECT outcome, COUNT(*) FROM runs WHERE status='done' AND outcome IS NOT NULL GROUP BY outcome")}
            picks = ", ".join("SUM(ended_at - started_at <= ?)" for _ in bounds)
            row = self._db.execute(
                f"SELECT {picks + ', ' if picks else ''}TOTAL(ended_at - started_at), COUNT(*) FROM runs "
                "WHERE status='done' AND started_at IS NOT NULL AND ended_at IS NOT NULL", bounds).fetchone()
        buckets = [int(v or 0) for v in row[: len(bounds)]]
        return counts, buckets, float(row[len(bounds)] or 0.0), int(row[len(bounds) + 1] or 0)

    def active_runs(self) -> list[Run]:
        """Every run not yet done (any owner), oldest first."""
        return self.query(RunQuery(states=("queued", "running", "paused"), descending=False, limit=10_000_000))

    def data_version(self) -> int:
        """Changes when *another* connection commits (SQLite's data_version): a cheap "anything new?"."""
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def changed_since(self, stamp: float, limit: int = 1000) -> list[tuple[Run, float]]:
        """Runs whose row changed at or after `stamp` (oldest change first), with when it changed."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM runs WHERE updated_at >= ? ORDER BY updated_at LIMIT ?", (stamp, limit)
            ).fetchall()
        return [(run_from_row(r), float(r["updated_at"])) for r in rows]

    def find_idempotent(self, key: str, window: float | None) -> Run | None:
        """The newest run with this key that is still active, or succeeded within `window` seconds."""
        since = time.time() - window if window else None
        with self._lock:
            row = self._db.execute(
                f"SELECT {COLUMNS} FROM runs WHERE idempotency_key=? AND (status != 'done' OR "
                "(outcome = 'succeeded' AND ? IS NOT NULL AND ended_at >= ?)) ORDER BY created_at DESC LIMIT 1",
                (key, since, since),
            ).fetchone()
        return run_from_row(row) if row else None

    def latest_attempt(self, first_id: int) -> Run | None:
        """The newest retry of run `first_id` (or the run itself when it was never retried)."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {COLUMNS} FROM runs WHERE parent_id=? ORDER BY attempt DESC LIMIT 1", (first_id,)
            ).fetchone()
        return run_from_row(row) if row else self.get(first_id)

    def follow_ups(self, first_id: int) -> list[int]:
        """Ids of the runs submitted as on_success/on_failure follow-ups of chain `first_id`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM runs WHERE id > ? AND options IS NOT NULL "
                "AND json_extract(options, '$.follow_up_of') = ? ORDER BY id",
                (first_id, first_id),
            ).fetchall()
        return [int(r[0]) for r in rows]

    def durations(self, name: str, limit: int = 1000) -> list[tuple[str, float | None]]:
        """(outcome, duration) of the newest finished runs with this name."""
        with self._lock:
            rows = self._db.execute(
                "SELECT outcome, ended_at - started_at FROM runs WHERE name=? AND status='done' "
                "ORDER BY created_at DESC LIMIT ?",
                (name, limit),
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    # -- deleting finished runs (services.history decides which: history delete, retention)
    def delete(self, run_ids: Sequence[int]) -> int:
        if not run_ids:
            return 0
        removed = 0
        secrets: set[str] = set()
        with self._lock:
            for i in range(0, len(run_ids), 500):
                part = tuple(run_ids[i : i + 500])
                marks = ', '.join('?' * len(part))
                secrets |= self._secret_refs(f"SELECT spec FROM runs WHERE id IN ({marks}) AND spec LIKE ?",
                                             (*part, "%prismq-secret:%"))
                cur = self._db.execute(f"DELETE FROM runs WHERE id IN ({marks})", part)
                removed += cur.rowcount
                for run_id in part:
                    self._written.pop(run_id, None)
        self.release_secrets(secrets)  # values no longer used by anything leave their store
        return removed

    def retention_victims(self, *, keep_days: float | None = None, keep_runs: int | None = None) -> list[tuple[int, str | None]]:
        """(id, log path) of finished runs beyond a retention setting; None means no limit."""
        doomed: list[tuple[int, str | None]] = []
        with self._lock:
            if keep_days is not None:
                cutoff = time.time() - keep_days * 86400
                doomed += [(int(r[0]), r[1]) for r in self._db.execute(
                    "SELECT id, log_path FROM runs WHERE status='done' AND created_at < ?", (cutoff,)).fetchall()]
            if keep_runs is not None:
                doomed += [(int(r[0]), r[1]) for r in self._db.execute(
                    "SELECT id, log_path FROM runs WHERE status='done' ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?",
                    (keep_runs,)).fetchall()]
        return sorted(set(doomed))
