"""The per-run log file: binary-safe framing, an appending `LogWriter`, and `read_log`.

Log file format (version 1), chosen so it is binary-safe, appendable while the run is
live, and still readable with `less`::

    PRISMQ-LOG 1\\n                              magic line, once
    <s> <unix-time> <n>\\n<n raw bytes>\\n       one record per chunk

`<s>` is `o` (stdout), `e` (stderr) or `m` (engine metadata, UTF-8 JSON); `<unix-time>`
is seconds with microseconds; `<n>` is the decimal byte count of the payload. The
trailing newline is framing only. A torn last record (the app was killed mid-write) is
ignored by the reader.
"""

from __future__ import annotations

import enum
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from prismq_desktop.core import paths

LOG_MAGIC = b"PRISMQ-LOG 1\n"
_writev = getattr(os, "writev", None)  # POSIX only


class Stream(enum.StrEnum):
    STDOUT = "o"
    STDERR = "e"
    META = "m"


class LogWriter:
    """Appends framed records to a run's log file; safe to call from reader threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", mode=paths.PRIVATE_DIR_MODE, exist_ok=True)
        # 0600 whatever the umask: a run's output is its user's
        self._fh: BinaryIO | None = os.fdopen(paths.open_private(path), "ab", buffering=0)
        self._lock = threading.Lock()
        self._fd = self._fh.fileno()
        if self._fh.tell() == 0:
            self._fh.write(LOG_MAGIC)
        self.bytes_written = 0

    def write(self, stream: Stream, data: bytes, when: float | None = None) -> None:
        header = b"%s %.6f %d\n" % (stream.value.encode(), time.time() if when is None else when, len(data))
        with self._lock:
            if self._fh is None:
                return
            if _writev is not None:  # no copy of the payload
                todo = len(header) + len(data) + 1
                done = _writev(self._fd, (header, data, b"\n"))
                if done != todo:  # a short write (disk full, signal): finish it plainly
                    self._fh.write(b"".join((header, data, b"\n"))[done:])
            else:
                self._fh.write(b"".join((header, data, b"\n")))
            self.bytes_written += len(data)

    def meta(self, **fields: Any) -> None:
        self.write(Stream.META, json.dumps(fields, sort_keys=True).encode("utf-8"))

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


@dataclass(frozen=True)
class LogRecord:
    stream: Stream
    time: float
    data: bytes


def read_log(path: str, offset: int = 0) -> Iterator[tuple[LogRecord, int]]:
    """Yield (record, offset after it) from `offset`; stops quietly at a torn tail."""
    with open(path, "rb") as fh:
        if offset == 0:
            magic = fh.read(len(LOG_MAGIC))
            if magic != LOG_MAGIC:
                if len(magic) < len(LOG_MAGIC) and LOG_MAGIC.startswith(magic):
                    return
                raise ValueError(f"{path} is not a PrismQ log file")
            offset = fh.tell()
        fh.seek(offset)
        while True:
            header = fh.readline(64)  # a bounded read of one short header line, never of output
            if not header.endswith(b"\n"):
                return
            try:
                tag, stamp, size = header.split()
                record_stream = Stream(tag.decode())
                n = int(size)
            except ValueError:
                raise ValueError(f"{path}: corrupt record header at byte {offset}") from None
            payload = fh.read(n + 1)
            if len(payload) < n + 1:
                return
            offset = fh.tell()
            yield LogRecord(record_stream, float(stamp), payload[:n]), offset
