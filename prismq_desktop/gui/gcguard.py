"""Python's cyclic garbage collector runs on the GUI thread only.

CPython runs a collection on whichever thread happens to cross the allocation threshold: the
resource monitor, a pipe reader, asyncio's child watcher, a qasync executor worker
(`asyncio.to_thread`). When the garbage holds a Qt object (a closed window's wrappers, or the
QObject a qasync loop schedules its callbacks with, still owning timers after the loop closed),
its C++ destructor then runs on that thread. Qt cannot unregister the object's timers from
there ("QObject::~QObject: Timers cannot be stopped from another thread"), the GUI thread's
timer list keeps a pointer to freed memory, and the next timer it fires crashes the process
(SIGSEGV in QTimerInfoList::activateTimers, seen as an intermittent crash anywhere in the loop).

So the automatic collector is switched off and a GUI-thread timer does its work: each tick
collects the generation CPython itself would have collected by now (same thresholds, same
generation counts), so memory behaves as before and every Qt object is destroyed on the thread
that owns it. Reference counting (most frees) is not affected.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QTimer
from shiboken6 import isValid

TICK_MS = 100

_installed: GuiThreadCollector | None = None


class GuiThreadCollector(QObject):
    """Owns the cyclic collector for the process; lives (and collects) on the GUI thread."""

    def __init__(self, app: QCoreApplication, interval_ms: int = TICK_MS) -> None:
        super().__init__(app)  # dies with the application, never before it
        self.collections = [0, 0, 0]  # per generation, for tests and diagnosis
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.tick)
        self.start()

    def start(self) -> None:
        gc.disable()
        self._timer.start()

    def tick(self) -> int | None:
        """Collect the generation CPython would collect now (or none); returns which one."""
        if gc.isenabled():  # something switched it back on: off again, the GUI thread collects
            gc.disable()
        counts, thresholds = gc.get_count(), gc.get_threshold()
        for generation in (2, 1, 0):
            if thresholds[0] and counts[generation] > thresholds[generation]:
                gc.collect(generation)
                self.collections[generation] += 1
                return generation
        return None

    def stop(self) -> None:
        """Give the collector back to CPython (automatic, any thread)."""
        self._timer.stop()
        gc.enable()


def install(app: QCoreApplication) -> GuiThreadCollector:
    """Make the GUI thread the only one that collects cycles (once per process; call it on the GUI thread)."""
    global _installed
    if _installed is None or not isValid(_installed):  # none yet, or its application is gone
        _installed = GuiThreadCollector(app)
    else:
        _installed.start()  # again after a stop()
    return _installed


def installed() -> GuiThreadCollector | None:
    return _installed
