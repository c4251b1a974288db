"""Output capture: the per-run log file, line assembly and the bounded in-memory tail.

Pipes are read in 64 KiB chunks by the executors (never line by line: readline is about
10x slower and breaks on long lines). Each chunk goes, in order, to:

1. the run's log file, byte for byte, framed by stream and time (format below);
2. a per-stream `LineAssembler` that decodes incrementally and applies `\\r` overwrite;
3. a bounded tail of the last complete lines;
4. a pending batch that the executor flushes to subscribers at most every ~50 ms.

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

import codecs
import collections
import enum
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

LOG_MAGIC = b"PRISMQ-LOG 1\n"
_writev = getattr(os, "writev", None)  # POSIX only
CHUNK_SIZE = 64 * 1024
URGENT_BATCH_BYTES = 1 << 20  # a pending batch this big is flushed without waiting for the timer


class Stream(enum.StrEnum):
    STDOUT = "o"
    STDERR = "e"
    META = "m"


@dataclass(frozen=True)
class OutputChunk:
    """A piece of output as read from one pipe, raw and decoded."""

    stream: Stream
    data: bytes
    text: str
    time: float


class LogWriter:
    """Appends framed records to a run's log file; safe to call from reader threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._fh: BinaryIO | None = open(path, "ab", buffering=0)  # noqa: SIM115
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


class LineAssembler:
    """Incremental decoding and line splitting for one stream, with terminal-like `\\r`.

    A line's shown text is what follows its last carriage return, so progress bars that
    redraw with `\\r` become one updating line; `\\r\\n` is a plain line end. Lines longer
    than `max_line_chars` are clipped in memory (the log file keeps every byte).
    """

    def __init__(self, encoding: str = "utf-8", max_line_chars: int = 16384) -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self.max_line_chars = max_line_chars
        self.partial = ""
        self.partial_dropped = 0
        self._pending_cr = False

    def decode(self, data: bytes, final: bool = False) -> str:
        return self._decoder.decode(data, final)

    def _clip(self, line: str, dropped: int = 0) -> str:
        extra = dropped + max(0, len(line) - self.max_line_chars)
        if extra:
            return f"{line[: self.max_line_chars]}… [{extra} more characters in the log file]"
        return line

    def _add_partial(self, text: str) -> None:
        if "\r" in text:
            self.partial = ""
            self.partial_dropped = 0
            text = text.rpartition("\r")[2]
        room = self.max_line_chars - len(self.partial)
        if len(text) > room:
            self.partial += text[: max(0, room)]
            self.partial_dropped += len(text) - max(0, room)
        else:
            self.partial += text

    def feed_block(self, text: str) -> tuple[str, int, bool] | None:
        """Add decoded text; return the lines it completed as one `\n`-joined block, their count,
        and whether the first line was already clipped (it carried a long partial).

        The common case (no `\r`) is a handful of C-speed string scans per chunk, whatever
        the number of lines in it; long complete lines are clipped when read (`clip_block`).
        """
        if self._pending_cr:
            text = "\r" + text
            self._pending_cr = False
        if text.endswith("\r"):
            text = text[:-1]
            self._pending_cr = True
        last = text.rfind("\n")
        if last < 0:
            self._add_partial(text)
            return None
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            last = text.rfind("\n")
            parts = text[:last].split("\n")
            self._add_partial(parts[0])
            clipped = bool(self.partial_dropped)
            lines = [self._clip(self.partial, self.partial_dropped)]
            lines.extend(p.rpartition("\r")[2] for p in parts[1:])
            block, count = "\n".join(lines), len(lines)
        else:
            first_nl = text.find("\n")
            self._add_partial(text[:first_nl])
            clipped = bool(self.partial_dropped)
            first = self._clip(self.partial, self.partial_dropped)
            block = first if first_nl == last else f"{first}\n{text[first_nl + 1 : last]}"
            count = text.count("\n", first_nl, last + 1)
        self.partial = ""
        self.partial_dropped = 0
        self._add_partial(text[last + 1 :])
        return block, count, clipped

    def clip_block(self, block: str, first_clipped: bool = False) -> list[str]:
        lines = block.split("\n")
        if max(map(len, lines)) > self.max_line_chars:
            lines = [line if (i == 0 and first_clipped) else self._clip(line) for i, line in enumerate(lines)]
        return lines

    def feed_text(self, text: str) -> list[str]:
        """Add decoded text; return the lines it completed (without newlines)."""
        got = self.feed_block(text)
        return self.clip_block(got[0], got[2]) if got else []

    def finish(self) -> list[str]:
        """Flush the decoder at end of stream; a non-empty partial becomes a last line."""
        tail = self._decoder.decode(b"", True)
        lines = self.feed_text(tail) if tail else []
        self._pending_cr = False
        if self.partial or self.partial_dropped:
            lines.append(self._clip(self.partial, self.partial_dropped))
            self.partial = ""
            self.partial_dropped = 0
        return lines

    def current(self) -> str:
        return self._clip(self.partial, self.partial_dropped)


