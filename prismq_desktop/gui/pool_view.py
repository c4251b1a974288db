"""The Pool tab: warm workers, a size control, throughput and start latency."""

from __future__ import annotations

import asyncio
import time

import psutil
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from prismq_desktop.core.pool.stats import PoolStats
from prismq_desktop.core.wording import plural
from prismq_desktop.gui.concurrency_view import Sparkline
from prismq_desktop.gui.models import human_bytes
from prismq_desktop.gui.ports import OrchestratorPort


class PoolView(QWidget):
    """The pool's workers as they are: one row per live worker; the total served is the rows'
    sum plus what recycled or replaced workers served (said under the table). Workers start
    with the first pooled run; until then the tab says so and offers to start them now."""

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
        self.start_button = QPushButton("Start workers now")
        self.start_button.setObjectName("startWorkersButton")
        self.start_button.setToolTip("Workers otherwise start with the first pooled run")
        self.start_button.clicked.connect(self.start_workers)
        self.summary = QLabel()
        self.summary.setObjectName("poolSummary")
        self.throughput = Sparkline("#0dbc79")
        self.workers = QTableWidget(0, 6)
        self.workers.setObjectName("poolWorkers")
        self.workers.setHorizontalHeaderLabels(["PID", "State", "Runs served", "Current run", "CPU", "RSS"])
        self.workers.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.workers.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.workers.verticalHeader().hide()
        self.retired = QLabel()
        self.retired.setObjectName("poolRetired")
        self.retired.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Warm workers"))
        top.addWidget(self.size_spin)
        top.addWidget(self.start_button)
        top.addWidget(self.summary, 1)
        top.addWidget(QLabel("runs/s"))
        top.addWidget(self.throughput)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.workers, 1)
        lay.addWidget(self.retired)
        note = QLabel("POOLED runs (use_pool=True, or the pattern in the launch panel) start in a warm worker that "
                      "already imported common modules; each run is its own forked process with its own argv, cwd and "
                      "env, cancelled and recorded like any run. A worker counts a run as served when it starts.")
        note.setWordWrap(True)
        lay.addWidget(note)
        self._procs: dict[int, psutil.Process] = {}
        self._last = (time.monotonic(), 0)
        self._starting: asyncio.Task[None] | None = None
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(1000)
        self.refresh()

    def _resize(self, n: int) -> None:
        if self.pool is not None:
            self.pool.resize(n)
        self.refresh()

    def start_workers(self) -> None:
        """Start the workers now (on the running loop) instead of with the first pooled run."""
        if self.pool is None or (self._starting is not None and not self._starting.done()):
            return
        self._starting = asyncio.ensure_future(self.pool.start())
        self._starting.add_done_callback(lambda _t: self.refresh())

    def summary_text(self, st: PoolStats, rate: float) -> str:
        if not st.supported:
            return "worker pools are not available here: pooled runs are spawned normally"
        if st.closed:
            return "the pool is closed: pooled runs are spawned normally"
        if st.size == 0:
            return "no warm workers (size 0): pooled runs are spawned normally"
        if st.broken:
            return f"workers are disabled ({st.broken}): pooled runs are spawned normally"
        if not st.started:
            return f"{plural(st.size, 'worker')} start with the first pooled run (or press Start workers now)"
        starting = sum(1 for w in st.workers if w.state == "starting")
        lat = "—"
        if st.start_latency_mean_ms is not None:
            lat = f"{st.start_latency_mean_ms:.1f} ms mean, {st.start_latency_p95_ms or 0:.1f} ms p95"
        parts = [f"{st.busy} busy", f"{st.idle} idle"] + ([f"{starting} starting"] if starting else [])
        return (" · ".join([*parts, f"{st.queued} queued", f"{plural(st.runs_served, 'run')} served ({rate:.1f}/s)"])
                + f" · start latency {lat}")

    def refresh(self) -> None:
        if self.pool is None:
            self.summary.setText("no pool in this orchestrator")
            self.start_button.hide()
            return
        st = self.pool.stats()
        now = time.monotonic()
        then, served = self._last
        rate = max(0.0, (st.runs_served - served) / max(1e-6, now - then))
        self._last = (now, st.runs_served)
        self.throughput.add(rate)
        self.summary.setText(self.summary_text(st, rate))
        self.start_button.setVisible(st.supported and not st.started and not st.closed and st.size > 0)
        if st.retired_served:
            self.retired.setText(f"{plural(st.retired_served, 'run')} of the {st.runs_served:,} served ran in workers "
                                 f"that are gone since ({st.recycled} recycled, {st.crashes} died); they count in "
                                 "the total, not in the rows.")
            self.retired.show()
        else:
            self.retired.hide()
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
