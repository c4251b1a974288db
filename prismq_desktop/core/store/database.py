"""The one SQLite connection a registry holds, and who this process is (the owner of its runs)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

import psutil

from prismq_desktop.core import paths
from prismq_desktop.core.models import RunSpec
from prismq_desktop.core.secrets import REF_PREFIX, SecretVault, references
from prismq_desktop.core.store import schema


def move_aside(path: str | os.PathLike[str], when: float | None = None) -> Path:
    """Rename a registry file that cannot be used (with its -wal/-shm) to
    `<name>.unusable-<YYYYmmdd-HHMMSS>`, so a fresh one is made; never deletes anything."""
    import time

    src = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    dest = src.with_name(f"{src.name}.unusable-{stamp}")
    n = 1
    while dest.exists():
        n += 1
        dest = src.with_name(f"{src.name}.unusable-{stamp}-{n}")
    os.rename(src, dest)
    for suffix in ("-wal", "-shm"):
        side = src.with_name(src.name + suffix)
        if side.exists():
            os.rename(side, dest.with_name(dest.name + suffix))
    return dest


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

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float | None = None) -> None:
        """`busy_timeout`: seconds a write waits for another process's lock before
        `RegistryLocked` (default 30, or $PRISMQ_REGISTRY_BUSY_TIMEOUT)."""
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise schema.RegistryReadOnly(
                f"the data dir {self.path.parent} cannot be created ({exc.strerror or exc}); "
                "make its parent writable or start with another data dir (--data-dir)",
                self.path,
            ) from exc
        _private_database(self.path)
        self._lock = threading.RLock()
        self._db: sqlite3.Connection = schema.connect(self.path, busy_timeout)
        self._owner = current_owner()
        # secret-looking env values are stored as references; the values live beside the registry
        self.vault = SecretVault(self.path.parent / "secrets.json")

    def stored_spec(self, spec: RunSpec, *, refresh: bool = True) -> str:
        """The JSON a spec is stored as: secret-looking env values as vault references
        (`refresh=False`: a snapshot update of a row already stored, see SecretVault.protect_env)."""
        protected = self.vault.protect_env(spec.env, refresh=refresh)
        if protected is None:
            return spec.json
        return json.dumps({**spec.to_dict(), "env": protected}, sort_keys=True)

    def _secret_refs(self, sql: str, params: tuple[object, ...] = ()) -> set[str]:
        """The vault references in the specs a query returns (its one column: a spec's JSON)."""
        found: set[str] = set()
        for (text,) in self._db.execute(sql, params):
            if text and REF_PREFIX in text:
                found |= references(text)
        return found

    def release_secrets(self, candidates: set[str]) -> int:
        """After a delete: the values of `candidates` no run, schedule or dead letter refers to any
        more leave their store (the OS credential store or secrets.json); how many did."""
        if not candidates:
            return 0
        like = f"%{REF_PREFIX}%"
        with self._lock:
            used = set()
            for table in ("runs", "schedules", "dead_letters"):
                used |= self._secret_refs(f"SELECT spec FROM {table} WHERE spec LIKE ?", (like,))
            try:  # saved tasks (store/tasks.py) refer to the same values
                used |= references((self.path.parent / "tasks.json").read_text("utf-8", "replace"))
            except FileNotFoundError:
                pass
            except OSError:
                return 0  # cannot tell what the saved tasks use: forget nothing
        return self.vault.forget(candidates - used)

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
