"""The one bridge between the core's event stream and Qt.

The core publishes plain-Python events on the asyncio loop, which under qasync is the Qt
main thread, so the bridge re-emits them as Qt signals directly. Anything coming from a
worker thread (the resource monitor) goes through a queued signal connection, so no
widget is ever touched from a thread.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from prismq_desktop.core.events import DeadLettered, Notice, OutputBatch, Progress, RetryScheduled, RunChanged, ScheduleChanged
from prismq_desktop.core.monitor.samples import RunSample, SystemSample


class Bridge(QObject):
    runChanged = Signal(object)  # Run (a snapshot)
    output = Signal(int, object, int)  # run id, chunks, dropped bytes
    progress = Signal(int, float, object)  # run id, fraction, message
    notice = Signal(object)  # Notice
    retryScheduled = Signal(object)
    deadLettered = Signal(object)
    scheduleChanged = Signal(object)
    sample = Signal(object)  # RunSample / SystemSample (the engine hands them to the loop first)

    def __init__(self, orchestrator: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.orch = orchestrator
        self._unsubscribe = orchestrator.bus.subscribe_sync(self._on_event)

    def _on_event(self, ev: object) -> None:
        if isinstance(ev, OutputBatch):
            self.output.emit(ev.run_id, ev.chunks, ev.dropped_bytes)
        elif isinstance(ev, RunChanged):
            self.runChanged.emit(ev.run)
        elif isinstance(ev, Progress):
            self.progress.emit(ev.run_id, ev.fraction, ev.message)
        elif isinstance(ev, Notice):
            self.notice.emit(ev)
        elif isinstance(ev, RetryScheduled):
            self.retryScheduled.emit(ev)
        elif isinstance(ev, DeadLettered):
            self.deadLettered.emit(ev)
        elif isinstance(ev, (RunSample, SystemSample)):
            self.sample.emit(ev)
        elif isinstance(ev, ScheduleChanged):
            self.scheduleChanged.emit(ev)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
