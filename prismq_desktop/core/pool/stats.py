"""What the pool tells a view: one `PoolStats` with a `WorkerStats` per worker."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerStats:
    pid: int | None
    state: str  # "starting" | "idle" | "busy" | "retiring"
    runs_served: int  # runs started in this worker (counted when the run starts, as the pool's total is)
    current_run: int | None
    age: float  # seconds since the worker was started


@dataclass(frozen=True)
class PoolStats:
    size: int  # the target number of workers
    workers: tuple[WorkerStats, ...]
    queued: int  # runs waiting for a free worker
    busy: int
    idle: int
    runs_served: int  # runs started in a worker since the pool was made: the rows' sum + retired_served
    fallback_runs: int  # runs the pool handed to a normal spawn
    crashes: int  # workers that died unexpectedly
    recycled: int  # workers retired after max_runs_per_worker runs
    start_latency_mean_ms: float | None  # request sent -> child pid reported, last 1000 runs
    start_latency_p95_ms: float | None
    broken: str | None  # why the pool stopped starting workers, if it did
    closed: bool
    retired_served: int = 0  # runs served by workers no longer listed (recycled, resized away, died)
    started: bool = True  # False until the first pooled run (or `pool.start()`) starts the workers
    supported: bool = True  # False where pooling is not available (every run is spawned normally)


def percentile(data: list[float], q: float) -> float:
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)
