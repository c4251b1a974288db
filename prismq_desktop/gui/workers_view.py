"""The Workers tab: the broker's Celery workers and queues, polled off the UI thread.

`BrokerPoller` reads `core.services.workers.snapshot` with `asyncio.to_thread` on the qasync
loop: once a second while the Workers tab is visible, every `IDLE_EVERY` seconds otherwise
(the launch panel's queue list), never two reads at once. The models update rows in place
(dataChanged for a changed row, an insert or a removal for a worker that came or went),
never a reset, so a selection or a scroll position survives every poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QSplitter, QTableView, QVBoxLayout, QWidget

from prismq_desktop.core.remote.config import mask_url
from prismq_desktop.core.services.workers import BrokerSnapshot, QueueInfo, WorkerInfo, snapshot
from prismq_desktop.core.wording import duration_text, plural
from prismq_desktop.gui.models import ColumnTable, Index, human_bytes

log = logging.getLogger(__name__)
IDLE_EVERY = 15.0  # seconds between polls while the Workers tab is hidden (the launch panel's queues)


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return "just now" if seconds < 1 else f"{duration_text(seconds)} ago"


def _grey() -> Any:
    return QGuiApplication.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)


class KeyedTable(ColumnTable):
    """Rows keyed by a name, replaced in place by `update(items)` (rows kept sorted by key)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[Any] = []
        self.now = time.time()

    def key(self, item: Any) -> str:
        raise NotImplementedError

    def row_total(self) -> int:
        return len(self.rows)

    def item_at(self, row: int) -> Any:
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def update(self, items: Sequence[Any], now: float | None = None) -> None:
        self.now = time.time() if now is None else now
        new = {self.key(i): i for i in items}
        for row in range(len(self.rows) - 1, -1, -1):  # gone
            if self.key(self.rows[row]) not in new:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self.rows[row]
                self.endRemoveRows()
        keys = [self.key(r) for r in self.rows]
        for name in sorted(new):
            item = new[name]
            if name in keys:
                row = keys.index(name)
                self.rows[row] = item  # ages move every poll: the whole row is redrawn
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))
            else:
                row = next((i for i, k in enumerate(keys) if k > name), len(keys))
                self.beginInsertRows(QModelIndex(), row, row)
                self.rows.insert(row, item)
                keys.insert(row, name)
                self.endInsertRows()


class WorkersModel(KeyedTable):
    COLUMNS = ["Host", "Queues", "Concurrency", "Active runs", "Last heartbeat", "CPU", "RSS", "State"]

    def key(self, item: WorkerInfo) -> str:
        return item.host

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        w: WorkerInfo | None = self.item_at(index.row()) if index.isValid() else None
        if w is None:
            return None
        col = index.column()
        if role == Qt.ItemDataRole.ForegroundRole and w.stale:
            return _grey()
        if role == Qt.ItemDataRole.ToolTipRole:
            if w.stale:
                return (f"stale: no heartbeat for {age_text(w.age(self.now))} (it beats every "
                        f"{w.heartbeat:g} s); it may be gone. Listed until its record expires.")
            return f"pid {w.pid}" if w.pid else None
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (2, 3, 5, 6):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        values = [w.host, ", ".join(w.queues), str(w.concurrency), str(w.active_runs), age_text(w.age(self.now)),
                  f"{w.cpu_percent:.0f}%" if w.cpu_percent is not None else "", human_bytes(w.rss_bytes),
                  "stale" if w.stale else "live"]
        return values[col]


class QueuesModel(KeyedTable):
    COLUMNS = ["Queue", "Waiting", "Live workers"]

    def key(self, item: QueueInfo) -> str:
        return item.name

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        q: QueueInfo | None = self.item_at(index.row()) if index.isValid() else None
        if q is None:
            return None
        if role == Qt.ItemDataRole.ForegroundRole and q.workers == 0:
            return _grey()
        if role == Qt.ItemDataRole.ToolTipRole and q.workers == 0:
            return "no live worker takes from this queue: its runs wait"
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() in (1, 2):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        return [q.name, str(q.depth), str(q.workers)][index.column()]


