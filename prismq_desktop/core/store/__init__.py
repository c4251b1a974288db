"""Persistence: the SQLite registry of runs, dead letters, schedules, and saved tasks.

schema (migrations) < database (the connection) < runs / dead_letters / schedules (tables)
< registry (one class over all of them); query builds every history query; recovery
reports runs whose owner died.
"""

from prismq_desktop.core.store.dead_letters import DeadLetter
from prismq_desktop.core.store.query import RunQuery
from prismq_desktop.core.store.recovery import Orphan, find_orphans
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.core.store.schema import (
    SCHEMA_VERSION,
    RegistryCorrupt,
    RegistryError,
    RegistryFull,
    RegistryLocked,
    RegistryNewer,
    RegistryReadOnly,
    RegistryUnusable,
)

__all__ = [
    "SCHEMA_VERSION",
    "DeadLetter",
    "Orphan",
    "RegistryCorrupt",
    "RegistryError",
    "RegistryFull",
    "RegistryLocked",
    "RegistryNewer",
    "RegistryReadOnly",
    "RegistryUnusable",
    "RunQuery",
    "RunRegistry",
    "find_orphans",
]
