"""Registry problems are one line each, from the store and from the CLI (no traceback)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from prismq_desktop.core import RunRegistry, RunSpec
from prismq_desktop.core.paths import registry_path
from prismq_desktop.core.store import (
    RegistryCorrupt,
    RegistryError,
    RegistryNewer,
    RegistryReadOnly,
    RunQuery,
)
from tests.core.test_cli import argv as cli_argv
from tests.core.test_cli import clean_env
from tests.helpers import tmpfs


def random_bytes(db: Path) -> None:
    db.write_bytes(os.urandom(64 * 1024))


def scrambled_pages(db: Path) -> None:
    with RunRegistry(db) as reg:
        for _ in range(200):
            reg.create(RunSpec("x.py", name="n" * 300))
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(db.read_bytes())
    for page in range(1, len(data) // 4096):
        data[page * 4096 + 100 : page * 4096 + 4000] = os.urandom(3900)
    db.write_bytes(bytes(data))


def garbled_schema_name(db: Path) -> None:
    """A damaged schema row whose name is not UTF-8: SQLite quotes it in its error message, which
    Python's sqlite3 then fails to decode (UnicodeDecodeError, not an sqlite3 error). Scrambled
    pages hit this now and then; this makes it certain."""
    with RunRegistry(db) as reg:
        reg.create(RunSpec("x.py"))
    con = sqlite3.connect(db)
    con.execute("PRAGMA writable_schema=ON")
    con.execute("UPDATE sqlite_schema SET name = CAST(X'72ff90' AS TEXT), sql = 'CREATE TABLE broken garbage' "
                "WHERE name = 'runs'")
    con.commit()
    con.close()


def a_directory(db: Path) -> None:
    db.mkdir(parents=True)


def from_the_future(db: Path) -> None:
    RunRegistry(db).close()
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version=999")
    con.commit()
    con.close()


CASES = [
    (random_bytes, RegistryCorrupt, "is damaged (file is not a database)"),
    (scrambled_pages, RegistryCorrupt, "is damaged (database disk image is malformed)"),
    (garbled_schema_name, RegistryCorrupt, "is damaged (database disk image is malformed)"),
    (a_directory, RegistryCorrupt, "is a directory, not a file"),
    (from_the_future, RegistryNewer, "written by a newer PrismQ Desktop (schema 999"),
]


@pytest.mark.parametrize(("damage", "kind", "text"), CASES, ids=[c[0].__name__ for c in CASES])
def test_store_says_what_is_wrong(tmp_path: Path, damage, kind, text) -> None:
    db = tmp_path / "registry.sqlite"
    damage(db)
    with pytest.raises(kind) as err, RunRegistry(db) as reg:
        reg.query(RunQuery.of(None, limit=500))
    message = str(err.value)
    assert text in message and "\n" not in message
    assert "--data-dir" in message  # and what to do


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
@pytest.mark.parametrize(("damage", "kind", "text"), CASES, ids=[c[0].__name__ for c in CASES])
@pytest.mark.parametrize("command", [("history",), ("run", "--dry-run", "x.py")])
def test_cli_prints_one_line(tmp_path: Path, damage, kind, text, command) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    damage(registry_path(home))
    res = subprocess.run(cli_argv(home, *command), env=clean_env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res
    assert "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and text in res.stderr, res.stderr


def test_read_only_data_dir(tmp_path: Path) -> None:
    """A read-only mount (root ignores permission bits, so a real ro tmpfs)."""
    with tmpfs(tmp_path / "ro", "4m") as where:
        home = where / "home"
        res = subprocess.run(cli_argv(home, "history"), env=clean_env(), capture_output=True, timeout=60)
        assert res.returncode == 0, res  # the registry exists
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        with pytest.raises(RegistryReadOnly) as err:
            RunRegistry(registry_path(home))
        assert "read-only" in str(err.value) and "\n" not in str(err.value)
        for command in (("history",), ("run", "--dry-run", "x.py")):
            res = subprocess.run(cli_argv(home, *command), env=clean_env(), capture_output=True, text=True, timeout=60)
            assert res.returncode == 1, res
            assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_every_kind_is_a_registry_error() -> None:
    for kind in (RegistryCorrupt, RegistryNewer, RegistryReadOnly):
        assert issubclass(kind, RegistryError)