class BrokerPoller(QObject):
    """Reads the broker's snapshot off the UI thread; `snapshotReady` carries each one."""

    snapshotReady = Signal(object)

    def __init__(self, url: str | None, is_visible: Callable[[], bool], parent: QObject | None = None,
                 read: Callable[[str], BrokerSnapshot] = snapshot) -> None:
        super().__init__(parent)
        self.url = url
        self.is_visible = is_visible
        self.read = read
        self.last: BrokerSnapshot | None = None
        self.polls = 0
        self._task: asyncio.Task[None] | None = None
        self._last_at = 0.0
        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.tick)

    def start(self) -> None:
        if self.url is not None:
            self.timer.start()
            self.poll_now()

    def stop(self) -> None:
        self.timer.stop()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def tick(self) -> None:
        """Once a second: a poll when the Workers tab is visible, else every IDLE_EVERY seconds."""
        if self.is_visible() or time.monotonic() - self._last_at >= IDLE_EVERY:
            self.poll_now()

    def poll_now(self) -> asyncio.Task[None] | None:
        if self.url is None or (self._task is not None and not self._task.done()):
            return self._task
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        self._last_at = time.monotonic()
        self._task = loop.create_task(self._poll(self.url))
        return self._task

    async def _poll(self, url: str) -> None:
        snap = await asyncio.to_thread(self.read, url)
        self.polls += 1
        self.last = snap
        self.snapshotReady.emit(snap)


class WorkersView(QWidget):
    """Workers over queues, with one line saying where they come from (or what is wrong)."""

    def __init__(self, broker: str | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("workersView")
        self.broker = broker
        self.summary = QLabel()
        self.summary.setObjectName("workersSummary")
        self.summary.setWordWrap(True)
        self.workers_model = WorkersModel(self)
        self.queues_model = QueuesModel(self)
        self.workers_table = self._table(self.workers_model, "workersTable", stretch=0)
        self.queues_table = self._table(self.queues_model, "queuesTable", stretch=0)
        split = QSplitter(Qt.Orientation.Vertical)
        split.setObjectName("workersSplitter")
        split.addWidget(self.workers_table)
        split.addWidget(self.queues_table)
        split.setSizes([300, 160])
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addWidget(split, 1)
        self.show_snapshot(None)

    @staticmethod
    def _table(model: ColumnTable, name: str, stretch: int) -> QTableView:
        table = QTableView()
        table.setObjectName(name)
        table.setModel(model)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().hide()
        table.setWordWrap(False)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        return table

    def show_snapshot(self, snap: BrokerSnapshot | None) -> None:
        if self.broker is None:
            self.summary.setText("No broker is set: runs stay on this machine. To send runs to Celery workers, "
                                 "set a broker URL in Settings (Ctrl+,) and start <code>prismq-desktop worker</code> "
                                 "on the machines that should run them.")
            return
        where = mask_url(self.broker)
        if snap is None:
            self.summary.setText(f"Reading workers from {where}…")
            return
        if snap.error:
            self.summary.setText(f"<span style='color:#cd3131'>⚠ {snap.error}</span> ({where}); "
                                 "the tables show the last answer")
            return
        self.workers_model.update(snap.workers)
        self.queues_model.update(snap.queues)
        live = sum(1 for w in snap.workers if not w.stale)
        stale = len(snap.workers) - live
        waiting = sum(q.depth for q in snap.queues)
        parts = [plural(live, "live worker")] + ([f"{stale} stale"] if stale else [])
        self.summary.setText(f"{', '.join(parts)} on {plural(len(snap.queues), 'queue')}, "
                             f"{plural(waiting, 'run')} waiting · {where}")
