"""Atomic, private file writes: a temp file in the same folder, fsynced, then os.replace.

Files PrismQ creates are mode 0600 (saved tasks hold real environment values, exports
hold run history); a reader never sees a half-written file, and a crash mid-write
leaves the previous version in place.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

PRIVATE_MODE = 0o600


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], *, newline: str | None = None) -> Iterator[IO[str]]:
    """Yield a text file (UTF-8); on a clean exit it replaces `path`, on an error `path` is untouched."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, PRIVATE_MODE)  # mkstemp already did; explicit for platforms that differ
        replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


#: Windows: how long a replace waits out another process holding the target open.
REPLACE_RETRY_FOR = 2.0


def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, windows: bool = sys.platform == "win32",
            retry_for: float = REPLACE_RETRY_FOR) -> None:
    """os.replace; on Windows retried for a moment on a sharing violation.

    Windows refuses to replace a file another process has open without FILE_SHARE_DELETE
    (MoveFileExW fails with ERROR_SHARING_VIOLATION 32 or ERROR_ACCESS_DENIED 5; learn.microsoft.com,
    MoveFileExW and "System Error Codes"), and CPython's open() never passes FILE_SHARE_DELETE - a
    reader in the app, a virus scanner or the search indexer holds it briefly. The temp file is
    still whole, so waiting loses nothing; past `retry_for` the PermissionError is raised.
    """
    deadline = time.monotonic() + retry_for
    delay = 0.01
    while True:
        try:
            os.replace(src, dst)
            return
        except PermissionError as exc:
            if not windows or getattr(exc, "winerror", None) not in (5, 32) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_writer(path) as fh:
        fh.write(text)
