"""The reference examples' harness: a data dir in $PRISMQ_DESKTOP_HOME (so `TaskOrchestrator()`
with no arguments, `Client()` and children that submit on their own all use it), the small target
scripts the examples name in the working directory, and `example(coro)` that runs an example in
its own event loop and then closes whatever orchestrators it made (their runs are cancelled).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from prismq_desktop import tasks
from prismq_desktop.compat import shutdown

TARGETS = Path(__file__).parent / "targets"


@pytest.fixture
def work(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example's working directory, holding the scripts it names (validate_data.py, ...)."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    for script in TARGETS.glob("*.py"):
        shutil.copy(script, cwd / script.name)
    (cwd / "data.csv").write_text("id,name\n1,a\n2,b\n3,c\n")
    monkeypatch.setenv("PRISMQ_DESKTOP_HOME", str(home))
    monkeypatch.chdir(cwd)
    tasks.set_orchestrator(None)
    yield cwd
    tasks.set_orchestrator(None)


@pytest.fixture
def env_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Path]:
    """`env_dir(name, VAR)`: a fresh directory whose path the example's tasks find in $VAR."""
    def make(name: str, var: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        monkeypatch.setenv(var, str(d))
        return d
    return make


async def _closing(body: Awaitable[Any]) -> Any:
    try:
        return await body
    finally:
        chosen = list(tasks._chosen)
        await shutdown()
        for orch in chosen:
            await orch.close()
        tasks.set_orchestrator(None)


@pytest.fixture
def example(work: Path) -> Callable[[Callable[[], Awaitable[Any]]], Any]:
    def run(main: Callable[[], Awaitable[Any]]) -> Any:
        return asyncio.run(_closing(main()))
    return run
