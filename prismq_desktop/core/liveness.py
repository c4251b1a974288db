"""Is a recorded process still the one that was recorded (pid + start time)? One small module,
shared by crash recovery and the API endpoint check, that a short CLI call can import alone."""

from __future__ import annotations

import psutil


def process_alive(pid: int | None, create_time: float | None) -> bool:
    """The process `pid` exists, is not a zombie, and (if known) started at `create_time`."""
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 0.01
    except psutil.Error:
        return False
