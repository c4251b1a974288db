"""What the resource monitor publishes and returns: plain frozen records.

A leaf module (stdlib only): the event stream (core/events.py) and the views import these
types without the sampler thread, its backends or psutil.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RunSample:
    """One round's reading of a run's whole process tree (the root and all its live descendants)."""

    run_id: int
    time: float  # unix time of the reading
    cpu_percent: float  # summed over the tree since the previous reading; 100 = one full core
    rss_bytes: int  # summed over the tree
    threads: int  # summed over the tree
    children: int  # live descendants, not counting the root
    io_read_bytes: int | None  # summed over the tree; None where the platform (or permissions) give none
    io_write_bytes: int | None


@dataclass(frozen=True, slots=True)
class SystemSample:
    """One round's reading of the whole machine."""

    time: float  # unix time
    cpu_percent_per_core: tuple[float, ...]  # one entry per logical CPU, each 0-100
    mem_total: int
    mem_used: int
    mem_percent: float
    swap_percent: float
    disk_path: str
    disk_total: int | None  # None when the path cannot be read
    disk_used: int | None
    disk_percent: float | None
    load_avg: tuple[float, float, float] | None  # 1, 5, 15 minutes; None where unsupported

    @property
    def cpu_percent(self) -> float:
        """Mean over the cores (0-100)."""
        per = self.cpu_percent_per_core
        return sum(per) / len(per) if per else 0.0


@dataclass(frozen=True, slots=True)
class RunUsage:
    """A run's aggregates over the samples published for it (the watch-time baseline is not one)."""

    run_id: int
    pid: int
    samples: int
    cpu_percent_peak: float
    cpu_percent_mean: float
    rss_bytes_peak: int
    rss_bytes_mean: int
    threads_peak: int
    children_peak: int
    io_read_bytes: int | None  # as of the last sample
    io_write_bytes: int | None
    watched_at: float  # unix time
    last_sample_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def run_fields(self) -> dict[str, float | int | None]:
        """The registry's `Run` columns (peak_cpu, mean_cpu, peak_rss, mean_rss); all None without samples."""
        if self.samples == 0:
            return {"peak_cpu": None, "mean_cpu": None, "peak_rss": None, "mean_rss": None}
        return {
            "peak_cpu": self.cpu_percent_peak,
            "mean_cpu": self.cpu_percent_mean,
            "peak_rss": self.rss_bytes_peak,
            "mean_rss": self.rss_bytes_mean,
        }


@dataclass(frozen=True, slots=True)
class MonitorStats:
    """What the sampler itself costs: rounds done and thread CPU time spent in them."""

    rounds: int
    cpu_seconds: float  # time.thread_time() spent inside rounds
    last_round_seconds: float  # thread CPU time of the latest round
    native_thread_id: int | None  # of the sampler thread while it runs (for OS-level per-thread times)

