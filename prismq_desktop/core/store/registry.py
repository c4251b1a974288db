"""RunRegistry: every run, dead letter and schedule in one SQLite file (WAL), surviving crashes.

The engine writes every state change here *before* announcing it, so a view never shows
a state the database does not have. The tables live in their own modules; this class
only puts them on one connection. Crash recovery is reported by `store.recovery` and
carried out by the engine.
"""

from __future__ import annotations

from prismq_desktop.core.store.dead_letters import DeadLetter, DeadLetterTable
from prismq_desktop.core.store.query import RunQuery
from prismq_desktop.core.store.runs import RunTable
from prismq_desktop.core.store.schedules import ScheduleTable
from prismq_desktop.core.store.schema import SCHEMA_VERSION, RegistryError

__all__ = ["SCHEMA_VERSION", "DeadLetter", "RegistryError", "RunQuery", "RunRegistry"]


class RunRegistry(RunTable, DeadLetterTable, ScheduleTable):
    """Thread-safe access to one registry file: runs, dead letters, schedules."""

    def __enter__(self) -> RunRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
