"""Table models: one QAbstractTableModel per table (runs, history).

The history model pages in from the registry with canFetchMore/fetchMore (as Vorta and
Spyder do), so 100,000 runs cost one page on first paint; sorting and filtering are SQL.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from prismq_desktop.core.models import OutcomeKind, Run, RunStatus
from prismq_desktop.core.store.query import RunQuery
from prismq_desktop.core.store.registry import RunRegistry

Index = QModelIndex | QPersistentModelIndex
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
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def state_text(run: Run) -> str:
    """Short words for a table cell; the full reason is the cell's tooltip."""
    if run.outcome is not None:
        if run.outcome.kind is OutcomeKind.FAILED and run.outcome.exit_code is not None:
            return f"failed ({run.outcome.exit_code})"
        return run.outcome.kind.value.replace("_", " ")
    return run.status.value


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

    def status_role(self, run: Run, col: int, role: int) -> Any:
        """The roles every run table answers the same way: the run itself, the status colour and reason."""
        if role == RUN_ROLE:
            return run
        if col != self.STATUS_COLUMN:
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            from PySide6.QtGui import QColor

            color = state_color(run)
            return QColor(color) if color else None
        if role == Qt.ItemDataRole.ToolTipRole and run.outcome and run.outcome.message:
            return run.outcome.message
        return None


class RunsModel(RunTable):
    """Runs of this session: active ones plus those finished since the last "clear finished"."""

    COLUMNS = ["#", "Name", "Status", "Progress", "Elapsed", "CPU", "RSS", "Pattern", "Trigger"]
    STATUS_COLUMN = 2

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._row: dict[int, int] = {}
        self._usage: dict[int, tuple[float, int]] = {}
        self._progress: dict[int, float] = {}  # readings newer than the row's snapshot

    def _fraction(self, run: Run) -> float | None:
        return self._progress.get(run.id, run.progress)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._runs):
            return None
        run = self._runs[index.row()]
        col = index.column()
        if role == PROGRESS_ROLE and col == 3:
            return self._fraction(run)
        if role != Qt.ItemDataRole.DisplayRole:
            return self.status_role(run, col, role)
        cpu, rss = self._usage.get(run.id, (None, None))
        values = [
            run.id, run.name, state_text(run),
            f"{fraction * 100:.0f}%" if (fraction := self._fraction(run)) is not None else "",
            human_duration(run.duration),
            f"{cpu:.0f}%" if cpu is not None and run.is_active else "",
            human_bytes(rss) if rss is not None and run.is_active else "",
            run.pattern.replace("_", " "), run.trigger or "manual",
        ]
        return str(values[col])

    def upsert(self, run: Run) -> None:
        """Add or update a run; the newest run is on top. Skipped and missed schedule fires
        (records, not runs) belong to History and the Scheduler tab, not here."""
        row = self._row.get(run.id)
        if row is None:
            if run.outcome is not None and run.outcome.kind in (OutcomeKind.SKIPPED, OutcomeKind.MISSED):
                return
            self.beginInsertRows(QModelIndex(), 0, 0)
            self._runs.insert(0, run)
            self._row = {r.id: i for i, r in enumerate(self._runs)}
            self.endInsertRows()
        else:
            self._runs[row] = run
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))

    def set_progress(self, run_id: int, fraction: float) -> None:
        row = self._row.get(run_id)
        if row is not None:
            self._progress[run_id] = fraction
            self.dataChanged.emit(self.index(row, 3), self.index(row, 3))

    def set_usage(self, run_id: int, cpu: float, rss: int) -> None:
        row = self._row.get(run_id)
        if row is not None:
            self._usage[run_id] = (cpu, rss)
            self.dataChanged.emit(self.index(row, 5), self.index(row, 6))

    def tick(self) -> None:
        """Refresh the elapsed column of active runs (called once a second)."""
        for row, run in enumerate(self._runs):
            if run.is_active and run.started_at is not None:
                self.dataChanged.emit(self.index(row, 4), self.index(row, 4))

    def row_of(self, run_id: int) -> int | None:
        return self._row.get(run_id)

    def active_ids(self) -> list[int]:
        return [r.id for r in self._runs if r.is_active]

    def clear_finished(self) -> None:
        self.beginResetModel()
        self._runs = [r for r in self._runs if r.is_active]
        self._row = {r.id: i for i, r in enumerate(self._runs)}
        self._progress = {rid: f for rid, f in self._progress.items() if rid in self._row}
        self.endResetModel()

    def counts(self) -> tuple[int, int]:
        running = sum(1 for r in self._runs if r.status in (RunStatus.RUNNING, RunStatus.PAUSED))
        queued = sum(1 for r in self._runs if r.status is RunStatus.QUEUED)
        return running, queued


