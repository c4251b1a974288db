"""Output capture: line assembly, the bounded in-memory tail and the pending batch.

Pipes are read in pieces of up to 1 MiB by the executors (never line by line: readline is about
10x slower and breaks on long lines). Each chunk goes, in order, to:

1. the run's log file, byte for byte, framed by stream and time (logfile.py);
2. a per-stream `LineAssembler` that decodes incrementally and applies `\\r` overwrite;
3. a bounded tail of the last complete lines;
4. a pending batch that the executor flushes to subscribers at most every ~50 ms.

Per chunk the hot path does no per-line work and no scan beyond the decode and a memchr:
the complete lines of a big chunk are kept as a span of its decoded text (no copy) and
counted only when the tail is trimmed or read, so a firehose whose lines scroll out of the
tail unseen is never counted line by line.
"""

from __future__ import annotations

import codecs
import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prismq_desktop.core.process.logfile import LogWriter, Stream

CHUNK_SIZE = 64 * 1024  # the pool's pieces (pipes.feed_chunks); local runs read up to pipes.READ_SIZE
URGENT_BATCH_BYTES = 1 << 20  # a pending batch this big is flushed without waiting for the timer
EAGER_COUNT_CHARS = 4096  # spans up to this long are counted when added (cheap), longer ones when trimmed
TRIM_CHARS = 2 << 20  # uncounted text kept before the tail is trimmed back to its last lines
WINDOW_PER_LINE = 96  # a trim counts the last (lines still needed × this) characters of a block first


@dataclass(frozen=True)
class OutputChunk:
    """A piece of output as read from one pipe, raw and decoded."""

    stream: Stream
    data: bytes
    text: str
    time: float


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

    def feed_span(self, text: str) -> tuple[str, str, int, int, int, bool] | None:
        """Add decoded text; return the lines it completed as a span, without copying or counting
        them: (first, source, lo, hi, count, first_clipped). The block is `first` when lo < 0,
        else ``first + "\\n" + source[lo:hi]``; count is -1 when not counted (2 + the newlines
        of source[lo:hi]). first_clipped: the first line was already clipped (a long partial).

        The common case (no `\\r`) is a few C-speed scans that stop at the first and last newline.
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
            span: tuple[str, str, int, int, int, bool] = ("\n".join(lines), "", -1, -1, len(lines), clipped)
        else:
            first_nl = text.find("\n")
            self._add_partial(text[:first_nl])
            clipped = bool(self.partial_dropped)
            first = self._clip(self.partial, self.partial_dropped)
            span = (first, "", -1, -1, 1, clipped) if first_nl == last else (first, text, first_nl + 1, last, -1, clipped)
        self.partial = ""
        self.partial_dropped = 0
        self._add_partial(text[last + 1 :])
        return span

    def feed_block(self, text: str) -> tuple[str, int, bool] | None:
        """Add decoded text; return the lines it completed as one `\n`-joined block, their count,
        and whether the first line was already clipped (it carried a long partial)."""
        got = self.feed_span(text)
        if got is None:
            return None
        first, source, lo, hi, count, clipped = got
        if lo < 0:
            return first, count, clipped
        return f"{first}\n{source[lo:hi]}", 2 + source.count("\n", lo, hi), clipped

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

    The tail is kept as blocks of complete lines (one per chunk, a span of its decoded text),
    trimmed by line count, so a chunk of a thousand short lines costs one append, not a
    thousand; a big block is counted only when the tail is trimmed (once `TRIM_CHARS` of
    uncounted text piled up) or read, and blocks that scroll out unseen never are.
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
        # [stream, first, source, lo, hi, count, first_clipped]: see LineAssembler.feed_span
        self._blocks: collections.deque[list[Any]] = collections.deque()
        self._tail_count = 0  # lines of the counted blocks
        self._uncounted = 0  # characters of the blocks not counted yet
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

    def _add_block(self, stream: Stream, first: str, source: str, lo: int, hi: int, count: int, clipped: bool) -> None:
        if count < 0 and hi - lo <= EAGER_COUNT_CHARS:
            count = 2 + source.count("\n", lo, hi)
        blocks = self._blocks
        blocks.append([stream, first, source, lo, hi, count, clipped])
        if count < 0:
            self._uncounted += hi - lo
            if self._uncounted > TRIM_CHARS:
                self._trim()
            return
        self._tail_count += count
        # the oldest block goes once the blocks after it hold the tail (their counted lines do)
        while blocks and blocks[0][5] >= 0 and self._tail_count - blocks[0][5] >= self.tail_max:
            self._tail_count -= blocks.popleft()[5]

    def _trim(self) -> None:
        """Count blocks from the newest back until they hold the tail; drop the older ones uncounted."""
        blocks = self._blocks
        kept = 0
        keep = 0
        for block in reversed(blocks):
            if block[5] < 0:
                self._uncounted -= block[4] - block[3]
                block[5] = self._count_back(block, self.tail_max - kept)
                self._tail_count += block[5]
            kept += block[5]
            keep += 1
            if kept >= self.tail_max:
                break
        for _ in range(len(blocks) - keep):
            old = blocks.popleft()
            if old[5] >= 0:
                self._tail_count -= old[5]
            else:
                self._uncounted -= old[4] - old[3]

    @staticmethod
    def _count_back(block: list[Any], need: int) -> int:
        """Count an uncounted block's lines, from its end: when a window at its end already holds
        the `need` lines the tail still lacks, the block is cut to the window's complete lines
        (the older ones would scroll out of the tail anyway) and only the window was scanned.

        A firehose block of 1 MiB holding ~13,000 lines for a 2,000-line tail is scanned for
        ~190 k characters instead of all of them."""
        source: str = block[2]
        lo: int = block[3]
        hi: int = block[4]
        window = max(1, need) * WINDOW_PER_LINE
        while hi - lo > window:
            start = hi - window
            found = source.count("\n", start, hi)
            if found >= need:
                # keep the `found` complete lines after the window's first newline
                first_nl = source.find("\n", start, hi)
                second_nl = source.find("\n", first_nl + 1, hi)
                if second_nl < 0:
                    block[1], block[2], block[3], block[4] = source[first_nl + 1 : hi], "", -1, -1
                else:
                    block[1], block[3] = source[first_nl + 1 : second_nl], second_nl + 1
                block[6] = False  # a line of the source: clipped when read, as the others
                return found
            window *= 4
        return 2 + source.count("\n", lo, hi)

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
            got = asm.feed_span(text)
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

    @property
    def log_error(self) -> str | None:
        """What the log file could not keep ("output after 1.2 MB was not saved: ..."), if anything."""
        return self.log.error if self.log is not None else None

    def finish(self) -> None:
        """End of both streams: decode what the decoders held back."""
        with self._lock:
            for stream, asm in self._asm.items():
                for line in asm.finish():  # already clipped, one block each
                    self._add_block(stream, line, "", -1, -1, 1, True)

    def take_pending(self) -> list[OutputChunk]:
        with self._lock:
            chunks, self._pending = self._pending, []
            self._pending_bytes = 0
        return chunks

    @property
    def tail(self) -> list[tuple[Stream, str]]:
        """The last complete lines (at most `tail_lines`), oldest first."""
        with self._lock:
            if self._uncounted:
                self._trim()
            blocks = [(b[0], b[1], b[2], b[3], b[4], b[6]) for b in self._blocks]
        items: list[tuple[Stream, str]] = []
        for stream, first, source, lo, hi, first_clipped in blocks:
            block = first if lo < 0 else f"{first}\n{source[lo:hi]}"
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
