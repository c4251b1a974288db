"""The warm worker pool (pattern 6): fork servers on POSIX, recycled workers on Windows.

pool.py       `ResourcePool`: scheduling, worker lifecycle, the `Executor` the engine uses
workers.py    a worker's parent end; the POSIX fork-server worker
windows.py    the Windows worker and its process tree
pipes.py      a pooled run's output pipes
routing.py    what may run in a worker (`DEFAULT_PRELOAD`, `STARTUP_VARS`)
stats.py      `PoolStats` / `WorkerStats` for a view
forkserver.py, winworker.py   run inside the workers (standalone: they import nothing from here)
"""

from prismq_desktop.core.pool.pool import ResourcePool, pool_supported
from prismq_desktop.core.pool.routing import DEFAULT_PRELOAD, STARTUP_VARS
from prismq_desktop.core.pool.stats import PoolStats, WorkerStats

__all__ = ["DEFAULT_PRELOAD", "STARTUP_VARS", "PoolStats", "ResourcePool", "WorkerStats", "pool_supported"]
