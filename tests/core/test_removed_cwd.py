"""The app's own working directory removed under it (started from a temp dir or a worktree that
was deleted): runs with a cwd of their own still start, commands and modules as well as scripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CODE = r"""
import asyncio, os, sys, tempfile
from prismq_desktop.core import RunEngine, RunSpec
home, gone = sys.argv[1], tempfile.mkdtemp()
os.chdir(gone)
os.rmdir(gone)  # os.getcwd() now raises FileNotFoundError

async def main():
    engine = RunEngine(home)
    try:
        for spec in (RunSpec("true", cwd="/"), RunSpec("true", cwd="/"),  # the second from the cache path
                     RunSpec(sys.executable, ("-c", "print('ok')"), cwd="/")):
            run = await (await engine.start(spec)).wait()
            print(run.outcome.kind.value, run.outcome.message or "")
    finally:
        await engine.shutdown()

asyncio.run(main())
"""


def test_runs_start_when_the_apps_working_directory_is_gone(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-c", CODE, str(tmp_path / "home")], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:3] == ["succeeded ", "succeeded ", "succeeded "], res.stdout + res.stderr
