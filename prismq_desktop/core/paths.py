"""Where PrismQ keeps its data: registry database and per-run logs — private to the user.

On POSIX the data dir and its `logs/` are mode 0700 and every file PrismQ creates in them
(the registry and its -wal/-shm, run logs, tasks.json, settings.ini, app.log) is 0600,
whatever the umask: run output and environments are nobody else's business. A data dir
found wider than that (made by an older version, or by hand) is tightened, files and all,
and, when it held files, the user is told once: a log warning, and whatever `notice` is set to (the CLI prints
one line on stderr). Exports go where the user asks and are left as the user made them.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

import platformdirs

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # with no logging set up (the CLI), `notice` is what the user sees

ENV_HOME = "PRISMQ_DESKTOP_HOME"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
POSIX = os.name == "posix"

#: Also called with each "permissions tightened" sentence, and where secret values went when no OS
#: credential store took them (core/secrets.py); the CLI: one line on stderr.
notice: Callable[[str], object] | None = None
_told: dict[str, str] = {}  # data dir -> what it was told (once per process)


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """`--data-dir` beats `PRISMQ_DESKTOP_HOME`, which beats the platform's user data dir.

    Created 0700 (with `logs/`); an existing one that others can read is tightened.
    """
    if override:
        path = Path(override).expanduser()
    elif os.environ.get(ENV_HOME):
        path = Path(os.environ[ENV_HOME]).expanduser()
    else:
        path = Path(platformdirs.user_data_dir("prismq-desktop", appauthor=False))
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    (path / "logs").mkdir(exist_ok=True, mode=PRIVATE_DIR_MODE)
    if POSIX:
        _make_private(path)
    return path


def _make_private(home: Path) -> None:
    widened = []
    for folder in (home, home / "logs"):
        before = _mode(folder)
        if before is None or before == PRIVATE_DIR_MODE:
            continue
        try:
            os.chmod(folder, PRIVATE_DIR_MODE)
        except OSError as exc:  # not ours (a shared dir given on purpose): say so, go on
            log.warning("cannot make %s private (mode %s): %s", folder, oct(before), exc)
            continue
        if before & 0o077:
            widened.append(f"{folder} was {oct(before)[2:]}")
    if not widened:
        return
    files = found = 0  # a one-time migration: what an older version left readable
    for folder in (home, home / "logs"):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                found += 1
                files += make_private_file(entry.path)
    key = str(home)
    if not found:
        return  # an empty dir (just made with mkdir for --data-dir): nothing was exposed, nothing to say
    if key in _told:
        return
    text = (f"the data dir was readable by other users ({'; '.join(widened)}); it is now private "
            f"(0700, {files} file(s) made 0600)")
    _told[key] = text
    log.warning("%s: %s", home, text)
    if notice is not None:
        notice(f"{home}: {text}")


def notices() -> list[str]:
    """What this process has told about tightened data dirs (for a log set up later)."""
    return [f"{home}: {text}" for home, text in _told.items()]


def _mode(path: str | os.PathLike[str]) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def make_private_file(path: str | os.PathLike[str]) -> int:
    """chmod an existing file to 0600 (POSIX); 1 if it changed, 0 if not (or it cannot be)."""
    if not POSIX:
        return 0
    before = _mode(path)
    if before is None or before == PRIVATE_FILE_MODE:
        return 0
    try:
        os.chmod(path, PRIVATE_FILE_MODE)
    except OSError:
        return 0
    return 1


def open_private(path: str | os.PathLike[str], flags: int = os.O_WRONLY | os.O_APPEND | os.O_CREAT) -> int:
    """os.open a file that is 0600 whatever the umask (an existing wider one is tightened); the fd."""
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE_MODE)
    if POSIX:
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE_MODE:
                os.fchmod(fd, PRIVATE_FILE_MODE)
        except OSError:
            pass  # not ours: it stays as its owner made it
    return fd


def registry_path(home: Path) -> Path:
    return home / "registry.sqlite3"


def log_path(home: Path, run_id: int) -> Path:
    return home / "logs" / f"run-{run_id}.log"