class HistoryModel(RunTable):
    """Every recorded run, newest first by default, paged in from the registry."""

    COLUMNS = ["#", "Name", "Pattern", "Trigger", "Status", "Started", "Duration", "Exit", "Peak CPU", "Peak RSS"]
    STATUS_COLUMN = 4
    SORT_KEYS = ["id", "name", "pattern", "trigger", "status", "started", "duration", "exit_code", "peak_cpu", "peak_rss"]
    PAGE = 200

    def __init__(self, registry: RunRegistry, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.registry = registry
        self._total = 0
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
        self._total = self.registry.count(self.query())
        self._runs = self._page(0)
        self.endResetModel()

    def query(self, offset: int = 0) -> RunQuery:
        """The filter, sort and page this model shows, as the store's one query type."""
        return RunQuery.of(self.statuses, text=self.text or None, since=self.since, until=self.until,
                           schedule_id=self.schedule_id, sort=self.sort_key, descending=self.descending,
                           limit=self.PAGE, offset=offset)

    def _page(self, offset: int) -> list[Run]:
        return self.registry.query(self.query(offset))

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: N802, B008
        return not parent.isValid() and len(self._runs) < self._total

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: N802, B008
        if parent.isValid():
            return
        more = self._page(len(self._runs))
        if not more:
            self._total = len(self._runs)
            return
        self.beginInsertRows(QModelIndex(), len(self._runs), len(self._runs) + len(more) - 1)
        self._runs.extend(more)
        self.endInsertRows()

    @property
    def total(self) -> int:
        return self._total

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

    # -- Qt model API
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._runs):
            return None
        run = self._runs[index.row()]
        col = index.column()
        if role != Qt.ItemDataRole.DisplayRole:
            return self.status_role(run, col, role)
        started = run.started_at or run.created_at
        values = [
            run.id, run.name, run.pattern.replace("_", " "), run.trigger or "manual", state_text(run),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            human_duration(run.duration) if run.started_at else "",
            "" if run.exit_code is None else run.exit_code,
            f"{run.peak_cpu:.0f}%" if run.peak_cpu is not None else "",
            human_bytes(run.peak_rss),
        ]
        return str(values[col])

    def upsert(self, run: Run) -> None:
        """A run changed: update its row if loaded, or show a new run at the top (newest-first view)."""
        for row, existing in enumerate(self._runs):
            if existing.id == run.id:
                self._runs[row] = run
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))
                return
        if self.schedule_id is not None and run.schedule_id != self.schedule_id:
            return
        if self.sort_key == "created" and self.descending and not self.text and not self.statuses and self.until is None:
            self.beginInsertRows(QModelIndex(), 0, 0)
            self._runs.insert(0, run)
            self._total += 1
            self.endInsertRows()

    def remove_rows_of(self, run_ids: set[int]) -> None:
        self.beginResetModel()
        self._runs = [r for r in self._runs if r.id not in run_ids]
        self._total = max(0, self._total - len(run_ids))
        self.endResetModel()
