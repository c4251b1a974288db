"""Follow runs that other processes write to the same registry (CLI, headless scheduler).

This process's own runs are announced on the bus by the engine. Runs of other processes
are only in the file; `RegistryWatcher` notices them cheaply — SQLite's `data_version`
changes only when another connection commits — and publishes `ExternalRunChanged` for
each row that changed, so views stay true without rereading whole tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable

from prismq_desktop.core.events import ExternalRunChanged
from prismq_desktop.core.store.registry import RunRegistry

log = logging.getLogger(__name__)


class RegistryWatcher:
    """Polls the registry every `interval` seconds (on the running loop) for other processes' changes."""

    def __init__(self, registry: RunRegistry, publish: Callable[[ExternalRunChanged], None], *,
                 interval: float = 0.5, own_pid: int | None = None, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.publish = publish
        self.interval = interval
        self.own_pid = os.getpid() if own_pid is None else own_pid
        self._version = registry.data_version()
        self._since = clock() - 1.0  # a little overlap: rows stamped just before we started count
        self._seen: set[tuple[int, float]] = set()
        self._task: asyncio.Task[None] | None = None

    def poll(self) -> int:
        """One check; returns how many changed runs were published."""
        version = self.registry.data_version()
        if version == self._version:
            return 0
        self._version = version
        published = 0
        for run, stamp in self.registry.changed_since(self._since):
            if (run.id, stamp) in self._seen:
                continue
            if stamp > self._since:
                self._since = stamp
                self._seen = {key for key in self._seen if key[1] >= stamp}
            self._seen.add((run.id, stamp))
            if run.owner_pid == self.own_pid:
                continue  # ours: the engine announced it already
            self.publish(ExternalRunChanged(run))
            published += 1
        return published

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="registry-watcher")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a locked or closing file must not end the watching
                log.exception("watching the registry failed; trying again")

    def cancel(self) -> None:
        """Stop watching now (from code that cannot await, e.g. a window closing)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
