"""The window's permanent status-bar fields: runs running and queued, slots in use, the scheduler's state."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar

from prismq_desktop.gui.ports import SchedulerState


class StatusFields:
    def __init__(self, bar: QStatusBar) -> None:
        self.runs = QLabel()
        self.runs.setObjectName("statusRuns")
        self.slots = QLabel()
        self.slots.setObjectName("statusSlots")
        self.scheduler = QLabel()
        self.scheduler.setObjectName("statusScheduler")
        for w in (self.runs, self.slots, self.scheduler):
            bar.addPermanentWidget(w)

    def show(self, running: int, queued: int, max_concurrent: int, sched: SchedulerState | None) -> None:
        """`sched` is None while the orchestrator has made no scheduler."""
        self.runs.setText(f"{running} running · {queued} queued")
        self.slots.setText(f"slots {running}/{max_concurrent}")
        state = "off" if sched is None or not sched.running else ("paused" if sched.paused else "on")
        self.scheduler.setText(f"scheduler {state}")
