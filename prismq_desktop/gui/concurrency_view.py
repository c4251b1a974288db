"""Concurrency and system views: slots, the queue by priority, running runs with CPU/RSS
sparklines, the dead-letter list, and the machine's gauges - all fed by monitor samples
that arrive on the GUI thread through the Bridge (sampled off it)."""

from __future__ import annotations

import collections

from PySide6.QtCore import QItemSelectionModel, QPointF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTableWidgetSelectionRange,
    QVBoxLayout,
    QWidget,
)

from prismq_desktop.core.monitor.samples import RunSample, SystemSample
from prismq_desktop.core.patterns import Priority
from prismq_desktop.gui.models import human_bytes
from prismq_desktop.gui.ports import OrchestratorPort

HISTORY = 60  # samples kept for a sparkline: the last 60 s at 1 Hz


class Sparkline(QWidget):
    """A small line chart of the last 60 values."""

    def __init__(self, color: str = "#2472c8", maximum: float | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values: collections.deque[float] = collections.deque(maxlen=HISTORY)
        self.color = QColor(color)
        self.maximum = maximum
        self.setMinimumSize(120, 28)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(160, 32)

    def add(self, value: float) -> None:
        self.values.append(value)
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = self.rect().adjusted(1, 2, -1, -2)
        painter.fillRect(self.rect(), self.palette().base())
        if len(self.values) < 2:
            return
        top = self.maximum or max(max(self.values), 1e-9)
        step = rect.width() / (HISTORY - 1)
        start = HISTORY - len(self.values)
        points = QPolygonF([QPointF(rect.left() + (start + i) * step,
                                    rect.bottom() - min(v / top, 1.0) * rect.height()) for i, v in enumerate(self.values)])
        painter.setPen(QPen(self.color, 1.5))
        painter.drawPolyline(points)


class ConcurrencyView(QWidget):
    def __init__(self, orch: OrchestratorPort, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("concurrencyView")
        self.orch = orch
        # slots
        self.slots_label = QLabel()
        self.slots_label.setObjectName("slotsLabel")
        self.limit = QSpinBox()
        self.limit.setObjectName("concurrencyLimit")
        self.limit.setRange(1, 256)
        self.limit.setValue(orch.max_concurrent)
        self.limit.setAccessibleName("Maximum concurrent runs")
        self.limit.valueChanged.connect(self._set_limit)
        self.slots_bar = QProgressBar()
        self.slots_bar.setObjectName("slotsBar")
        slots = QHBoxLayout()
        slots.addWidget(QLabel("Slots in use"))
        slots.addWidget(self.slots_bar, 1)
        slots.addWidget(self.slots_label)
        slots.addWidget(QLabel("limit"))
        slots.addWidget(self.limit)

        # queue
        self.queue = QTableWidget(0, 4)
        self.queue.setObjectName("queueTable")
        self.queue.setHorizontalHeaderLabels(["#", "Name", "Priority", "Waiting for"])
        self.queue.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.queue.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.queue.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.queue.verticalHeader().hide()
        self.priority = QComboBox()
        self.priority.setObjectName("queuePriority")
        self.priority.addItems([p.name.lower() for p in Priority])
        set_prio = QPushButton("Set priority")
        set_prio.setObjectName("setPriorityButton")
        set_prio.clicked.connect(self._reprioritize)
        cancel = QPushButton("Cancel queued")
        cancel.setObjectName("cancelQueuedButton")
        cancel.clicked.connect(self._cancel_queued)
        qbar = QHBoxLayout()
        qbar.addStretch(1)
        qbar.addWidget(self.priority)
        qbar.addWidget(set_prio)
        qbar.addWidget(cancel)
        qbox = QGroupBox("Queued, in start order")
        ql = QVBoxLayout(qbox)
        ql.addWidget(self.queue)
        ql.addLayout(qbar)

        # running with sparklines
        self.running_box = QGroupBox("Running: CPU and memory over the last 60 s")
        self.running_grid = QGridLayout(self.running_box)
        self.lines: dict[int, tuple[QLabel, Sparkline, Sparkline, QLabel]] = {}

        # dead letters
        self.dead = QTableWidget(0, 5)
        self.dead.setObjectName("deadLetterTable")
        self.dead.setHorizontalHeaderLabels(["#", "Run", "Name", "Attempts", "Reason"])
        self.dead.horizontalHeader().setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.dead.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.dead.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.dead.verticalHeader().hide()
        requeue = QPushButton("Requeue")
        requeue.setObjectName("requeueButton")
        requeue.clicked.connect(self._requeue)
        purge = QPushButton("Purge")
        purge.setObjectName("purgeButton")
        purge.clicked.connect(self._purge)
        dbar = QHBoxLayout()
        dbar.addStretch(1)
        dbar.addWidget(requeue)
        dbar.addWidget(purge)
        dbox = QGroupBox("Dead letters (retries ran out)")
        dl = QVBoxLayout(dbox)
        dl.addWidget(self.dead)
        dl.addLayout(dbar)

        # system gauges
        self.system = SystemGauges()

        lay = QVBoxLayout(self)
        lay.addLayout(slots)
        top = QHBoxLayout()
        top.addWidget(qbox, 1)
        top.addWidget(self.system, 1)
        lay.addLayout(top, 2)
        lay.addWidget(self.running_box, 1)
        lay.addWidget(dbox, 1)
        self.refresh()

    # -- actions
    def _set_limit(self, value: int) -> None:
        if value != self.orch.max_concurrent:
            self.orch.set_max_concurrent(value)
        self.refresh()

    @staticmethod
    def _selected_ids(table: QTableWidget) -> list[int]:
        """The ids in column 0 of the selected rows."""
        rows = sorted({i.row() for i in table.selectedIndexes()})
        return [int(item.text()) for r in rows if (item := table.item(r, 0)) is not None]

    def _selected_queue_ids(self) -> list[int]:
        return self._selected_ids(self.queue)

    def _reprioritize(self) -> None:
        for run_id in self._selected_queue_ids():
            self.orch.reprioritize(run_id, Priority.parse(self.priority.currentText()))
        self.refresh()

    def _cancel_queued(self) -> None:
        for run_id in self._selected_queue_ids():
            self.orch.cancel(run_id)
        self.refresh()

    def _selected_dead(self) -> list[int]:
        return self._selected_ids(self.dead)

    def _requeue(self) -> None:
        for dl_id in self._selected_dead():
            self.orch.requeue_dead_letter(dl_id)
        self.refresh()

    def _purge(self) -> None:
        ids = self._selected_dead()
        self.orch.purge_dead_letters(ids or None)
        self.refresh()

    # -- updates
    def refresh(self) -> None:
        used, limit = self.orch.running_count, self.orch.max_concurrent
        self.slots_bar.setRange(0, limit)
        self.slots_bar.setValue(min(used, limit))
        self.slots_label.setText(f"{used}/{limit}")
        if self.limit.value() != limit:
            self.limit.blockSignals(True)
            self.limit.setValue(limit)
            self.limit.blockSignals(False)
        queued = self.orch.queued_runs()
        chosen = set(self._selected_queue_ids())  # selection follows run ids, not row numbers
        current = self.queue.item(self.queue.currentRow(), 0) if self.queue.currentRow() >= 0 else None
        current_id = int(current.text()) if current is not None else None
        self.queue.setRowCount(len(queued))
        self.queue.clearSelection()
        for row, run in enumerate(queued):
            waiting = "retry backoff" if run.not_before else ("parents" if run.depends_on else "a slot")
            for col, text in enumerate((str(run.id), run.name, Priority(run.priority).name.lower(), waiting)):
                self.queue.setItem(row, col, QTableWidgetItem(text))
        for row, run in enumerate(queued):
            if run.id == current_id:
                self.queue.setCurrentCell(row, 0, QItemSelectionModel.SelectionFlag.NoUpdate)
            if run.id in chosen:
                self.queue.setRangeSelected(QTableWidgetSelectionRange(row, 0, row, self.queue.columnCount() - 1), True)
        dead = self.orch.dead_letters()
        self.dead.setRowCount(len(dead))
        for row, d in enumerate(dead):
            for col, text in enumerate((str(d.id), str(d.run_id), d.name, str(d.attempts), d.reason or "")):
                self.dead.setItem(row, col, QTableWidgetItem(text))
        active = {h.id: h for h in self.orch.engine.active()}
        for run_id in list(self.lines):
            if run_id not in active:
                for widget in self.lines.pop(run_id):
                    widget.deleteLater()
        for run_id, handle in active.items():
            if run_id not in self.lines and handle.run.pid is not None:
                row = len(self.lines)
                name = QLabel(f"#{run_id} {handle.run.name}")
                cpu, rss, value = Sparkline("#cd3131", 100.0), Sparkline("#2472c8"), QLabel("")
                for col, cell in enumerate((name, cpu, rss, value)):
                    self.running_grid.addWidget(cell, row, col)
                self.lines[run_id] = (name, cpu, rss, value)

    def add_sample(self, sample: RunSample | SystemSample) -> None:
        if isinstance(sample, SystemSample):
            self.system.add(sample)
            return
        line = self.lines.get(sample.run_id)
        if line is None:
            self.refresh()
            line = self.lines.get(sample.run_id)
        if line is not None:
            line[1].add(sample.cpu_percent)
            line[2].add(float(sample.rss_bytes))
            line[3].setText(f"{sample.cpu_percent:.0f}% · {human_bytes(sample.rss_bytes)}")


class SystemGauges(QGroupBox):
    """CPU per core, memory, disk and load: gauges plus 60 s sparklines, updated at 1 Hz."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("System", parent)
        self.setObjectName("systemGauges")
        self.grid = QGridLayout(self)
        self.cores: list[tuple[QProgressBar, Sparkline]] = []
        self.mem = QProgressBar()
        self.mem.setObjectName("memoryGauge")
        self.mem_line = Sparkline("#2472c8", 100.0)
        self.disk = QProgressBar()
        self.disk.setObjectName("diskGauge")
        self.load = QLabel("load —")
        self.load.setObjectName("loadLabel")
        self.grid.addWidget(QLabel("Memory"), 0, 0)
        self.grid.addWidget(self.mem, 0, 1)
        self.grid.addWidget(self.mem_line, 0, 2)
        self.grid.addWidget(QLabel("Disk"), 1, 0)
        self.grid.addWidget(self.disk, 1, 1)
        self.grid.addWidget(self.load, 1, 2)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.samples = 0

    def add(self, s: SystemSample) -> None:
        self.samples += 1
        per_core = list(s.cpu_percent_per_core)
        while len(self.cores) < len(per_core):
            i = len(self.cores)
            bar, line = QProgressBar(), Sparkline("#cd3131", 100.0)
            bar.setObjectName(f"cpuGauge{i}")
            bar.setFormat(f"CPU {i}: %p%")
            self.grid.addWidget(QLabel(f"Core {i}"), 2 + i, 0)
            self.grid.addWidget(bar, 2 + i, 1)
            self.grid.addWidget(line, 2 + i, 2)
            self.cores.append((bar, line))
        for (bar, line), value in zip(self.cores, per_core, strict=False):
            bar.setValue(int(value))
            line.add(value)
        self.mem.setValue(int(s.mem_percent))
        self.mem.setFormat(f"{human_bytes(s.mem_used)} of {human_bytes(s.mem_total)} (%p%)")
        self.mem_line.add(s.mem_percent)
        if s.disk_percent is not None:
            self.disk.setValue(int(s.disk_percent))
            self.disk.setFormat(f"{human_bytes(s.disk_used)} of {human_bytes(s.disk_total)} (%p%)")
        if s.load_avg is not None:
            self.load.setText("load " + " ".join(f"{v:.2f}" for v in s.load_avg))
