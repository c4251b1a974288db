"""The interpreter choice with a fake PATH of real files, run by real probe processes.

The Windows rules (`py -3` first, PATHEXT matched case-insensitively, the Store's alias rejected
when it does not run) are checked here on Linux too: the "executables" are real shell scripts
named like their Windows counterparts, and `interp.probe` really starts them.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from prismq_desktop.core.process import interp

STUB = '#!/bin/sh\necho "Python was not found; run without arguments to install from the Microsoft Store" >&2\nexit 49\n'


def _exe(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _py_launcher(path: Path) -> Path:
    """A fake py.exe: drops -3 and runs this Python (whose sys.executable is a real file)."""
    return _exe(path, f'#!/bin/sh\n[ "$1" = "-3" ] && shift\nexec "{sys.executable}" "$@"\n')


def _store(tmp: Path) -> Path:
    return tmp / "Users" / "me" / "AppData" / "Local" / "Microsoft" / "WindowsApps"


@pytest.mark.posix_only  # the fake executables are #! scripts (Windows: test_windows.py)
def test_store_alias_that_does_not_run_is_rejected(tmp_path):
    apps = _store(tmp_path)
    _exe(apps / "python.exe", STUB)
    _exe(apps / "python3.exe", STUB)
    assert interp.choose("win32", str(apps), ".COM;.EXE") is None


@pytest.mark.posix_only  # the fake executables are #! scripts (Windows: test_windows.py)
def test_a_real_python_after_the_alias_on_path_is_found(tmp_path):
    apps = _store(tmp_path)
    _exe(apps / "python.exe", STUB)
    real = _exe(tmp_path / "Python311" / "python.exe", "#!/bin/sh\nexit 0\n")
    assert interp.choose("win32", f"{apps};{real.parent}", ".COM;.EXE") == str(real)


@pytest.mark.posix_only  # the fake executables are #! scripts (Windows: test_windows.py)
def test_py_launcher_first_resolved_to_its_executable_pathext_in_any_case(tmp_path):
    apps = _store(tmp_path)
    _exe(apps / "python.exe", STUB)
    _py_launcher(tmp_path / "Windows" / "py.exe")  # PATHEXT says .EXE, the file is py.exe
    other = _exe(tmp_path / "Python311" / "python.exe", "#!/bin/sh\nexit 0\n")
    chosen = interp.choose("win32", f"{apps};{tmp_path / 'Windows'};{other.parent}", ".COM;.EXE;.BAT")
    assert chosen is not None and os.path.samefile(chosen, sys.executable)


@pytest.mark.posix_only  # the fake executables are #! scripts (Windows: test_windows.py)
def test_a_broken_py_launcher_falls_back_to_python(tmp_path):
    _exe(tmp_path / "Windows" / "PY.EXE", "#!/bin/sh\nexit 103\n")
    real = _exe(tmp_path / "Python311" / "python.exe", "#!/bin/sh\nexit 0\n")
    assert interp.choose("win32", f"{tmp_path / 'Windows'};{real.parent}", ".EXE") == str(real)


@pytest.mark.posix_only  # the fake executables are #! scripts (Windows: test_windows.py)
def test_an_installed_store_python_is_accepted_through_its_alias(tmp_path):
    apps = _store(tmp_path)
    _py_launcher(apps / "python.exe")  # an alias that runs: the Store's Python is installed
    chosen = interp.choose("win32", str(apps), ".EXE")
    assert chosen is not None and os.path.samefile(chosen, sys.executable)


@pytest.mark.posix_only  # the fake executables are #! scripts (Windows: test_windows.py)
def test_posix_order_python3_then_python(tmp_path):
    p3 = _exe(tmp_path / "a" / "python3", "#!/bin/sh\n")
    _exe(tmp_path / "b" / "python", "#!/bin/sh\n")
    assert interp.choose("linux", f"{tmp_path / 'b'}{os.pathsep}{p3.parent}") == str(p3)
    assert interp.choose("linux", str(tmp_path / "nothing")) is None


def test_is_store_alias_any_case():
    assert interp.is_store_alias(r"C:\Users\me\AppData\Local\Microsoft\WindowsApps\python3.exe")
    assert interp.is_store_alias(r"c:\users\me\appdata\local\MICROSOFT\windowsapps\python.exe")
    assert not interp.is_store_alias(r"C:\Python311\python.exe")


@pytest.mark.posix_only  # the fake executables are #! scripts (Windows: test_windows.py)
def test_probe_of_something_that_is_not_python_is_none(tmp_path):
    assert interp.probe(str(_exe(tmp_path / "x", STUB))) is None
    assert interp.probe(str(tmp_path / "missing")) is None
    assert interp.probe(sys.executable) is not None
