"""One watched run's state between rounds, and what a tree-reading backend must offer.

`Watch` holds a run's root pid, its identity, the members read last round (each backend keeps
its own kind of entry there) and the aggregates `unwatch()` returns. A backend fills one `Totals`
per watched run and round.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from prismq_desktop.core.monitor.samples import RunSample, RunUsage


@dataclass(slots=True)
class Aggregates:
    samples: int = 0
    cpu_sum: float = 0.0
    cpu_peak: float = 0.0
    rss_sum: int = 0
    rss_peak: int = 0
    threads_peak: int = 0
    children_peak: int = 0
    io_read: int | None = None
    io_write: int | None = None
    last_time: float | None = None

    def add(self, s: RunSample) -> None:
        self.samples += 1
        self.cpu_sum += s.cpu_percent
        self.cpu_peak = max(self.cpu_peak, s.cpu_percent)
        self.rss_sum += s.rss_bytes
        self.rss_peak = max(self.rss_peak, s.rss_bytes)
        self.threads_peak = max(self.threads_peak, s.threads)
        self.children_peak = max(self.children_peak, s.children)
        self.io_read, self.io_write = s.io_read_bytes, s.io_write_bytes
        self.last_time = s.time


@dataclass(slots=True)
class Watch:
    run_id: int
    pid: int
    watched_at: float  # unix time
    root_start: float | None = None  # identity of the root: starttime ticks (procfs) or create_time (psutil)
    last_mono: float = 0.0  # monotonic time of the last reading (the watch-time baseline at first)
    last_wall: float = 0.0
    gone: bool = False  # the root has ended: nothing more to read
    # procfs: pid -> (starttime ticks, utime + stime ticks, threads); psutil: pid -> Process
    members: dict[int, Any] = field(default_factory=dict)
    agg: Aggregates = field(default_factory=Aggregates)

    def usage(self) -> RunUsage:
        a = self.agg
        n = a.samples
        return RunUsage(
            run_id=self.run_id,
            pid=self.pid,
            samples=n,
            cpu_percent_peak=a.cpu_peak,
            cpu_percent_mean=a.cpu_sum / n if n else 0.0,
            rss_bytes_peak=a.rss_peak,
            rss_bytes_mean=a.rss_sum // n if n else 0,
            threads_peak=a.threads_peak,
            children_peak=a.children_peak,
            io_read_bytes=a.io_read,
            io_write_bytes=a.io_write,
            watched_at=self.watched_at,
            last_sample_at=a.last_time,
        )


@dataclass(slots=True)
class Totals:
    cpu: float = 0.0
    rss: int = 0
    threads: int = 0
    children: int = 0
    io_read: int | None = None
    io_write: int | None = None
    alive: bool = False

    def add_io(self, read: int, write: int) -> None:
        self.io_read = (self.io_read or 0) + read
        self.io_write = (self.io_write or 0) + write


def descendants(root: int, kids: dict[int, list[int]]) -> list[int]:
    """Every pid below `root` in the parent map (cycle-safe: pid 0 is its own parent on some systems)."""
    out: list[int] = []
    seen = {root}
    stack = [root]
    while stack:
        for child in kids.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                out.append(child)
                stack.append(child)
    return out


def children_map(ppids: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for pid, ppid in ppids:
        lst = kids.get(ppid)
        if lst is None:
            kids[ppid] = [pid]
        else:
            lst.append(pid)
    return kids



class TreeBackend(Protocol):
    """How one round reads the watched trees (procfs.ProcfsBackend, psutil_backend.PsutilBackend).

    Called on one thread at a time: `baseline` when a run is watched, then per round
    `begin_round`, `sample` for each live watch, `end_round`.
    """

    name: str

    def baseline(self, w: Watch) -> None:
        """Read the root once (CPU baseline and identity); mark the watch gone if the root has ended."""

    def begin_round(self, watches: list[Watch]) -> None:
        """Prepare the round (e.g. one parent map shared by all runs)."""

    def sample(self, w: Watch, now_mono: float, now_wall: float, boot_now: float) -> Totals:
        """Sum the tree of `w` and replace `w.members`; `alive` False when the root has ended."""

    def end_round(self) -> None:
        """Drop what the round cached."""
