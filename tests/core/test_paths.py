"""The data dir is private by default: 0700 dirs and 0600 files whatever the umask (POSIX).

Real CLI commands in subprocesses and a real engine in-process, under umask 022 in a fresh
dir; modes read with os.stat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from prismq_desktop.core import RunSpec, paths
from prismq_desktop.core.engine import RunEngine
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.core.store.tasks import TaskStore
from tests.core.test_cli import cli

# POSIX-only: POSIX file modes and umask (Windows has ACLs: os.chmod sets only the read-only flag there)
pytestmark = pytest.mark.posix_only

PY = sys.executable


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(os.stat(path).st_mode))


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    return tmp_path / "fresh" / "data"  # not made yet: the app makes it


def test_cli_makes_a_private_data_dir_under_umask_022(fresh: Path) -> None:
    with umask(0o022):
        res = cli(fresh, "run", "--", PY, "-c", "print('hi')")
        assert res.returncode == 0, res.stderr
        res = cli(fresh, "schedule", "add", "--every", "3600", "nightly", PY, "-c", "pass")
        assert res.returncode == 0, res.stderr
        res = cli(fresh, "history")
        assert res.returncode == 0, res.stderr
    assert b"readable by other users" not in res.stderr  # nothing to tighten in a dir it made itself
    assert mode(fresh) == "0o700"
    assert mode(fresh / "logs") == "0o700"
    assert mode(fresh / "registry.sqlite3") == "0o600"
    logs = sorted((fresh / "logs").iterdir())
    assert logs, "the run wrote a log"
    assert {p.name: mode(p) for p in logs} == {p.name: "0o600" for p in logs}
    leftover = [p for p in fresh.iterdir() if p.is_file() and mode(p) != "0o600"]
    assert leftover == []


def test_engine_registry_wal_shm_logs_and_tasks_are_0600(fresh: Path) -> None:
    async def main() -> None:
        async with RunEngine(fresh) as engine:
            ok = await engine.run(RunSpec(PY, ("-c", "print('out')")))
            bad = await engine.run(RunSpec(str(fresh / "no-such-program")))  # failed_to_start still logs
            wal, shm = Path(f"{engine.registry.path}-wal"), Path(f"{engine.registry.path}-shm")
            assert wal.exists() and shm.exists(), "WAL mode keeps both while the registry is open"
            seen = {p: mode(p) for p in (engine.registry.path, wal, shm)}
            for handle in (ok, bad):
                assert handle.run.log_path
                seen[Path(handle.run.log_path)] = mode(Path(handle.run.log_path))
            assert set(seen.values()) == {"0o600"}, seen

    with umask(0o022):
        asyncio.run(main())
        store = TaskStore(fresh / "tasks.json")
        store.put("t", RunSpec(PY, ("-c", "pass")), {})
    assert mode(fresh) == "0o700" and mode(fresh / "logs") == "0o700"
    assert mode(fresh / "tasks.json") == "0o600"


def test_a_wide_data_dir_is_tightened_and_the_user_told_once(tmp_path: Path) -> None:
    home = tmp_path / "old"
    with umask(0o022):
        (home / "logs").mkdir(parents=True)
        os.chmod(home, 0o755)
        with RunRegistry(home / "registry.sqlite3") as reg:  # an older version's files: 0644
            assert reg.count() == 0
        os.chmod(home / "registry.sqlite3", 0o644)
        old_log = home / "logs" / "run-999.log"
        old_log.write_bytes(b"PRISMQ-LOG 1\n")
        os.chmod(old_log, 0o644)
        first = cli(home, "history")
        second = cli(home, "history")
    assert first.returncode == 0 and second.returncode == 0, (first.stderr, second.stderr)
    told = [line for line in first.stderr.decode().splitlines() if "readable by other users" in line]
    assert len(told) == 1, first.stderr
    assert told[0].startswith("prismq-desktop: ") and str(home) in told[0] and "0700" in told[0]
    assert b"readable by other users" not in second.stderr  # once: it is private now
    assert mode(home) == "0o700" and mode(home / "logs") == "0o700"
    assert mode(home / "registry.sqlite3") == "0o600" and mode(old_log) == "0o600"


def test_tightening_is_a_log_warning_in_process(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = tmp_path / "wide"
    (home / "logs").mkdir(parents=True)
    os.chmod(home / "logs", 0o755)
    (home / "logs" / "run-1.log").write_bytes(b"PRISMQ-LOG 1\n")
    with caplog.at_level(logging.WARNING, logger="prismq_desktop.core.paths"):
        assert paths.data_dir(home) == home.resolve()
        paths.data_dir(home)
    warnings = [r for r in caplog.records if "readable by other users" in r.getMessage()]
    assert len(warnings) == 1
    assert mode(home / "logs") == "0o700" and mode(home / "logs" / "run-1.log") == "0o600"
    assert any(str(home.resolve()) in text for text in paths.notices())


def test_an_empty_wide_dir_is_tightened_without_a_word(tmp_path: Path) -> None:
    """`mkdir d && prismq-desktop --data-dir d ...`: nothing was exposed, so nothing is said."""
    home = tmp_path / "made-by-hand"
    with umask(0o022):
        home.mkdir()
        res = cli(home, "history")
    assert res.returncode == 0 and res.stderr == b"", res.stderr
    assert mode(home) == "0o700" and mode(home / "logs") == "0o700"
