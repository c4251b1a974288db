"""The Pool tab: warm workers, a size control, throughput and start latency."""

from __future__ import annotations

import time

import psutil
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from prismq_desktop.gui.concurrency_view import Sparkline
from prismq_desktop.gui.models import human_bytes
from prismq_desktop.gui.ports import OrchestratorPort


class PoolView(QWidget):
    def __init__(self, orch: OrchestratorPort, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.orch = orch
        self.pool = orch.pool
        self.size_spin = QSpinBox()
        self.size_spin.setObjectName("poolSize")
        self.size_spin.setAccessibleName("Pool size")
        self.size_spin.setRange(0, 64)
        self.size_spin.setValue(self.pool.stats().size if self.pool else 0)
        self.size_spin.valueChanged.connect(self._resize)
        self.summary = QLabel()
        self.summary.setObjectName("poolSummary")
        self.throughput = Sparkline("#0dbc79")
        self.workers = QTableWidget(0, 6)
        self.workers.setObjectName("poolWorkers")
        self.workers.setHorizontalHeaderLabels(["PID", "State", "Runs served", "Current run", "CPU", "RSS"])
        self.workers.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.workers.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.workers.verticalHeader().hide()
        top = QHBoxLayout()
        top.addWidget(QLabel("Warm workers"))
        top.addWidget(self.size_spin)
        top.addWidget(self.summary, 1)
        top.addWidget(QLabel("runs/s"))
        top.addWidget(self.throughput)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.workers, 1)
        note = QLabel("POOLED runs (use_pool=True, or the pattern in the launch panel) start in a warm worker that "
                      "already imported common modules; each run is its own forked process with its own argv, cwd and "
                      "env, cancelled and recorded like any run.")
        note.setWordWrap(True)
        lay.addWidget(note)
        self._procs: dict[int, psutil.Process] = {}
        self._last = (time.monotonic(), 0)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(1000)
        self.refresh()

    def _resize(self, n: int) -> None:
        if self.pool is not None:
            self.pool.resize(n)
        self.refresh()

    def refresh(self) -> None:
        if self.pool is None:
            self.summary.setText("no pool in this orchestrator")
            return
        st = self.pool.stats()
        now = time.monotonic()
        then, served = self._last
        rate = (st.runs_served - served) / max(1e-6, now - then)
        self._last = (now, st.runs_served)
        self.throughput.add(rate)
        lat = "—"
        if st.start_latency_mean_ms is not None:
            lat = f"{st.start_latency_mean_ms:.1f} ms mean, {st.start_latency_p95_ms or 0:.1f} ms p95"
        broken = f" · disabled: {st.broken}" if st.broken else ""
        self.summary.setText(f"{st.busy} busy · {st.idle} idle · {st.queued} queued · {st.runs_served} served "
                             f"({rate:.1f}/s) · start latency {lat}{broken}")
        self.workers.setRowCount(len(st.workers))
        for row, w in enumerate(st.workers):
            cpu, rss = "", ""
            if w.pid:
                proc = self._procs.get(w.pid)
                try:
                    if proc is None:
                        proc = self._procs[w.pid] = psutil.Process(w.pid)
                    cpu = f"{proc.cpu_percent():.0f}%"
                    rss = human_bytes(proc.memory_info().rss)
                except psutil.Error:
                    self._procs.pop(w.pid, None)
            values = [str(w.pid or "—"), w.state, str(w.runs_served), f"#{w.current_run}" if w.current_run else "", cpu, rss]
            for col, text in enumerate(values):
                self.workers.setItem(row, col, QTableWidgetItem(text))
