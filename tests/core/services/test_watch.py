"""Following runs another process writes to the same registry: a real second process, a real file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prismq_desktop.core import RunEngine
from prismq_desktop.core.events import ExternalRunChanged
from prismq_desktop.core.models import RunSpec, RunStatus
from prismq_desktop.core.services.watch import RegistryWatcher

PY = sys.executable


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "prismq_desktop", "--data-dir", str(home), *args], capture_output=True,
                          text=True, timeout=60)


def test_runs_of_another_process_are_seen_and_our_own_are_not_repeated(home):
    engine = RunEngine(home)
    try:
        seen: list[ExternalRunChanged] = []
        watcher = RegistryWatcher(engine.registry, seen.append)
        assert watcher.poll() == 0  # nothing new yet
        ours = engine.run_blocking(RunSpec(PY, ("-S", "-c", "print('ours')"), name="ours"))
        assert watcher.poll() == 0 and seen == []  # our own commits do not even change data_version
        out = cli(home, "run", "--name", "from-cli", PY, "--", "-S", "-c", "print('theirs')")
        assert out.returncode == 0, out.stderr
        assert watcher.poll() >= 1
        theirs = [ev.run for ev in seen if ev.run.name == "from-cli"]
        assert theirs and theirs[-1].status is RunStatus.DONE and theirs[-1].outcome.exit_code == 0
        assert all(ev.run.id != ours.id for ev in seen)
        assert watcher.poll() == 0  # each change once
        seen.clear()
        assert cli(home, "run", "--name", "second", PY, "--", "-S", "-c", "raise SystemExit(3)").returncode == 3
        watcher.poll()
        assert [(ev.run.name, ev.run.outcome.exit_code) for ev in seen if ev.run.is_active is False] == [("second", 3)]
    finally:
        engine.close()
