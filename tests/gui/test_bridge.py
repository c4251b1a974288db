"""The bridge: one handler per core event type, and thread-safe delivery onto the GUI thread."""

from __future__ import annotations

import threading
import time
import typing
from types import SimpleNamespace

from prismq_desktop.core.events import Event, EventBus, Notice
from prismq_desktop.core.monitor.samples import RunSample, SystemSample
from prismq_desktop.gui.bridge import Bridge


def test_every_event_type_has_a_handler():
    members = set(typing.get_args(Event))
    assert members, "Event is no longer a union"
    assert members == set(Bridge.HANDLERS), (members ^ set(Bridge.HANDLERS))


def system_sample() -> SystemSample:
    return SystemSample(time.time(), (1.0, 2.0), 100, 50, 50.0, 0.0, "/", None, None, None, None)


def test_events_from_another_thread_arrive_on_the_gui_thread(qapp):
    bus = EventBus()
    bridge = Bridge(SimpleNamespace(bus=bus))
    got: list[tuple[str, object, int]] = []
    bridge.sample.connect(lambda ev: got.append(("sample", ev, threading.get_ident())))
    bridge.notice.connect(lambda ev: got.append(("notice", ev, threading.get_ident())))
    gui = threading.get_ident()
    try:
        note = Notice(None, "on the loop")
        bus.publish(note)
        assert got == [("notice", note, gui)]  # same thread: delivered at once
        run_sample = RunSample(7, time.time(), 12.5, 1024, 1, 0, None, None)
        sys_sample = system_sample()
        worker = threading.Thread(target=lambda: (bus.publish(run_sample), bus.publish(sys_sample)))
        worker.start()
        worker.join()
        assert len(got) == 1  # queued, not emitted on the worker thread
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            qapp.processEvents()
        assert got[1:] == [("sample", run_sample, gui), ("sample", sys_sample, gui)]
    finally:
        bridge.close()
    bus.publish(Notice(None, "after close"))
    assert len(got) == 3
