"""One plain-Python event stream from the engine to whoever watches it (GUI bridge, CLI).

Publishing never waits for a subscriber. Each subscriber has its own bounded queue;
when a slow subscriber falls behind, its oldest *output* batches are dropped (and
counted, so a view can say "N bytes not shown - open the full log") while lifecycle
events are always kept. The full output is always in the run's log file.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from prismq_desktop.core.models import Run
from prismq_desktop.core.monitor.samples import RunSample, SystemSample
from prismq_desktop.core.process.capture import OutputChunk
from prismq_desktop.core.schedule.model import Schedule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunChanged:
    """A run's status or outcome changed (already persisted when this is published).

    `kind` names the change: queued, started, paused, resumed or finished.
    """

    run: Run
    kind: str = ""


@dataclass(frozen=True)
class ExternalRunChanged:
    """A run written by another process on the same data dir (the CLI, a headless scheduler),
    seen in the registry; this process's own runs arrive as RunChanged."""

    run: Run


@dataclass(frozen=True)
class OutputBatch:
    """Output of one run since the previous batch.

    A batch with no chunks and `dropped_bytes` > 0 marks output this subscriber missed
    because it fell behind (it is still in the log file).
    """

    run_id: int
    chunks: tuple[OutputChunk, ...]
    dropped_bytes: int = 0

    @property
    def size(self) -> int:
        return sum(len(c.data) for c in self.chunks)


@dataclass(frozen=True)
class Progress:
    """A run's progress changed: `fraction` in [0, 1], with an optional message."""

    run_id: int
    fraction: float
    message: str | None = None


@dataclass(frozen=True)
class RetryScheduled:
    """A failed attempt will be retried as run `next_run_id` at `at` (unix time)."""

    run_id: int
    next_run_id: int
    attempt: int
    at: float


@dataclass(frozen=True)
class DeadLettered:
    """A run's retries ran out; it is on the dead-letter list as entry `dead_letter_id`."""

    run_id: int
    dead_letter_id: int
    reason: str | None


@dataclass(frozen=True)
class Notice:
    """Something a person should know that is not a state change (a warning, a hint)."""

    run_id: int | None
    message: str
    level: str = "info"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleChanged:
    """A schedule was added, edited, enabled/disabled, fired or removed (`schedule` None)."""

    schedule_id: int
    schedule: Schedule | None
    what: str


Event: TypeAlias = (
    RunChanged | ExternalRunChanged | OutputBatch | Progress | RetryScheduled | DeadLettered | Notice | ScheduleChanged
    | RunSample | SystemSample
)
Callback: TypeAlias = Callable[[Event], None | Awaitable[None]]


class Subscription:
    """A bounded per-subscriber queue; iterate it with `async for`, or give a callback."""

    def __init__(self, bus: EventBus, max_output_bytes: int, callback: Callback | None) -> None:
        self._bus = bus
        self._queue: collections.deque[Event] = collections.deque()
        self._output_bytes = 0
        self.max_output_bytes = max_output_bytes
        self.dropped_bytes = 0
        self._callback = callback
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self.closed = False

    # -- producer side (any thread)
    def _put(self, event: Event) -> None:
        with self._lock:
            if self.closed:
                return
            self._queue.append(event)
            if isinstance(event, OutputBatch):
                self._output_bytes += event.size
                if self._output_bytes > self.max_output_bytes:
                    self._shed()
        self._wake()

    def _shed(self) -> None:
        """Drop the oldest output until half the budget is free; leave a marker saying how much."""
        kept: collections.deque[Event] = collections.deque()
        markers: dict[int, int] = {}  # run id -> index of its marker in `kept`
        lost: dict[int, int] = {}
        for ev in self._queue:
            if isinstance(ev, OutputBatch) and ev.chunks and self._output_bytes > self.max_output_bytes // 2:
                self._output_bytes -= ev.size
                self.dropped_bytes += ev.size
                lost[ev.run_id] = lost.get(ev.run_id, 0) + ev.size
                if ev.run_id not in markers:
                    markers[ev.run_id] = len(kept)
                    kept.append(ev)  # placeholder, replaced below
            else:
                kept.append(ev)
        for run_id, index in markers.items():
            kept[index] = OutputBatch(run_id, (), lost[run_id])
        self._queue = kept

    def _wake(self) -> None:
        loop = self._loop
        if loop is None or self._wakeup is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wakeup.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._wakeup.set)

    # -- consumer side
    def get_nowait(self) -> Event | None:
        with self._lock:
            if not self._queue:
                return None
            ev = self._queue.popleft()
            if isinstance(ev, OutputBatch):
                self._output_bytes -= ev.size
            return ev

    def _bind(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._wakeup = asyncio.Event()

    async def get(self) -> Event:
        self._bind()
        assert self._wakeup is not None
        while True:
            ev = self.get_nowait()
            if ev is not None:
                return ev
            if self.closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def start_callback(self) -> None:
        """Deliver events to the callback from a task of its own on the running loop."""
        self._bind()
        self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        assert self._callback is not None
        async for ev in self:
            try:
                result = self._callback(ev)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a subscriber's bug must not stop the engine
                log.exception("event subscriber %r failed", self._callback)

    def close(self) -> None:
        with self._lock:
            self.closed = True
        self._bus._remove(self)
        self._wake()


class EventBus:
    """Subscribers are kept in tuples replaced whole on (un)subscribe, so `publish` (a thousand
    output batches a second under the window) reads them without a lock or a copy."""

    def __init__(self) -> None:
        self._subs: tuple[Subscription, ...] = ()
        self._sync: tuple[Callable[[Event], None], ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, callback: Callback | None = None, max_output_bytes: int = 16 * 2**20) -> Subscription:
        """Queue events for a consumer. With a callback, a task on the running loop calls it."""
        sub = Subscription(self, max_output_bytes, callback)
        with self._lock:
            self._subs = (*self._subs, sub)
        if callback is not None:
            sub.start_callback()
        return sub

    def subscribe_sync(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call `callback` inline on the publishing thread (it must be quick: a Qt signal emit).

        Returns a function that unsubscribes.
        """
        with self._lock:
            self._sync = (*self._sync, callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._sync:
                    kept = list(self._sync)
                    kept.remove(callback)
                    self._sync = tuple(kept)

        return unsubscribe

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs = tuple(s for s in self._subs if s is not sub)

    def publish(self, event: Event) -> None:
        subs, sync = self._subs, self._sync
        for cb in sync:
            try:
                cb(event)
            except Exception:
                log.exception("event callback %r failed", cb)
        for sub in subs:
            sub._put(event)