class OutputCapture:
    """Everything one run's output goes through; `feed` may be called from any thread.

    The tail is kept as blocks of complete lines (one per chunk), trimmed by line count,
    so a chunk of a thousand short lines costs one append, not a thousand.
    `on_pending(urgent)` is called (outside the lock) when a batch becomes pending after
    being empty, and with urgent=True when it grows past 1 MiB, so the executor can
    schedule a flush without polling.
    """

    def __init__(
        self,
        log: LogWriter | None,
        encoding: str = "utf-8",
        tail_lines: int = 2000,
        max_line_chars: int = 16384,
        on_pending: Callable[[bool], None] | None = None,
        keep_batches: bool = True,
    ) -> None:
        self.log = log
        self.tail_max = tail_lines
        self._blocks: collections.deque[tuple[Stream, str, int, bool]] = collections.deque()
        self._tail_count = 0
        self._asm = {
            Stream.STDOUT: LineAssembler(encoding, max_line_chars),
            Stream.STDERR: LineAssembler(encoding, max_line_chars),
        }
        self._lock = threading.Lock()
        self._pending: list[OutputChunk] = []
        self._pending_bytes = 0
        self.on_pending = on_pending
        self.keep_batches = keep_batches
        self.bytes_read = {Stream.STDOUT: 0, Stream.STDERR: 0}
        self.lines_seen = 0

    def _add_block(self, stream: Stream, block: str, count: int, first_clipped: bool) -> None:
        self._blocks.append((stream, block, count, first_clipped))
        self._tail_count += count
        self.lines_seen += count
        blocks = self._blocks
        while self._tail_count - blocks[0][2] >= self.tail_max:
            self._tail_count -= blocks.popleft()[2]

    def feed(self, stream: Stream, data: bytes) -> None:
        if not data:
            return
        now = time.time()
        if self.log is not None:
            self.log.write(stream, data, now)
        notify = False
        with self._lock:
            asm = self._asm[stream]
            text = asm.decode(data)
            got = asm.feed_block(text)
            if got is not None:
                self._add_block(stream, *got)
            self.bytes_read[stream] += len(data)
            urgent = False
            if self.keep_batches:
                notify = not self._pending
                self._pending.append(OutputChunk(stream, data, text, now))
                before = self._pending_bytes
                self._pending_bytes += len(data)
                # crossing the cap asks for a flush now, so a batch never holds much more than it
                urgent = before < URGENT_BATCH_BYTES <= self._pending_bytes
        if (notify or urgent) and self.on_pending is not None:
            self.on_pending(urgent)

    def finish(self) -> None:
        """End of both streams: decode what the decoders held back."""
        with self._lock:
            for stream, asm in self._asm.items():
                for line in asm.finish():  # already clipped, one block each
                    self._add_block(stream, line, 1, True)

    def take_pending(self) -> list[OutputChunk]:
        with self._lock:
            chunks, self._pending = self._pending, []
            self._pending_bytes = 0
        return chunks

    @property
    def tail(self) -> list[tuple[Stream, str]]:
        """The last complete lines (at most `tail_lines`), oldest first."""
        with self._lock:
            blocks = list(self._blocks)
        items: list[tuple[Stream, str]] = []
        for stream, block, _, first_clipped in blocks:
            items.extend((stream, line) for line in self._asm[stream].clip_block(block, first_clipped))
        return items[-self.tail_max :]

    def tail_lines(self, n: int | None = None) -> list[tuple[Stream, str]]:
        """The tail plus each stream's unfinished line (a progress bar being redrawn)."""
        items = self.tail
        with self._lock:
            for stream, asm in self._asm.items():
                if asm.partial or asm.partial_dropped:
                    items.append((stream, asm.current()))
        return items if n is None else items[-n:]

    def text(self, stream: Stream) -> str:
        """The tail of one stream as text (the result's stdout/stderr)."""
        return "\n".join(line for s, line in self.tail_lines() if s is stream)
