"""The one SQLite connection a registry holds, and who this process is (the owner of its runs)."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import psutil

from prismq_desktop.core import paths
from prismq_desktop.core.store import schema


def current_owner() -> tuple[int, float]:
    proc = psutil.Process()
    return proc.pid, proc.create_time()


def _private_database(path: Path) -> None:
    """The registry file exists 0600 before SQLite opens it, so its -wal/-shm (which SQLite
    creates with the database file's mode) are 0600 too; older wider ones are tightened."""
    if str(path) == ":memory:" or not paths.POSIX:
        return
    try:
        os.close(paths.open_private(path, os.O_RDWR | os.O_CREAT))
    except OSError:
        return  # SQLite says what is wrong, in its own words
    for suffix in ("-wal", "-shm", "-journal"):
        paths.make_private_file(f"{path}{suffix}")


class Database:
    """A thread-safe connection to one registry file (WAL); the tables share it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _private_database(self.path)
        self._lock = threading.RLock()
        self._db: sqlite3.Connection = schema.connect(self.path)
        self._owner = current_owner()

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @property
    def owner(self) -> tuple[int, float]:
        """(pid, create time) of this process, stamped on every run it creates."""
        return self._owner

    def close(self) -> None:
        with self._lock:
            self._db.close()
