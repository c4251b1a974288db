"""The run queue: priority order, holds until a time, one concurrency limit. No processes here.

Ready entries start in (priority, submission) order — CRITICAL first, FIFO within a
priority — whenever a slot under the limit is free and the queue is not paused. An entry
can wait outside the ready order: *held* until a time (a retry's backoff; the injected
clock releases it) or *blocked* until the owner releases it (runs it depends on). The
queue only decides *when*; starting is the `start` callback's job, and the owner calls
`finished()` when a started entry ends, which frees its slot.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Wall time and one-shot timers; tests inject a fake one and move it by hand."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer: ...


class LoopClock:
    """The real clock: time.time() and timers on the running asyncio loop."""

    def time(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, when - time.time()), callback)


@dataclass
class _Entry(Generic[T]):
    item: T
    priority: int
    seq: int
    timer: Timer | None = None


class RunQueue(Generic[T]):
    """Ready heap + held/blocked entries + running set, bounded by one limit."""

    def __init__(self, start: Callable[[int, T], None], *, limit: int, clock: Clock | None = None,
                 on_release: Callable[[int, T], None] | None = None) -> None:
        if limit < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._start = start
        self._on_release = on_release
        self.clock: Clock = clock or LoopClock()
        self._limit = limit
        self._heap: list[tuple[int, int, int]] = []  # (priority, seq, run id); stale entries skipped
        self._ready: dict[int, _Entry[T]] = {}
        self._held: dict[int, _Entry[T]] = {}  # waiting for a time
        self._blocked: dict[int, _Entry[T]] = {}  # waiting for the owner to release them
        self._running: dict[int, T] = {}
        self._seq = itertools.count()
        self._paused = False
        self._pumping = False

    # -- limits
    @property
    def limit(self) -> int:
        return self._limit

    def set_limit(self, limit: int) -> None:
        """Raising the limit starts ready entries at once; lowering it never stops running ones."""
        if limit < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._limit = limit
        self.pump()

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self.pump()

    # -- adding
    def push(self, run_id: int, item: T, priority: int, *, hold_until: float | None = None,
             blocked: bool = False) -> None:
        entry = _Entry(item, int(priority), next(self._seq))
        if blocked:
            self._blocked[run_id] = entry
        elif hold_until is not None and hold_until > self.clock.time():
            self._held[run_id] = entry
            entry.timer = self.clock.call_at(hold_until, lambda: self._expire(run_id))
        else:
            self._make_ready(run_id, entry)
        self.pump()

    def _make_ready(self, run_id: int, entry: _Entry[T]) -> None:
        self._ready[run_id] = entry
        heapq.heappush(self._heap, (entry.priority, entry.seq, run_id))

    def _expire(self, run_id: int) -> None:
        entry = self._held.pop(run_id, None)
        if entry is None:
            return
        entry.timer = None
        self._make_ready(run_id, entry)
        if self._on_release is not None:
            self._on_release(run_id, entry.item)
        self.pump()

    def release(self, run_id: int) -> bool:
        """A blocked entry may start now (what it waited for is done)."""
        entry = self._blocked.pop(run_id, None)
        if entry is None:
            return False
        self._make_ready(run_id, entry)
        self.pump()
        return True

    # -- changing and removing
    def reprioritize(self, run_id: int, priority: int) -> bool:
        """Move an entry to another priority, behind the entries already waiting there."""
        for table in (self._ready, self._held, self._blocked):
            entry = table.get(run_id)
            if entry is None:
                continue
            entry.priority, entry.seq = int(priority), next(self._seq)
            if table is self._ready:
                heapq.heappush(self._heap, (entry.priority, entry.seq, run_id))  # the old one goes stale
            self.pump()
            return True
        return False

    def remove(self, run_id: int) -> T | None:
        """Take a waiting entry out (cancelled); None if it is not waiting here."""
        for table in (self._ready, self._held, self._blocked):
            entry = table.pop(run_id, None)
            if entry is not None:
                if entry.timer is not None:
                    entry.timer.cancel()
                return entry.item
        return None

    def finished(self, run_id: int) -> None:
        """A started entry ended: free its slot and start the next."""
        if self._running.pop(run_id, None) is not None:
            self.pump()

    # -- looking
    def is_waiting(self, run_id: int) -> bool:
        return run_id in self._ready or run_id in self._held or run_id in self._blocked

    def is_running(self, run_id: int) -> bool:
        return run_id in self._running

    @property
    def waiting_count(self) -> int:
        return len(self._ready) + len(self._held) + len(self._blocked)

    @property
    def running_count(self) -> int:
        return len(self._running)

    def waiting(self) -> list[tuple[int, T]]:
        """Waiting entries in the order they would start: ready ones first, then held/blocked by priority."""
        ready = sorted(self._ready.items(), key=lambda kv: (kv[1].priority, kv[1].seq))
        later = sorted([*self._held.items(), *self._blocked.items()], key=lambda kv: (kv[1].priority, kv[0]))
        return [(rid, e.item) for rid, e in ready + later]

    def running(self) -> list[tuple[int, T]]:
        return list(self._running.items())

    # -- starting
    def pump(self) -> None:
        """Start ready entries while slots are free (re-entrant calls from `start` are folded in)."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._heap and not self._paused and len(self._running) < self._limit:
                prio, seq, run_id = heapq.heappop(self._heap)
                entry = self._ready.get(run_id)
                if entry is None or (prio, seq) != (entry.priority, entry.seq):
                    continue  # stale: reprioritized or removed
                del self._ready[run_id]
                self._running[run_id] = entry.item
                self._start(run_id, entry.item)
        finally:
            self._pumping = False
