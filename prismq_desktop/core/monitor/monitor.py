"""Resource monitor: CPU, memory, threads and I/O of every live run's process tree, and of the machine.

`ResourceMonitor` samples on a daemon thread of its own (never on the caller's thread), once
per `interval` seconds (1 s by default, changeable while it runs). Each round it publishes

- one `RunSample` per watched run: the whole process tree rooted at the run's pid (the root and
  all its descendants, membership refreshed every round), CPU % summed over the tree (100 = one
  full core), RSS, threads and live descendants summed, and (with ``io=True``) I/O bytes where
  the platform has them;
- then one `SystemSample`: CPU % per core, memory, swap, disk usage of one path, load average.

It also keeps per-run aggregates (peak and mean CPU % and RSS, sample count) that `usage()` returns
while the run is watched and `unwatch()` returns at the end.

Threading: `publish` is called **on the sampler thread**. The engine must not touch its state
from there; it marshals each sample onto its event loop, e.g.
``publish=lambda ev: loop.call_soon_threadsafe(bus.publish, ev)``. An exception raised by
`publish` is logged and never stops the sampler. `watch`, `unwatch`, `usage` and the `interval`
property may be called from any thread.

CPU % is a difference of CPU times between two readings, so the first reading of a process is
only a baseline: `watch()` takes that baseline at once (one cheap read of the root, no tree walk),
so the first `RunSample` published - at least half an interval later - is already real. A
descendant first seen in a round counts in full if it started since the previous round (all its
CPU time falls in the interval), and as a baseline (0) otherwise. A descendant that starts and
ends between two rounds is not seen at all. I/O counts the live members of the tree; on Linux the
kernel adds a reaped child's I/O to its parent's counters, so the root's figures include its
finished children.

Cost. Two backends read the same figures: ``"procfs"`` (Linux, the default there; procfs.py)
and ``"psutil"`` (everywhere else; psutil_backend.py). The machine's figures come from system.py,
the published records from samples.py.

`stats()` reports the CPU time the sampler itself has used (``time.thread_time`` around each round);
benchmarks/bench_monitor.py measures it for 10 and 100 live run trees.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Literal

from prismq_desktop.core.monitor.procfs import HAS_PROCFS, ProcfsBackend, boot_clock
from prismq_desktop.core.monitor.psutil_backend import PsutilBackend
from prismq_desktop.core.monitor.samples import MonitorStats, RunSample, RunUsage, SystemSample
from prismq_desktop.core.monitor.system import SystemReader
from prismq_desktop.core.monitor.watch import TreeBackend, Watch

log = logging.getLogger(__name__)

Backend = Literal["auto", "procfs", "psutil"]

_MIN_INTERVAL = 0.01


def make_backend(backend: Backend, io: bool = False) -> TreeBackend:
    if backend == "procfs" or (backend == "auto" and HAS_PROCFS):
        if not HAS_PROCFS:
            raise ValueError("the procfs backend needs Linux /proc")
        return ProcfsBackend(io=io)
    if backend not in ("auto", "psutil"):
        raise ValueError(f"unknown backend {backend!r}")
    return PsutilBackend(io=io)


class ResourceMonitor:
    """Samples watched runs' process trees and the machine on a daemon thread; see the module docstring.

    >>> with ResourceMonitor(1.0, publish=print) as mon:   # doctest: +SKIP
    ...     mon.watch(run_id, pid)
    ...     ...
    ...     usage = mon.unwatch(run_id)
    """

    def __init__(
        self,
        interval: float = 1.0,
        publish: Callable[[object], None] | None = None,
        *,
        disk_path: str | os.PathLike[str] | None = None,
        backend: Backend = "auto",
        io: bool = False,
    ) -> None:
        self._interval = self._check_interval(interval)
        self.publish = publish
        #: Read I/O counters too (a read per process and round that nothing shows today: off by default).
        self.io = io
        self._backend = make_backend(backend, io=io)
        self._system = SystemReader(os.fspath(disk_path) if disk_path is not None else os.path.expanduser("~"))
        self._lock = threading.Lock()  # guards _runs and the aggregates
        self._round_lock = threading.Lock()  # one round at a time (thread or sample_once)
        self._runs: dict[int, Watch] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_due = 0.0
        self._last_round = 0.0
        self._rounds = 0
        self._cpu_seconds = 0.0
        self._last_cost = 0.0

    # -- configuration
    @staticmethod
    def _check_interval(value: float) -> float:
        value = float(value)
        if not math.isfinite(value) or value < _MIN_INTERVAL:
            raise ValueError(f"interval must be a finite number of seconds >= {_MIN_INTERVAL}, not {value!r}")
        return value

    @property
    def interval(self) -> float:
        """Seconds between rounds; setting it takes effect at once (the next round is due one new interval
        after the previous one)."""
        return self._interval

    @interval.setter
    def interval(self, value: float) -> None:
        value = self._check_interval(value)
        with self._lock:
            self._interval = value
            self._next_due = self._last_round + value
        self._wake.set()

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def disk_path(self) -> str:
        return self._system.disk_path

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle
    def start(self) -> None:
        """Start the sampler thread (no-op if it runs)."""
        if self.running:
            return
        self._stop.clear()
        self._wake.clear()
        with self._lock:
            self._last_round = time.monotonic()
            self._next_due = self._last_round + self._interval
        self._thread = threading.Thread(target=self._loop, name="prismq-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the sampler thread and wait for it (a round in progress is finished first)."""
        thread = self._thread
        self._stop.set()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("resource monitor thread did not stop within %s s", timeout)
                return
            self._thread = None
        if thread is None or not thread.is_alive():
            with self._round_lock:
                self._backend.end_round()  # closes the files the procfs backend kept open

    def __enter__(self) -> ResourceMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- runs
    def watch(self, run_id: int, pid: int) -> None:
        """Start sampling the process tree rooted at `pid` for run `run_id`.

        Takes the CPU baseline of the root at once (one read, no tree walk; tens of µs). A pid that
        has already ended is accepted: it yields no samples, and `unwatch` returns zero samples.
        Watching a run id again replaces the earlier watch.
        """
        w = Watch(run_id=run_id, pid=pid, watched_at=time.time())
        self._backend.baseline(w)
        w.last_mono = time.monotonic()
        w.last_wall = w.watched_at
        with self._lock:
            self._runs[run_id] = w

    def unwatch(self, run_id: int) -> RunUsage | None:
        """Stop sampling a run; its aggregates, or None if it was not watched."""
        with self._lock:
            w = self._runs.pop(run_id, None)
            return w.usage() if w is not None else None

    def usage(self, run_id: int) -> RunUsage | None:
        """The aggregates so far of a watched run (None if not watched)."""
        with self._lock:
            w = self._runs.get(run_id)
            return w.usage() if w is not None else None

    def watched(self) -> list[int]:
        with self._lock:
            return list(self._runs)

    def stats(self) -> MonitorStats:
        thread = self._thread
        return MonitorStats(
            rounds=self._rounds,
            cpu_seconds=self._cpu_seconds,
            last_round_seconds=self._last_cost,
            native_thread_id=thread.native_id if thread is not None and thread.is_alive() else None,
        )

    # -- sampling
    def sample_once(self) -> tuple[list[RunSample], SystemSample]:
        """Run one round now, on the calling thread: read, update aggregates, publish, and return the samples."""
        return self._round()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                due = self._next_due
            delay = due - time.monotonic()
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()
                continue  # re-check stop and the (maybe changed) due time
            t0 = time.thread_time()
            try:
                self._round()
            except Exception:  # noqa: BLE001 - a bug in one round must not end the sampling
                log.exception("resource monitor round failed")
            cost = time.thread_time() - t0
            self._cpu_seconds += cost
            self._last_cost = cost
            self._rounds += 1

    def _round(self) -> tuple[list[RunSample], SystemSample]:
        with self._round_lock:
            start = time.monotonic()
            with self._lock:
                self._last_round = start
                # fixed rate; after a stall (or a slow round) start again from now rather than catch up
                due = self._next_due + self._interval
                self._next_due = due if due > start else start + self._interval
                watches = list(self._runs.values())
                min_age = self._interval / 2
            samples: list[tuple[Watch, RunSample]] = []
            live = [w for w in watches if not w.gone and start - w.last_mono >= min_age]
            if live:
                backend = self._backend
                backend.begin_round(live)
                try:
                    boot = boot_clock()
                    now_mono = time.monotonic()
                    now_wall = time.time()
                    for w in live:
                        try:
                            t = backend.sample(w, now_mono, now_wall, boot)
                        except Exception:  # noqa: BLE001 - one odd process must not cost the other runs
                            log.exception("sampling run %s (pid %s) failed", w.run_id, w.pid)
                            continue
                        w.last_mono, w.last_wall = now_mono, now_wall
                        if not t.alive:
                            w.gone = True
                            w.members = {}
                            continue
                        samples.append(
                            (
                                w,
                                RunSample(
                                    run_id=w.run_id,
                                    time=now_wall,
                                    cpu_percent=round(t.cpu, 1),
                                    rss_bytes=t.rss,
                                    threads=t.threads,
                                    children=t.children,
                                    io_read_bytes=t.io_read,
                                    io_write_bytes=t.io_write,
                                ),
                            )
                        )
                finally:
                    backend.end_round()
            else:
                self._backend.end_round()  # no live tree: let go of what the backend kept open
            system = self._system.read()
            published: list[RunSample] = []
            with self._lock:
                for w, s in samples:
                    if self._runs.get(s.run_id) is w:  # not unwatched (or watched anew) meanwhile
                        w.agg.add(s)
                        published.append(s)
            self._publish([*published, system])
            return published, system

    def _publish(self, events: list[RunSample | SystemSample]) -> None:
        publish = self.publish
        if publish is None:
            return
        failures = 0
        for ev in events:
            try:
                publish(ev)
            except Exception:  # noqa: BLE001 - a subscriber's bug must not stop the sampling
                if failures == 0:
                    log.exception("resource monitor: publish(%s) failed", type(ev).__name__)
                failures += 1
        if failures > 1:
            log.error("resource monitor: publish failed for %d events this round", failures)
