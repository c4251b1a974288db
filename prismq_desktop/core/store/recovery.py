"""Crash recovery, the store's half: report runs whose owning process is gone.

The store only reports; the engine decides what to do (stop a tree left alive, end the
run `interrupted`) and does it through its one change function.
"""

from __future__ import annotations

from dataclasses import dataclass

from prismq_desktop.core.liveness import process_alive
from prismq_desktop.core.models import Run
from prismq_desktop.core.store.runs import RunTable

__all__ = ["Orphan", "find_orphans", "process_alive"]


@dataclass(frozen=True)
class Orphan:
    """An active run whose owner died; `tree_alive` says its own process is still there."""

    run: Run
    tree_alive: bool


def find_orphans(runs: RunTable) -> list[Orphan]:
    found = []
    for run in runs.active_runs():
        if process_alive(run.owner_pid, run.owner_create_time):
            continue
        alive = run.status.value != "queued" and process_alive(run.pid, run.pid_create_time)
        found.append(Orphan(run, alive))
    return found
