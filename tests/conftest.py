"""Shared fixtures. Every test checks with psutil that nothing it started is left running.

On Linux the test process makes itself a child subreaper, so even a grandchild that
escaped with setsid() and lost its parent is re-parented to us and shows up in
`children(recursive=True)` - the leftover check then sees it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

SCRIPTS = Path(__file__).parent / "scripts"
PR_SET_CHILD_SUBREAPER = 36

if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _live_children() -> dict[int, psutil.Process]:
    out = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                # an orphan re-parented to us: reap it so it does not linger
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(proc.pid, os.WNOHANG)
                continue
            out[proc.pid] = proc
        except psutil.Error:
            continue
    return out


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Fail a test that leaves any process it started running (checked with psutil)."""
    before = set(_live_children())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        extra = {pid: p for pid, p in _live_children().items() if pid not in before}
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for proc in extra.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()
    names = []
    for p in extra.values():
        try:
            names.append(f"{p.pid} {p.cmdline()}")
        except psutil.Error:
            names.append(str(p.pid))
    assert not extra, f"processes left running: {names}"


@pytest.fixture(autouse=True)
def secret_values_in_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests (and the CLI processes they start) keep secret values in the data dir's secrets.json:
    a developer's own OS keyring is never written to. tests/core/test_secret_store.py starts a
    Secret Service of its own and sets PRISMQ_SECRET_STORE=auto there."""
    monkeypatch.setenv("PRISMQ_SECRET_STORE", "file")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh data dir (registry + logs) per test."""
    d = tmp_path / "home"
    d.mkdir()
    d.chmod(0o700)  # as the app makes it: tests of a wider dir make their own
    return d


@pytest.fixture
def scripts() -> Path:
    return SCRIPTS


@pytest.fixture
def fast_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let schedules fire every fraction of a second (people get a 1 s floor), for tests whose
    real-time scheduling would otherwise take seconds per fire."""
    from prismq_desktop.core.schedule import triggers

    monkeypatch.setattr(triggers, "MIN_INTERVAL_SECONDS", 0.05)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Platform markers: `posix_only` tests need what Windows does not have, `windows_only`
    tests need Windows APIs; each is skipped, with the reason, only where it cannot exist."""
    windows = sys.platform == "win32"
    for item in items:
        if windows and item.get_closest_marker("posix_only"):
            item.add_marker(pytest.mark.skip(reason="POSIX-only: the feature does not exist on Windows"))
        if not windows and item.get_closest_marker("windows_only"):
            item.add_marker(pytest.mark.skip(reason="Windows-only: Win32 API"))
