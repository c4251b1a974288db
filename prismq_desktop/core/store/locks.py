"""Who holds a registry's write lock, so "locked by another process" can name it (pid N).

Linux lists every POSIX lock in /proc/locks (no file is opened: opening and closing the
registry's files here would drop this process's own SQLite locks on them). A WAL writer
holds byte 120 of the `-shm` file exclusively; a rollback-journal writer holds a WRITE lock
on the database file itself. Elsewhere (or when the holder is in another pid namespace) the
pid is not known and None is returned.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROC_LOCKS = "/proc/locks"
WAL_WRITE_LOCK_BYTE = "120"  # WALINDEX_LOCK_OFFSET + WAL_WRITE_LOCK in SQLite's wal.c


def lock_holder(db_path: str | os.PathLike[str]) -> int | None:
    """The pid of another process holding the write lock of the SQLite file `db_path`, if known."""
    if not sys.platform.startswith("linux"):
        return None
    files: dict[tuple[int, int, int], bool] = {}  # (major, minor, inode) -> is the -shm file
    for suffix, shm in (("", False), ("-shm", True)):
        try:
            st = os.stat(f"{Path(db_path)}{suffix}")
        except OSError:
            continue
        files[(os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)] = shm
    if not files:
        return None
    try:
        with open(PROC_LOCKS, encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    me, found = os.getpid(), None
    for line in lines:
        # "3: POSIX  ADVISORY  WRITE 29311 fe:00:2214531 120 120"; a blocked waiter's line has "->"
        parts = line.split()
        if len(parts) < 8 or parts[1] != "POSIX" or parts[3] != "WRITE":
            continue
        try:
            pid = int(parts[4])
            major, minor, inode = parts[5].split(":")
            key = (int(major, 16), int(minor, 16), int(inode))
        except ValueError:
            continue
        if pid <= 0 or pid == me or key not in files:
            continue
        if not files[key]:
            return pid  # a WRITE lock on the database file: a rollback-journal writer
        if parts[6] == WAL_WRITE_LOCK_BYTE:
            found = pid  # the WAL writer (other -shm bytes are checkpoints and read marks)
    return found
