"""The Windows decisions that are pure logic, checked on every platform (platform as a parameter)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from prismq_desktop.core.pool.windows import worker_interpreter
from prismq_desktop.core.process import launch
from prismq_desktop.core.process.supervisor import WINDOWS_STOP, _how_it_stopped


def test_frozen_app_restarts_itself_without_dash_m():
    """Bug 8: the bundle's EXE takes `-m` as a command; a source install needs it."""
    assert launch.self_command(frozen=True, executable="C:\\app\\prismq-desktop-cli.exe") == ["C:\\app\\prismq-desktop-cli.exe"]
    assert launch.self_command(frozen=False, executable="/usr/bin/python3") == ["/usr/bin/python3", "-m", "prismq_desktop"]
    assert launch.self_command() == [sys.executable, "-m", "prismq_desktop"]  # these tests are not frozen


def test_detached_flags_break_away_only_when_asked():
    assert launch.detached_flags(True) == 0x00000008 | 0x01000000
    assert launch.detached_flags(False) == 0x00000008


def test_venv_worker_starts_the_base_interpreter_with_the_launcher_variable():
    """Bug 1, as multiprocessing does it (popen_spawn_win32.py, bpo-35797)."""
    venv, base = "C:\\proj\\.venv\\Scripts\\python.exe", "C:\\Python311\\python.exe"
    prog, env = worker_interpreter(venv, {"A": "1"}, executable=venv, base=base)
    assert prog == base and env == {"A": "1", "__PYVENV_LAUNCHER__": venv}
    other = "C:\\elsewhere\\python.exe"
    assert worker_interpreter(other, {"A": "1"}, executable=venv, base=base) == (other, {"A": "1"})
    assert worker_interpreter(base, {}, executable=base, base=base) == (base, {})  # no venv: as given


def test_soft_timeout_wording_is_truthful_on_windows():
    job = SimpleNamespace(stop_requested_at=None, grace_period=5.0)
    assert _how_it_stopped(job, 1, windows=True) == WINDOWS_STOP  # type: ignore[arg-type]
    assert "s grace" not in WINDOWS_STOP and "at once" in WINDOWS_STOP
    assert _how_it_stopped(job, 3, windows=False) == "exited with code 3"  # type: ignore[arg-type]
