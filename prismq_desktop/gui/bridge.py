"""The one bridge between the core's event stream and Qt.

The core publishes plain-Python events on the asyncio loop, which under qasync is the Qt
main thread, so the bridge re-emits those as Qt signals at once. An event published on any
other thread (the resource monitor's sampler publishes straight onto the bus when the engine
has no loop) is handed to the bridge's own thread through an explicitly queued connection
first, so every public signal is emitted on the GUI thread and no widget is ever touched
from a thread.

Dispatch is one table `{event type: handler}` built once for the class; it covers every
member of the `Event` union in core/events.py (tests/gui/test_bridge.py checks that).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

from PySide6.QtCore import QObject, Qt, Signal

from prismq_desktop.core.events import (
    DeadLettered,
    Event,
    ExternalRunChanged,
    Notice,
    OutputBatch,
    Progress,
    RetryScheduled,
    RunChanged,
    ScheduleChanged,
)
from prismq_desktop.core.monitor.samples import RunSample, SystemSample
from prismq_desktop.gui.ports import BusOwner

Handler = Callable[["Bridge", Any], None]


class Bridge(QObject):
    runChanged = Signal(object)  # Run (a snapshot)
    externalRunChanged = Signal(object)  # Run of another process (seen in the registry)
    output = Signal(int, object, int)  # run id, chunks, dropped bytes
    progress = Signal(int, float, object)  # run id, fraction, message
    notice = Signal(object)  # Notice
    retryScheduled = Signal(object)  # RetryScheduled
    deadLettered = Signal(object)  # DeadLettered
    scheduleChanged = Signal(object)  # ScheduleChanged
    sample = Signal(object)  # RunSample / SystemSample
    _relay = Signal(object)  # an event published off the GUI thread, on its way to it

    HANDLERS: ClassVar[dict[type, Handler]]  # filled below the class, once

    def __init__(self, orchestrator: BusOwner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.orch = orchestrator
        self._gui_thread = threading.get_ident()
        self._relay.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)
        self._unsubscribe: Callable[[], None] | None = orchestrator.bus.subscribe_sync(self._on_event)

    def _on_event(self, ev: Event) -> None:
        """Called on the publishing thread."""
        if threading.get_ident() == self._gui_thread:
            self._dispatch(ev)
        else:
            self._relay.emit(ev)

    def _dispatch(self, ev: Event) -> None:
        if self._unsubscribe is None:
            return  # closed while a relayed event was on its way
        handler = self.HANDLERS.get(type(ev))
        if handler is not None:
            handler(self, ev)

    # -- one handler per event type
    def _run_changed(self, ev: RunChanged) -> None:
        self.runChanged.emit(ev.run)

    def _external_run_changed(self, ev: ExternalRunChanged) -> None:
        self.externalRunChanged.emit(ev.run)

    def _output(self, ev: OutputBatch) -> None:
        self.output.emit(ev.run_id, ev.chunks, ev.dropped_bytes)

    def _progress(self, ev: Progress) -> None:
        self.progress.emit(ev.run_id, ev.fraction, ev.message)

    def _notice(self, ev: Notice) -> None:
        self.notice.emit(ev)

    def _retry_scheduled(self, ev: RetryScheduled) -> None:
        self.retryScheduled.emit(ev)

    def _dead_lettered(self, ev: DeadLettered) -> None:
        self.deadLettered.emit(ev)

    def _schedule_changed(self, ev: ScheduleChanged) -> None:
        self.scheduleChanged.emit(ev)

    def _sample(self, ev: RunSample | SystemSample) -> None:
        self.sample.emit(ev)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


Bridge.HANDLERS = {
    RunChanged: Bridge._run_changed,
    ExternalRunChanged: Bridge._external_run_changed,
    OutputBatch: Bridge._output,
    Progress: Bridge._progress,
    Notice: Bridge._notice,
    RetryScheduled: Bridge._retry_scheduled,
    DeadLettered: Bridge._dead_lettered,
    ScheduleChanged: Bridge._schedule_changed,
    RunSample: Bridge._sample,
    SystemSample: Bridge._sample,
}
