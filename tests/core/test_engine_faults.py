"""Faults around the engine: a registry locked past its busy timeout when a run ends.

A real second process holds `BEGIN EXCLUSIVE` on the registry file for longer than the
(lowered) busy timeout and then lets go: the run's outcome must be kept, retried and stored
as it really was, announced only once stored, and the CLI's exit code must be the child's.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prismq_desktop.core import OutcomeKind, RunChanged, RunEngine, RunMode, RunRegistry, RunSpec, RunStatus
from prismq_desktop.core.paths import registry_path
from prismq_desktop.core.store import RegistryLocked
from tests.core.test_cli import argv as cli_argv
from tests.core.test_cli import clean_env
from tests.helpers import LockHolder

PY = sys.executable
BUSY = 0.3  # the lowered busy timeout: the holder keeps the lock several times longer


def test_registry_locked_is_a_one_line_error(tmp_path: Path, scripts: Path) -> None:
    db = tmp_path / "registry.sqlite"
    RunRegistry(db).close()
    holder = LockHolder(db, scripts)
    try:
        with RunRegistry(db, busy_timeout=BUSY) as reg, pytest.raises(RegistryLocked) as err:
            reg.create(RunSpec("x.py"))
        assert f"locked by another process (pid {holder.proc.pid}) for over 0.3s" in str(err.value)
        assert err.value.pid == holder.proc.pid
        assert "\n" not in str(err.value)
    finally:
        holder.close()


@pytest.mark.parametrize("mode", [RunMode.ASYNC, RunMode.THREADED])
def test_outcome_survives_a_lock_longer_than_the_busy_timeout(tmp_path: Path, scripts: Path, mode: RunMode) -> None:
    home = tmp_path / "home"
    go = tmp_path / "go"

    async def main() -> None:
        engine = RunEngine(home, registry=RunRegistry(registry_path(home), busy_timeout=BUSY))
        finished: list[RunChanged] = []
        engine.bus.subscribe_sync(
            lambda ev: finished.append(ev) if isinstance(ev, RunChanged) and ev.kind == "finished" else None
        )
        spec = RunSpec(str(scripts / "wait_for_file.py"), (str(go), "3"), interpreter=PY)
        handle = await engine.start(spec, mode=mode)
        deadline = time.monotonic() + 20
        while handle.run.status is not RunStatus.RUNNING and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        holder = LockHolder(registry_path(home), scripts)
        try:
            go.touch()
            # the run ends while the lock is held: its save fails (several times) and is kept
            deadline = time.monotonic() + 4 * BUSY + 1
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert handle.run.status is RunStatus.DONE  # the snapshot in memory has it...
            assert engine.unsaved == 1
            assert not finished, "announced before it was stored"
            assert not handle.done  # ...but nobody is told it ended until it is stored
            holder.release()
        finally:
            holder.close()
        run = await asyncio.wait_for(handle.wait(), 20)
        assert run.outcome is not None and run.outcome.kind is OutcomeKind.FAILED and run.outcome.exit_code == 3
        assert [ev.run.outcome for ev in finished] == [run.outcome]
        stored = engine.registry.get(handle.id)
        assert stored is not None and stored.outcome == run.outcome
        await engine.shutdown()

    asyncio.run(main())
    with RunRegistry(registry_path(home)) as reg:  # and a later start does not call it interrupted
        assert RunEngine(home, registry=reg).recovered == []
        (run,) = reg.query()
        assert run.outcome is not None and run.outcome.kind is OutcomeKind.FAILED


@pytest.mark.parametrize("mode", ["async", "local"])
def test_cli_exit_code_is_the_childs_after_a_long_lock(tmp_path: Path, scripts: Path, mode: str) -> None:
    home = tmp_path / "home"
    go = tmp_path / "go"
    RunRegistry(registry_path(home)).close()
    env = clean_env({"PRISMQ_REGISTRY_BUSY_TIMEOUT": str(BUSY)})
    proc = subprocess.Popen(cli_argv(home, "run", "--mode", mode, "--python", PY, str(scripts / "wait_for_file.py"),
                                     "--", str(go), "7"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    holder = None
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        holder = LockHolder(registry_path(home), scripts)
        go.touch()
        time.sleep(4 * BUSY + 0.5)
        assert proc.poll() is None, "the CLI exited while the outcome was not stored"
        holder.release()
        out, err = proc.communicate(timeout=30)
    finally:
        if holder is not None:
            holder.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 7, err
    assert b"Traceback" not in err and b"never retrieved" not in err, err
    with RunRegistry(registry_path(home)) as reg:
        run = reg.get(1)
    assert run is not None and run.outcome is not None
    assert run.outcome.kind is OutcomeKind.FAILED and run.outcome.exit_code == 7
