"""The run queue on its own, with a fake clock: ordering, the limit, holds, pausing.

No processes and no sleeps: the clock moves only when a test moves it, so a retry's
backoff of an hour is tested as quickly as one of a millisecond.
"""

from __future__ import annotations

import math

import pytest

from prismq_desktop.core.orchestrator.queue import RunQueue
from prismq_desktop.core.patterns import Priority
from tests.helpers import FakeClock


class Harness:
    def __init__(self, limit: int = 1) -> None:
        self.clock = FakeClock(1_000.0)
        self.started: list[int] = []
        self.released: list[int] = []
        self.queue: RunQueue[str] = RunQueue(lambda rid, item: self.started.append(rid), limit=limit, clock=self.clock,
                                             on_release=lambda rid, item: self.released.append(rid))

    def finish(self, *ids: int) -> None:
        for rid in ids:
            self.queue.finished(rid)


def test_priority_order_then_fifo_within_a_priority():
    h = Harness(limit=1)
    h.queue.push(1, "first", Priority.NORMAL)  # takes the only slot at once
    for rid, prio in [(2, Priority.LOW), (3, Priority.NORMAL), (4, Priority.CRITICAL), (5, Priority.NORMAL), (6, Priority.HIGH)]:
        h.queue.push(rid, f"run {rid}", prio)
    assert h.started == [1]
    assert [rid for rid, _ in h.queue.waiting()] == [4, 6, 3, 5, 2]
    for rid in [1, 4, 6, 3, 5]:
        h.finish(rid)
    assert h.started == [1, 4, 6, 3, 5, 2]
    assert h.queue.waiting_count == 0 and h.queue.running_count == 1


def test_the_limit_bounds_running_entries_and_raising_it_starts_waiting_ones_at_once():
    h = Harness(limit=2)
    for rid in range(1, 7):
        h.queue.push(rid, "x", Priority.NORMAL)
    assert h.started == [1, 2] and h.queue.running_count == 2
    h.queue.set_limit(4)
    assert h.started == [1, 2, 3, 4]
    h.queue.set_limit(1)  # lowering never stops running ones...
    assert h.queue.running_count == 4
    h.finish(1, 2, 3)
    assert h.started == [1, 2, 3, 4]  # ...and starts nothing until below the new limit
    h.finish(4)
    assert h.started == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="at least 1"):
        h.queue.set_limit(0)


def test_a_held_entry_waits_for_the_clock_not_for_a_sleep():
    h = Harness(limit=4)
    h.queue.push(1, "retry", Priority.NORMAL, hold_until=h.clock.now + 3600)  # an hour of backoff
    h.queue.push(2, "now", Priority.LOW)
    assert h.started == [2] and h.queue.is_waiting(1)
    h.clock.advance(3599.999)
    assert h.started == [2] and h.released == []
    h.clock.advance(0.001)
    assert h.started == [2, 1] and h.released == [1]


def test_a_hold_in_the_past_is_no_hold():
    h = Harness(limit=1)
    h.queue.push(1, "late retry", Priority.NORMAL, hold_until=h.clock.now - 5)
    assert h.started == [1] and h.clock.timers == []


def test_held_entries_start_in_priority_order_when_they_come_due_together():
    h = Harness(limit=1)
    h.queue.push(9, "busy", Priority.NORMAL)
    h.queue.push(1, "low", Priority.LOW, hold_until=h.clock.now + 10)
    h.queue.push(2, "critical", Priority.CRITICAL, hold_until=h.clock.now + 10)
    h.clock.advance(10)
    assert h.started == [9]
    h.finish(9)
    assert h.started == [9, 2]


def test_blocked_entries_wait_for_release():
    h = Harness(limit=3)
    h.queue.push(1, "dependent", Priority.CRITICAL, blocked=True)
    h.queue.push(2, "other", Priority.LOW)
    assert h.started == [2]
    assert h.queue.release(1) is True and h.started == [2, 1]
    assert h.queue.release(1) is False  # only once


def test_remove_takes_an_entry_out_of_any_waiting_state_and_cancels_its_timer():
    h = Harness(limit=1)
    h.queue.push(1, "running", Priority.NORMAL)
    h.queue.push(2, "ready", Priority.NORMAL)
    h.queue.push(3, "held", Priority.NORMAL, hold_until=h.clock.now + 60)
    h.queue.push(4, "blocked", Priority.NORMAL, blocked=True)
    assert [h.queue.remove(r) for r in (2, 3, 4)] == ["ready", "held", "blocked"]
    assert h.queue.remove(1) is None  # running: not the queue's to remove
    assert all(t.cancelled for t in h.clock.timers)
    h.clock.advance(120)
    h.finish(1)
    assert h.started == [1] and h.released == [] and h.queue.waiting_count == 0


def test_reprioritize_moves_behind_entries_already_at_that_priority():
    h = Harness(limit=1)
    h.queue.push(1, "busy", Priority.NORMAL)
    for rid in (2, 3, 4):
        h.queue.push(rid, "x", Priority.NORMAL)
    h.queue.push(5, "x", Priority.HIGH)
    assert h.queue.reprioritize(4, Priority.HIGH) is True
    assert h.queue.reprioritize(3, Priority.LOW) is True
    assert h.queue.reprioritize(99, Priority.HIGH) is False
    assert [rid for rid, _ in h.queue.waiting()] == [5, 4, 2, 3]
    for rid in (1, 5, 4, 2):
        h.finish(rid)
    assert h.started == [1, 5, 4, 2, 3]


def test_pause_stops_starts_and_resume_fills_every_free_slot():
    h = Harness(limit=2)
    h.queue.pause()
    for rid in (1, 2, 3):
        h.queue.push(rid, "x", Priority.NORMAL)
    h.clock.advance(math.inf)
    assert h.started == []
    h.queue.resume()
    assert h.started == [1, 2]


def test_a_start_that_ends_at_once_does_not_stall_the_queue():
    """The start callback may finish its entry right away (a run that could not start)."""
    clock = FakeClock(1_000.0)
    started: list[int] = []
    queue: RunQueue[str] = RunQueue(lambda rid, item: (started.append(rid), queue.finished(rid)), limit=1, clock=clock)
    for rid in (1, 2, 3):
        queue.push(rid, "x", Priority.NORMAL)
    assert started == [1, 2, 3] and queue.running_count == 0
