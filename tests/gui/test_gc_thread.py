"""The intermittent SIGSEGV of the GUI test process, made deterministic (see gui/gcguard.py).

A Qt object in a reference cycle is freed by CPython's cyclic collector on whatever thread
crosses the allocation threshold. A QObject with a running timer freed on a worker thread
leaves a dangling entry in the GUI thread's timer list: the next timer the GUI thread fires
segfaults in QTimerInfoList::activateTimers (the native backtrace of the CI crashes). qasync
leaves exactly such an object behind when a loop closes (its callback timer, with timers of
handles that were cancelled), in a cycle. With the collector on the GUI thread, no worker
frees a Qt object.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
import weakref

from PySide6.QtCore import QObject

from prismq_desktop.gui import gcguard

OFF_THREAD = "Timers cannot be stopped from another thread"

CHILD = r"""
import gc, sys, threading, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
if sys.argv[1] == "guarded":
    from prismq_desktop.gui import gcguard
    gcguard.install(app)

class Holder:
    pass

freed = []
def make():
    h = Holder()
    h.timer = QTimer()  # no parent: Python owns it, as qasync's loop owns its timer object
    h.timer.timeout.connect(lambda: None)
    h.timer.start(20)
    h.me = h  # a cycle: only the cyclic collector frees it
    import weakref
    weakref.finalize(h, lambda: freed.append(threading.current_thread().name))

gc.collect()
make()
def churn():  # a worker that allocates, as a to_thread callback or the resource monitor does
    for _ in range(20_000):
        a = []
        a.append(a)
worker = threading.Thread(target=churn, name="worker")
worker.start()
worker.join()
end = time.monotonic() + 1.0
while time.monotonic() < end:  # the GUI thread fires its timers
    app.processEvents()
    time.sleep(0.005)
print("freed on", freed, flush=True)
"""


def run_child(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", CHILD, mode],
                          capture_output=True, text=True, timeout=60)


def test_a_timer_object_in_a_cycle_is_freed_on_the_gui_thread_and_nothing_crashes():
    done = run_child("guarded")
    assert done.returncode == 0, done.stderr[-2000:]
    assert OFF_THREAD not in done.stderr
    assert "freed on ['MainThread']" in done.stdout, done.stdout


def test_without_the_guard_the_same_process_frees_it_on_the_worker():
    """The control: the scenario above does reach the hazard (so the guarded run proves something)."""
    done = run_child("unguarded")
    assert OFF_THREAD in done.stderr, (done.returncode, done.stderr[-2000:])
    assert done.returncode != 0 or "freed on ['worker']" in done.stdout  # usually SIGSEGV (-11)


class _Holder:
    obj: QObject
    me: _Holder


def test_this_process_collects_cycles_on_the_gui_thread_only(qapp, gui_thread_collector):
    assert gcguard.installed() is gui_thread_collector and not gc.isenabled()
    gui = threading.get_ident()
    gc.collect()  # empty generations: the next collection is the one that meets our cycle
    freed: list[int] = []
    holder = _Holder()
    holder.obj = QObject()
    holder.me = holder
    weakref.finalize(holder, lambda: freed.append(threading.get_ident()))
    del holder

    def churn() -> None:
        for _ in range(20_000):
            a: list[object] = []
            a.append(a)

    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    assert freed == [], "a worker thread ran the cyclic collector over a Qt object"
    before = sum(gui_thread_collector.collections)
    deadline = time.monotonic() + 5
    while not freed and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    assert freed == [gui]
    assert sum(gui_thread_collector.collections) > before


def test_a_tick_collects_what_cpython_would_and_nothing_below_the_threshold(qapp, gui_thread_collector):
    gc.collect()
    assert gui_thread_collector.tick() is None  # nothing allocated since
    junk = [[] for _ in range(gc.get_threshold()[0] + 10)]
    assert gui_thread_collector.tick() == 0  # past the first threshold: the youngest generation
    del junk
    gc.enable()  # a library switching it back on does not take collection off the GUI thread
    gui_thread_collector.tick()
    assert not gc.isenabled()
    gui_thread_collector.stop()
    assert gc.isenabled()
    assert gcguard.install(qapp) is gui_thread_collector and not gc.isenabled()  # one per process, running again
