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
import errno
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from prismq_desktop.core import paths

LOG_MAGIC = b"PRISMQ-LOG 1\n"
_writev = getattr(os, "writev", None)  # POSIX only


class Stream(enum.StrEnum):
    STDOUT = "o"
    STDERR = "e"
    META = "m"


_TAGS = {s: s.value.encode() for s in Stream}
_SPLIT_ON_FULL = 64 * 1024  # a record that does not fit on a full disk is retried in pieces this big


def size_text(n: int) -> str:
    """A byte count in words: "812 bytes", "64 KB", "1.2 MB"."""
    if n < 1000:
        return f"{n} byte{'' if n == 1 else 's'}"
    for unit, scale in (("KB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if n < scale * 1000 or unit == "GB":
            value = n / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


class LogWriter:
    """Appends framed records to a run's log file; safe to call from reader threads.

    Never raises once made: a failed write (a full disk, an I/O error) is taken back to the
    last whole record, output from then on is counted but not saved, and `error` says what
    was lost ("output after 1.2 MB was not saved: No space left on device"). Metadata records
    are still tried (space may return): the first one that fits is preceded by an
    ``incomplete`` record with the reason. The readers keep draining the pipes whatever
    happens here.
    """

    def __init__(self, path: str, lazy: bool = False) -> None:
        self.path = path
        self.bytes_written = 0
        self.bytes_lost = 0
        self.error: str | None = None
        self._noted = False
        self._lock = threading.Lock()
        self._fh: BinaryIO | None = None
        self._fd = -1
        self._open_error: OSError | None = None
        # lazy: no file until the first output (or `last`, when the run's end must be kept):
        # creating a file costs more than a trivial run's whole bookkeeping; records until then
        # wait here, in order, and go first into the file
        self._lazy = lazy
        self._held: list[bytes] | None = [] if lazy else None
        if not lazy:
            self._open()

    @property
    def held(self) -> bool:
        """Lazy and nothing made yet: the run has written no output so far."""
        return self._held is not None

    def _open(self) -> None:
        """Create (or append to) the file; a failure is recorded as `error` like a failed write."""
        held, self._held = self._held or [], None
        try:
            os.makedirs(os.path.dirname(self.path) or ".", mode=paths.PRIVATE_DIR_MODE, exist_ok=True)
            # 0600 whatever the umask: a run's output is its user's
            self._fh = os.fdopen(paths.open_private(self.path), "ab", buffering=0)
            self._fd = self._fh.fileno()
            first = (LOG_MAGIC,) if self._fh.tell() == 0 else ()
            if first or held:  # one write: the magic line and the held records, whole or not at all
                failed = self._append((*first, *held))
                if failed is not None:
                    raise failed
        except OSError as exc:  # no file, or an empty one: tried again by `last` (the held records kept)
            self._fail(exc)
            self._open_error = exc
            self._close_file()
            self._held = held if self._lazy else None

    def _append(self, blob: bytes | tuple[bytes | memoryview, ...]) -> OSError | None:
        """Write a whole record at the end or nothing (a short write is truncated away).

        One writev per record and no lseek: the file is O_APPEND, so after a failed write the
        record's start is the offset minus what of it went in."""
        assert self._fh is not None
        parts = blob if isinstance(blob, tuple) else (blob,)
        written = 0
        try:
            todo = sum(map(len, parts))
            written = _writev(self._fd, parts) if _writev is not None else os.write(self._fd, b"".join(parts))
            if written != todo:  # a short write (disk full, signal): finish it plainly
                rest = b"".join(parts)[written:]
                while rest:
                    n = os.write(self._fd, rest)
                    written += n
                    rest = rest[n:]
            return None
        except OSError as exc:
            if written:
                try:  # no torn record in the middle of the file
                    os.ftruncate(self._fd, os.lseek(self._fd, 0, os.SEEK_CUR) - written)
                except OSError:
                    pass
            return exc

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            self.error = f"output after {size_text(self.bytes_written)} was not saved: {exc.strerror or exc}"

    def write(self, stream: Stream, data: bytes, when: float | None = None) -> None:
        stamp = time.time() if when is None else when
        with self._lock:
            if self._held is not None and self.error is None:
                self._open()
            if self._fh is None or self.error is not None:
                self.bytes_lost += len(data)
                return
            failed = self._append((b"%s %.6f %d\n" % (_TAGS[stream], stamp, len(data)), data, b"\n"))
            if failed is None:
                self.bytes_written += len(data)
                return
            if failed.errno == errno.ENOSPC and len(data) > _SPLIT_ON_FULL:
                # a big read did not fit whole: keep what fits in smaller records, as 64 KiB reads would
                view = memoryview(data)
                for at in range(0, len(data), _SPLIT_ON_FULL):
                    piece = view[at : at + _SPLIT_ON_FULL]
                    failed = self._append((b"%s %.6f %d\n" % (_TAGS[stream], stamp, len(piece)), piece, b"\n"))
                    if failed is not None:
                        self._fail(failed)
                        self.bytes_lost += len(data) - at
                        return
                    self.bytes_written += len(piece)
                return
            self._fail(failed)
            self.bytes_lost += len(data)

    def _meta_record(self, fields: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
        payload = json.dumps(fields, sort_keys=True).encode("utf-8")
        return b"m %.6f %d\n" % (time.time(), len(payload)), payload, b"\n"

    def meta(self, **fields: Any) -> bool:
        """A metadata record; after a failed write it is still tried (and says what was lost
        first). True when it was written (or, lazy, held for the file)."""
        return self._meta(fields, None, keep=False)

    def last(self, release: Callable[[], bool], **fields: Any) -> bool:
        """The run's last record (its end): when the disk is full right now, `release()` gives
        back the room kept for this (the data dir's reserve) and it is tried once more, so
        the log still ends with it. True when it was written."""
        return self._meta(fields, release)

    def _meta(self, fields: dict[str, Any], release: Callable[[], bool] | None, keep: bool = True) -> bool:
        with self._lock:
            if self._held is not None and not keep:
                self._held.extend(self._meta_record(fields))
                return True
            if self._held is not None:
                before = self.error
                self._open()
                if (self._held is not None and release is not None and self._open_error is not None
                        and self._open_error.errno == errno.ENOSPC and release()):
                    self.error = before  # with the room kept for a run's end: once more
                    self._open()
            if self._fh is None:
                return False
            note = self.error is not None and not self._noted
            parts: tuple[bytes, ...] = ()
            if note:  # written with the record, whole or not at all
                parts = self._meta_record({"event": "incomplete", "reason": self.error,
                                           "saved_bytes": self.bytes_written, "lost_bytes": self.bytes_lost})
            parts += self._meta_record(fields)
            failed = self._append(parts)
            if failed is not None and release is not None and failed.errno == errno.ENOSPC and release():
                failed = self._append(parts)
            if failed is not None:
                if self.error is None:
                    self._fail(failed)
                return False
            self._noted = self._noted or note
            return True

    def discard(self) -> bool:
        """Lazy and nothing written: the run is over with nothing a file must keep (no output,
        its outcome in the registry), so no file is made. A reader takes a missing log of a
        finished run as "no output". False (nothing discarded) when output made the file first:
        checked under the lock, so a reader thread still draining cannot slip in between."""
        with self._lock:
            if self._held is None:
                return False
            self._held = None
            return True

    def close(self) -> None:
        with self._lock:
            self._close_file()

    def _close_file(self) -> None:
        """Close the file if one is open (a failing close loses nothing more: writes reported it)."""
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
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
