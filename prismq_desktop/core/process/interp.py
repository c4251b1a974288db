"""Which Python runs user scripts when the app itself is not one (frozen), per platform.

On Windows `python.exe`/`python3.exe` on PATH is often not an interpreter but the Microsoft Store's
*app execution alias* in ``%LOCALAPPDATA%\\Microsoft\\WindowsApps``, which prints "Python was not
found" and exits 9009 unless the Store package is installed (docs.python.org/3/using/windows.html,
"The Microsoft Store package" / "Known issues": the aliases are on PATH by default). So the Windows
order is the launcher `py -3` resolved to the executable it runs (docs.python.org/3/using/
windows.html#python-launcher-for-windows), then `python`, `python3`; an alias is taken only when a
probe shows it runs. PATH lookups match PATHEXT case-insensitively (Windows file names are: PATHEXT
holds `.EXE`, the file is `py.exe`).

Everything takes the platform, PATH and PATHEXT as arguments, so the Windows rules are tested on
Linux too, with real files and real probe processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence

__all__ = ["NO_PYTHON", "choose", "is_store_alias", "no_window_flags", "probe", "which", "which_all"]

DEFAULT_PATHEXT = ".COM;.EXE;.BAT;.CMD"
CREATE_NO_WINDOW = 0x08000000  # CreateProcess "Process Creation Flags" (learn.microsoft.com)
NO_PYTHON = ("no Python interpreter found (on Windows the Microsoft Store's python.exe alias is not one); "
             "install Python from python.org or choose an interpreter in the run's settings")

Probe = Callable[[str, Sequence[str]], "str | None"]


def no_window_flags() -> int:
    """creationflags for a short helper process from the windowed app: no console window flashes
    (CREATE_NO_WINDOW, "Process Creation Flags"); 0 off Windows."""
    return getattr(subprocess, "CREATE_NO_WINDOW", CREATE_NO_WINDOW) if sys.platform == "win32" else 0


def is_store_alias(path: str) -> bool:
    """Is `path` under ...\\Microsoft\\WindowsApps (a Store app execution alias)?"""
    return "/microsoft/windowsapps/" in path.replace("\\", "/").casefold()


def which_all(name: str, path: str, pathext: str = DEFAULT_PATHEXT, platform: str = sys.platform) -> list[str]:
    """Every `name` on `path`, in PATH order. Windows: `path` is `;`-separated, `name` gets each
    PATHEXT extension unless it has one, and names compare case-insensitively (as NTFS does)."""
    found: list[str] = []
    if platform != "win32":
        for folder in path.split(os.pathsep):
            candidate = os.path.join(folder or ".", name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                found.append(candidate)
        return found
    exts = [e for e in pathext.split(";") if e]
    names = [name] if any(name.casefold().endswith(e.casefold()) for e in exts) else [name + e for e in exts]
    for folder in path.split(";"):
        folder = folder.strip().strip('"')
        if not folder:
            continue
        try:
            entries = {e.casefold(): e for e in os.listdir(folder)}
        except OSError:
            continue
        for wanted in names:
            real = entries.get(wanted.casefold())
            if real is not None and os.path.isfile(os.path.join(folder, real)):
                found.append(os.path.join(folder, real))
                break
    return found


def which(name: str, path: str, pathext: str = DEFAULT_PATHEXT, platform: str = sys.platform) -> str | None:
    """The first `name` on `path` (`which_all`'s rules)."""
    found = which_all(name, path, pathext, platform)
    return found[0] if found else None


def probe(exe: str, pre: Sequence[str] = ()) -> str | None:
    """The interpreter `exe` (with `pre` options, e.g. `-3` for py.exe) really runs: its
    sys.executable, or None when it does not run as a Python (a Store alias, a broken install).
    No console window (CREATE_NO_WINDOW) and a 20 s limit."""
    try:
        done = subprocess.run([exe, *pre, "-c", "import sys; print(sys.executable)"], capture_output=True,
                              text=True, timeout=20, stdin=subprocess.DEVNULL, creationflags=no_window_flags())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out and os.path.isfile(out) else None


def choose(platform: str, path: str, pathext: str = DEFAULT_PATHEXT, run_probe: Probe = probe) -> str | None:
    """The default interpreter for user scripts, or None when there is none.

    Windows: `py -3`'s executable, then `python`, then `python3` - a Store alias only if it runs.
    Elsewhere: `python3`, then `python`.
    """
    if platform != "win32":
        for name in ("python3", "python"):
            found = which(name, path, pathext, platform)
            if found:
                return found
        return None
    for launcher in which_all("py", path, pathext, platform):
        real = run_probe(launcher, ("-3",))
        if real:
            return real
    for name in ("python", "python3"):
        for found in which_all(name, path, pathext, platform):
            if not is_store_alias(found):
                return found
            real = run_probe(found, ())
            if real:
                return real  # the Store's Python is installed: the alias runs it
    return None
