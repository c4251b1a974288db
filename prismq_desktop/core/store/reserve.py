"""Room kept on the data dir's disk for a run's last words.

A child (or anything else) can fill the disk at the very moment its run ends; then neither
the log's end record nor the registry's final status would fit, and the outcome would be
lost. The engine keeps `.space-reserve` (256 KiB, 0600) on each filesystem of the data dir
(the registry's, and the logs' when they are elsewhere) and deletes it when that last write
finds the disk full, so the write is tried again at once with room for it: the end of a run
is recorded deterministically, not after a timeout. It is made again when there is room.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable
from pathlib import Path

from prismq_desktop.core import paths

RESERVE_NAME = ".space-reserve"
RESERVE_BYTES = 256 * 1024


class SpaceReserve:
    """A file of `size` bytes in each of `folders` that is on a filesystem of its own."""

    def __init__(self, folders: Iterable[str | os.PathLike[str]], size: int = RESERVE_BYTES) -> None:
        self.folders = [Path(f) for f in folders]
        self.size = size
        self.released = 0  # how many times room was given back (for tests and the report)

    def _files(self) -> list[Path]:
        """One reserve file per filesystem among the folders that exist."""
        seen: set[int] = set()
        out = []
        for folder in self.folders:
            try:
                dev = folder.stat().st_dev
            except OSError:
                continue
            if dev not in seen:
                seen.add(dev)
                out.append(folder / RESERVE_NAME)
        return out

    def ensure(self) -> bool:
        """Make the missing reserve files (only when they fit); True when all are in place."""
        ok = True
        for path in self._files():
            try:
                if path.stat().st_size == self.size:
                    continue
            except OSError:
                pass
            ok = self._make(path) and ok
        return ok

    def _make(self, path: Path) -> bool:
        tmp = path.with_name(f"{path.name}.{os.getpid()}")
        try:
            fd = paths.open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        except OSError:
            return False
        try:
            try:
                os.posix_fallocate(fd, 0, self.size)  # real blocks, not a sparse file
            except (AttributeError, OSError) as exc:
                if getattr(exc, "errno", None) == errno.ENOSPC:
                    raise
                block = b"\0" * 65536
                left = self.size
                while left > 0:
                    left -= os.write(fd, block[:left])
            os.close(fd)
            fd = -1
            os.replace(tmp, path)
            return True
        except OSError:
            return False
        finally:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()

    def release(self) -> bool:
        """Give the room back (the disk is full right now); True if any was freed."""
        freed = False
        for path in self._files():
            try:
                path.unlink()
            except OSError:
                continue
            freed = True
        if freed:
            self.released += 1
        return freed
