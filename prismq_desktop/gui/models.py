"""Table models: one QAbstractTableModel per table (runs, history).

The history model pages in from the registry with canFetchMore/fetchMore (as Vorta and
Spyder do), so 100,000 runs cost one page on first paint; sorting and filtering are SQL.
It is also live: `HistoryModel.upsert(run)` puts a new or changed run where the SQL sort
and filter would (a binary search over the loaded rows and a Python mirror of `RunQuery`),
with row inserts, moves and removals, never a reset.

Words come from `core/wording.py` ("failed to start", "failed (SIGTERM)", "1 run").
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette

from prismq_desktop.core.models import OutcomeKind, Run, RunStatus, TargetKind
from prismq_desktop.core.store.query import LIFECYCLE, RunQuery
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.core.store.rows import storable
from prismq_desktop.core.wording import duration_text, end_line, exit_text, plural, status_text
from prismq_desktop.gui.ansi import legible

Index = QModelIndex | QPersistentModelIndex


def place_text(run: Run) -> str:
    """Where a run ran, for a cell: "" (this machine), "pool", "gpu → box1" (a remote queue and its worker)."""
    from prismq_desktop.gui.where import where_text

    if run.spec.where is None and run.pattern.value == "pooled":
        return "pool"
    return where_text(run.spec.where, run.worker_host)


def result_text(run: Run, limit: int = 300) -> str | None:
    """A finished function task's return value ("returned {...}") or exception ("raised ValueError: x")."""
    if run.spec.kind is not TargetKind.FUNCTION or run.outcome is None or run.result is None:
        return None
    error = run.result_error
    if error is not None:
        return f"raised {error.get('type', 'an exception')}: {error.get('message', '')}".rstrip(": ")
    try:
        value = json.dumps(run.result_value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        value = repr(run.result_value)
    return "returned " + (value if len(value) <= limit else value[:limit - 1] + "…")
RUN_ROLE = Qt.ItemDataRole.UserRole + 1
PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 2


def human_bytes(n: float | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def human_duration(seconds: float | None) -> str:
    """`20.6 s`, `3m 07s` (wording.duration_text)."""
    return duration_text(seconds)


def pane_end_text(run: Run) -> str:
    """The line a log pane ends with: a function task's value or exception, else `end_line`."""
    result = result_text(run)
    if result is None:
        return end_line(run)
    after = f" after {duration_text(run.duration)}" if run.duration is not None else ""
    error = run.result_error
    if error is not None:
        message = error.get("message", "")
        return f"raised {error.get('type', 'an exception')}{after}" + (f": {message}" if message else "")
    return f"{result}{after}"


def state_text(run: Run) -> str:
    """Short words for a table cell ("failed (SIGTERM)", "failed to start"); the full reason is the tooltip."""
    return status_text(run)


def status_brush(run: Run) -> QColor | None:
    """The status colour, made legible (4.5:1) on the current palette's background."""
    color = state_color(run)
    if color is None:
        return None
    app = QGuiApplication.instance()
    base = QGuiApplication.palette().color(QPalette.ColorRole.Base).name() if app is not None else "#ffffff"
    return QColor(legible(color, base))


def state_color(run: Run) -> str | None:
    if run.outcome is None:
        return {RunStatus.RUNNING: "#2472c8", RunStatus.PAUSED: "#b58900"}.get(run.status)
    return {
        OutcomeKind.SUCCEEDED: "#2e8b57", OutcomeKind.FAILED: "#cd3131", OutcomeKind.FAILED_TO_START: "#cd3131",
        OutcomeKind.TIMED_OUT: "#d2691e", OutcomeKind.CANCELLED: "#808080", OutcomeKind.INTERRUPTED: "#d2691e",
        OutcomeKind.DEPENDENCY_FAILED: "#cd3131", OutcomeKind.SKIPPED: "#808080", OutcomeKind.MISSED: "#808080",
    }.get(run.outcome.kind)


class ColumnTable(QAbstractTableModel):
    """A flat table under fixed column titles (every table model of the window)."""

    COLUMNS: list[str] = []

    def row_total(self) -> int:
        raise NotImplementedError

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else self.row_total()

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(self.COLUMNS):
            return self.COLUMNS[section]
        return None


class RunTable(ColumnTable):
    """The parts every run table shares: rows of runs."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runs: list[Run] = []

    def row_total(self) -> int:
        return len(self._runs)

    def run_at(self, row: int) -> Run | None:
        return self._runs[row] if 0 <= row < len(self._runs) else None

    STATUS_COLUMN = -1
    NAME_COLUMN = 1

    def status_role(self, run: Run, col: int, role: int) -> Any:
        """The roles every run table answers the same way: the run itself, the status colour and reason."""
        if role == RUN_ROLE:
            return run
        if col == self.NAME_COLUMN and role == Qt.ItemDataRole.ToolTipRole:
            return run.name  # the whole name, however narrow the column (it elides in the middle)
        if col != self.STATUS_COLUMN:
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            return status_brush(run)
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [run.outcome.message] if run.outcome and run.outcome.message else []
            result = result_text(run)
            if result and not (run.result_error and lines):  # an exception is already the outcome's note
                lines.append(result)
            if run.worker_host:
                lines.append(f"ran on {run.worker_host} (queue {run.spec.remote_queue})")
            return "\n".join(lines) or None
        return None


class RunsModel(RunTable):
    """Runs of this session: active ones plus those finished since the last "clear finished".

    The newest run is row 0; runs are kept oldest first internally, so adding one is an
    append (10,000 queued at once stay cheap). A finished run keeps its CPU and RSS columns:
    they show its peaks (from the finished snapshot, else the highest sample seen).
    """

    COLUMNS = ["#", "Name", "Status", "Progress", "Elapsed", "CPU", "RSS", "Pattern", "Trigger", "Where"]
    STATUS_COLUMN = 2

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._index: dict[int, int] = {}  # run id -> position in self._runs (oldest first)
        self._usage: dict[int, tuple[float, int]] = {}
        self._peak: dict[int, tuple[float, int]] = {}  # highest samples seen, for runs the monitor saw briefly
        self._progress: dict[int, float] = {}  # readings newer than the row's snapshot

    def row_total(self) -> int:
        return len(self._runs)

    def _row(self, pos: int) -> int:
        return len(self._runs) - 1 - pos

    def run_at(self, row: int) -> Run | None:
        return self._runs[len(self._runs) - 1 - row] if 0 <= row < len(self._runs) else None

    def _fraction(self, run: Run) -> float | None:
        return self._progress.get(run.id, run.progress)

    def usage(self, run: Run) -> tuple[float | None, int | None, bool]:
        """(cpu, rss, is_peak): live readings while the run is active, its peaks once it ended."""
        if run.is_active:
            cpu, rss = self._usage.get(run.id, (None, None))
            return cpu, rss, False
        seen_cpu, seen_rss = self._peak.get(run.id, (None, None))
        cpu = run.peak_cpu if run.peak_cpu is not None else seen_cpu
        rss = run.peak_rss if run.peak_rss is not None else seen_rss
        return cpu, rss, True

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        run = self.run_at(index.row()) if index.isValid() else None
        if run is None:
            return None
        col = index.column()
        if role == PROGRESS_ROLE and col == 3:
            return self._fraction(run)
        if role == Qt.ItemDataRole.ToolTipRole and col in (5, 6):
            cpu, rss, peak = self.usage(run)
            return ("peak over the run" if peak else "now") if (cpu, rss) != (None, None) else None
        if role != Qt.ItemDataRole.DisplayRole:
            return self.status_role(run, col, role)
        cpu, rss, _peak = self.usage(run)
        values = [
            run.id, run.name, status_text(run),
            f"{fraction * 100:.0f}%" if (fraction := self._fraction(run)) is not None else "",
            duration_text(run.duration),
            f"{cpu:.0f}%" if cpu is not None else "",
            human_bytes(rss) if rss is not None else "",
            run.pattern.replace("_", " "), run.trigger or "manual", place_text(run),
        ]
        return str(values[col])

    def upsert(self, run: Run) -> None:
        """Add or update a run; the newest run is on top. Skipped and missed schedule fires
        (records, not runs) belong to History and the Scheduler tab, not here."""
        pos = self._index.get(run.id)
        if pos is None:
            if run.outcome is not None and run.outcome.kind in (OutcomeKind.SKIPPED, OutcomeKind.MISSED):
                return
            self.beginInsertRows(QModelIndex(), 0, 0)
            self._index[run.id] = len(self._runs)
            self._runs.append(run)
            self.endInsertRows()
        else:
            self._runs[pos] = run
            row = self._row(pos)
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))

    def set_progress(self, run_id: int, fraction: float) -> None:
        pos = self._index.get(run_id)
        if pos is not None:
            self._progress[run_id] = fraction
            row = self._row(pos)
            self.dataChanged.emit(self.index(row, 3), self.index(row, 3))

    def set_usage(self, run_id: int, cpu: float, rss: int) -> None:
        pos = self._index.get(run_id)
        if pos is not None:
            self._usage[run_id] = (cpu, rss)
            seen_cpu, seen_rss = self._peak.get(run_id, (cpu, rss))
            self._peak[run_id] = (max(seen_cpu, cpu), max(seen_rss, rss))
            row = self._row(pos)
            self.dataChanged.emit(self.index(row, 5), self.index(row, 6))

    def tick(self) -> None:
        """Refresh the elapsed column of active runs (called once a second)."""
        for pos, run in enumerate(self._runs):
            if run.is_active and run.started_at is not None:
                row = self._row(pos)
                self.dataChanged.emit(self.index(row, 4), self.index(row, 4))

    def row_of(self, run_id: int) -> int | None:
        pos = self._index.get(run_id)
        return None if pos is None else self._row(pos)

    def active_ids(self) -> list[int]:
        return [r.id for r in reversed(self._runs) if r.is_active]

    def clear_finished(self) -> None:
        self.beginResetModel()
        self._runs = [r for r in self._runs if r.is_active]
        self._index = {r.id: i for i, r in enumerate(self._runs)}
        for table in (self._progress, self._usage, self._peak):
            for rid in [rid for rid in table if rid not in self._index]:
                del table[rid]
        self.endResetModel()

    def counts(self) -> tuple[int, int]:
        running = sum(1 for r in self._runs if r.status in (RunStatus.RUNNING, RunStatus.PAUSED))
        queued = sum(1 for r in self._runs if r.status is RunStatus.QUEUED)
        return running, queued

    def count_text(self) -> str:
        """"1 running · 3 queued" for a label."""
        running, queued = self.counts()
        return f"{running:,} running · {queued:,} queued"


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_MUTABLE_SORTS = frozenset({"status", "started", "duration", "exit_code", "peak_cpu", "peak_rss"})


def _like(needle: str, value: str | None) -> bool:
    """SQLite's `value LIKE '%needle%'` (case-insensitive for ASCII letters only)."""
    return value is not None and needle.translate(_ASCII_LOWER) in value.translate(_ASCII_LOWER)


def _sort_value(sort: str) -> Callable[[Run], Any]:
    """The value RunQuery's ORDER BY sorts on, for a snapshot (store.query.SORTABLE)."""
    def duration(r: Run) -> float | None:
        return None if r.started_at is None or r.ended_at is None else r.ended_at - r.started_at

    getters: dict[str, Callable[[Run], Any]] = {
        "id": lambda r: r.id, "name": lambda r: storable(r.name), "pattern": lambda r: str(r.pattern.value),
        "trigger": lambda r: storable(r.trigger), "status": lambda r: r.outcome.kind.value if r.outcome else None,
        "started": lambda r: r.started_at, "created": lambda r: r.created_at, "duration": duration,
        "exit_code": lambda r: r.exit_code, "peak_cpu": lambda r: r.peak_cpu, "peak_rss": lambda r: r.peak_rss,
    }
    return getters.get(sort, getters["created"])


class HistoryModel(RunTable):
    """Every recorded run, newest first by default, paged in from the registry, kept live by `upsert`.

    The loaded rows are always exactly the first rows of the SQL result (same order, same
    filter), so `fetchMore` can keep paging by offset: a run that sorts after the loaded rows
    is only counted in `total` and arrives with its page.
    """

    COLUMNS = ["#", "Name", "Pattern", "Trigger", "Status", "Started", "Duration", "Exit", "Peak CPU", "Peak RSS",
               "Where"]
    STATUS_COLUMN = 4
    SORT_KEYS = ["id", "name", "pattern", "trigger", "status", "started", "duration", "exit_code", "peak_cpu", "peak_rss"]
    PAGE = 200
    #: the exact count of a common text arrived (after the first page): the label says it
    total_changed = Signal()

    def __init__(self, registry: RunRegistry, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.registry = registry
        self._total = 0
        # a common text filter's first page is shown before its exact count (a full phrase count
        # of trigrams found in every run costs more than the page): `_total` is then a lower bound
        self.counting = False
        self._count_turn = 0
        self._loaded: dict[int, Run] = {}  # id -> the snapshot its row shows
        self._beyond: dict[int, bool] = {}  # runs upserted past the loaded rows -> counted in total
        self._texts: dict[int, tuple[Run, tuple[str, ...]]] = {}  # id -> (snapshot, its cells' texts)
        self._refreshed_at = 0.0
        self.text = ""
        self.statuses: list[str] | None = None
        self.since: float | None = None
        self.until: float | None = None
        self.schedule_id: int | None = None
        self.sort_key = "created"
        self.descending = True
        self.refresh()

    # -- paging
    def refresh(self) -> None:
        self.beginResetModel()
        self._refreshed_at = time.time()
        cap = self.registry.COMMON_MATCHES
        counted = self.registry.count_up_to(self.query(), cap)
        self._runs = self._page(0, cap if counted is None else counted)
        self.counting = counted is None and len(self._runs) >= self.PAGE
        if counted is not None:
            self._total = counted
        else:  # at least `cap` (a short page: that was all)
            self._total = max(cap, len(self._runs)) if self.counting else len(self._runs)
        self._loaded = {r.id: r for r in self._runs}
        self._beyond = {}
        self._value = _sort_value(self.sort_key)
        self.endResetModel()
        self._count_turn += 1
        if self.counting:  # after the first page is drawn (posted after its repaint)
            turn = self._count_turn
            QTimer.singleShot(0, self, lambda: self.finish_count(turn))

    def finish_count(self, turn: int | None = None) -> None:
        """The exact count of the filter whose first page is shown (`turn`: of that refresh only)."""
        if not self.counting or (turn is not None and turn != self._count_turn):
            return
        self._refreshed_at = time.time()  # runs created from now on are not in this count (upsert)
        self._total = max(self.registry.count(self.query()), len(self._runs))
        self.counting = False
        self.total_changed.emit()

    def query(self, offset: int = 0) -> RunQuery:
        """The filter, sort and page this model shows, as the store's one query type."""
        return RunQuery.of(self.statuses, text=self.text or None, since=self.since, until=self.until,
                           schedule_id=self.schedule_id, sort=self.sort_key, descending=self.descending,
                           limit=self.PAGE, offset=offset)

    def _page(self, offset: int, matches: int | None = None) -> list[Run]:
        if matches is None:
            return self.registry.query(self.query(offset))
        return self.registry.query(self.query(offset), matches=matches)

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: N802, B008
        return not parent.isValid() and (len(self._runs) < self._total or self.counting)  # counting: a lower bound

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: N802, B008
        if parent.isValid():
            return
        page = self._page(len(self._runs))
        more = [r for r in page if r.id not in self._loaded]  # another process's change may shift a page
        if not more:
            self._total = len(self._runs)
            self._stop_counting()
            return
        self.beginInsertRows(QModelIndex(), len(self._runs), len(self._runs) + len(more) - 1)
        self._runs.extend(more)
        for r in more:
            self._loaded[r.id] = r
            self._beyond.pop(r.id, None)
        self.endInsertRows()
        if len(page) < self.PAGE:  # the last page: whatever the count said, this is all
            self._total = len(self._runs)
            self._stop_counting()

    def _stop_counting(self) -> None:
        if self.counting:
            self.counting = False
            self.total_changed.emit()

    @property
    def total(self) -> int:
        return self._total

    def count_text(self) -> str:
        """"1 run", "1,204 runs", "at least 4,000 runs, counting…" (what the History label says)."""
        if self.counting:
            return f"at least {plural(self._total, 'run')}, counting…"
        return plural(self._total, "run")

    # -- filters and sorting
    def set_filter(self, text: str | None = None, statuses: list[str] | None = None,
                   since: float | None = None, until: float | None = None) -> None:
        self.text = (text or "").strip()
        self.statuses = statuses or None
        self.since, self.until = since, until
        self.refresh()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self.SORT_KEYS):
            return
        self.sort_key = self.SORT_KEYS[column]
        self.descending = order == Qt.SortOrder.DescendingOrder
        self.refresh()

    # -- live updates
    def matches(self, run: Run) -> bool:
        """Whether `query()`'s filter selects this snapshot (RunQuery.where, in Python)."""
        if self.schedule_id is not None and run.schedule_id != self.schedule_id:
            return False
        if self.text and not (_like(self.text, storable(run.name)) or _like(self.text, storable(run.trigger))
                              or _like(self.text, storable(run.error)) or _like(self.text, run.key)):
            return False
        if self.statuses:
            outcome = run.outcome.kind.value if run.outcome else None
            if not any((s == run.status.value) if s in LIFECYCLE else (s == outcome) for s in self.statuses):
                return False
        if self.since is not None and not run.created_at >= self.since:
            return False
        return not (self.until is not None and not run.created_at < self.until)

    def _key(self, run: Run) -> tuple[bool, Any, int]:
        value = self._value(run)
        return (value is not None, 0 if value is None else value, run.id)  # SQL: NULL sorts lowest

    def _first_after(self, key: tuple[bool, Any, int]) -> int:
        """The first loaded row that shows after a run with `key` (binary search, display order)."""
        runs, lo, hi = self._runs, 0, len(self._runs)
        while lo < hi:
            mid = (lo + hi) // 2
            k = self._key(runs[mid])
            after = k < key if self.descending else k > key
            if after:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _row_of_loaded(self, run_id: int) -> int:
        shown = self._loaded[run_id]
        key = self._key(shown)
        runs, lo, hi = self._runs, 0, len(self._runs)
        while lo < hi:  # the first row not before the shown snapshot
            mid = (lo + hi) // 2
            k = self._key(runs[mid])
            before = k > key if self.descending else k < key
            if before:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(runs) and runs[lo].id == run_id:
            return lo
        return next(i for i, r in enumerate(runs) if r.id == run_id)  # rows out of order: never expected

    def upsert(self, run: Run) -> None:
        """A run was created or changed (this process's RunChanged or another's ExternalRunChanged).

        A loaded row is updated in place (dataChanged), moved when its sort value changed, or
        removed when the filter no longer selects it; a new run is inserted at its sorted row,
        or only counted when it sorts after the loaded rows (fetchMore brings it). O(log n)
        comparisons plus one list insert; never a reset.
        """
        matches = self.matches(run)
        if run.id in self._loaded:
            self._update_loaded(run, matches)
            return
        all_loaded = len(self._runs) >= self._total and not self.counting
        pos = self._first_after(self._key(run))
        counted = self._beyond.get(run.id)
        if counted is None:
            mutable = self.sort_key in _MUTABLE_SORTS or bool(self.statuses) or bool(self.text)
            # created after the last count, or sorting into the loaded rows on values that never
            # change (so it was not in the registry then): not counted yet; else it was iff it matched
            new = run.created_at >= self._refreshed_at or (not mutable and pos < len(self._runs))
            counted = False if new else matches
        if not matches:
            if counted:
                self._total -= 1
            self._beyond[run.id] = False
            return
        if not counted:
            self._total += 1
        if pos < len(self._runs) or all_loaded:
            self.beginInsertRows(QModelIndex(), pos, pos)
            self._runs.insert(pos, run)
            self._loaded[run.id] = run
            self._beyond.pop(run.id, None)
            self.endInsertRows()
        else:
            self._beyond[run.id] = True

    def _update_loaded(self, run: Run, matches: bool) -> None:
        row = self._row_of_loaded(run.id)
        if not matches:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._runs[row]
            del self._loaded[run.id]
            self._total -= 1
            self._beyond[run.id] = False
            self.endRemoveRows()
            return
        raw = self._first_after(self._key(run))  # counts the old row itself when it sorts before
        target = raw - 1 if raw > row else raw
        if target == row:
            self._runs[row] = run
            self._loaded[run.id] = run
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))
            return
        if raw >= len(self._runs) and (len(self._runs) < self._total or self.counting):
            # it now sorts after the loaded rows: it leaves them (still counted) and comes back with its page
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._runs[row]
            del self._loaded[run.id]
            self._beyond[run.id] = True
            self.endRemoveRows()
            return
        self.beginMoveRows(QModelIndex(), row, row, QModelIndex(), raw)
        del self._runs[row]
        self._runs.insert(target, run)
        self._loaded[run.id] = run
        self.endMoveRows()
        self.dataChanged.emit(self.index(target, 0), self.index(target, len(self.COLUMNS) - 1))

    def remove_rows_of(self, run_ids: set[int]) -> None:
        """Deleted runs leave (one row removal each; the total follows)."""
        gone = 0
        for row in sorted((i for i, r in enumerate(self._runs) if r.id in run_ids), reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._loaded[self._runs[row].id]
            del self._runs[row]
            self.endRemoveRows()
            gone += 1
        beyond = sum(1 for rid in run_ids if self._beyond.pop(rid, None))
        self._total = max(len(self._runs), self._total - gone - beyond)

    # -- Qt model API
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._runs):
            return None
        run = self._runs[index.row()]
        col = index.column()
        if role != Qt.ItemDataRole.DisplayRole:
            return self.status_role(run, col, role)
        if run.started_at is not None and run.ended_at is None:
            return self._row_texts(run)[col]  # its duration grows: never cached
        texts = self._texts.get(run.id)
        if texts is None or texts[0] is not run:  # a snapshot is immutable: its texts are made once
            texts = (run, self._row_texts(run))
            if len(self._texts) > 4 * len(self._runs) + 1000:
                self._texts.clear()
            self._texts[run.id] = texts
        return texts[1][col]

    @staticmethod
    def _row_texts(run: Run) -> tuple[str, ...]:
        """Every column's text for one snapshot (a paint asks each cell, often more than once)."""
        started = run.started_at or run.created_at
        values = [
            run.id, run.name, run.pattern.replace("_", " "), run.trigger or "manual", status_text(run),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            duration_text(run.duration) if run.started_at else "",
            exit_text(run.exit_code),
            f"{run.peak_cpu:.0f}%" if run.peak_cpu is not None else "",
            human_bytes(run.peak_rss), place_text(run),
        ]
        return tuple(str(v) for v in values)
