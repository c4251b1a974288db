"""Reading a child's output pipes: bigger pipe buffers, loop and thread readers, threads as loop futures.

Shared by the local executor (all modes) and the worker pool. Pipes are read in pieces of up
to `READ_SIZE` (what a widened pipe holds) straight into an `OutputCapture`, never line by
line: each read is one chunk (one log record, one decode), so a firehose costs a few hundred
reads per 200 MB instead of thousands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable

from prismq_desktop.core.process.capture import CHUNK_SIZE, OutputCapture
from prismq_desktop.core.process.logfile import Stream

log = logging.getLogger(__name__)

PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031  # Linux fcntl
READ_SIZE = PIPE_SIZE  # one read can take all that a widened pipe holds
WAKEUP_BYTES = 2 << 20  # at most this much is read per loop wake-up before other callbacks run
# glibc malloc: big allocations below this come from the heap, and the heap keeps this much free
# at its top (see tune_allocator)
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 16 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_tuned: bool | None = None


def tune_allocator() -> bool:
    """Once per process (Linux, glibc): keep big freed blocks in the heap instead of giving them back.

    Every read makes a bytes of up to 1 MiB and its decoded str, which live until the batch is
    flushed (~50 ms). glibc's default thresholds move with the sizes seen: such blocks were
    mmapped or trimmed off the heap top when freed and faulted in again when the next read came,
    12,000-19,000 page faults and ~40 % of the reader's system time per 200 MB drained. Fixed
    thresholds keep that memory (at most `TRIM_THRESHOLD` free at the heap top) for the next read.
    True when the thresholds are set."""
    global _tuned
    if _tuned is None:
        _tuned = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                libc = ctypes.CDLL(None)
                if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt"):
                    _tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
            except (OSError, AttributeError, ImportError):  # no ctypes, or not glibc (musl has no mallopt)
                _tuned = False
    return _tuned


def widen_pipe(fd: int) -> None:
    """Give a child's output pipe 1 MiB of buffer (Linux), so a burst of output does not block
    the child while the reader is briefly busy (a GUI repaint, a log write)."""
    if not sys.platform.startswith("linux"):
        return
    tune_allocator()
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # over /proc/sys/fs/pipe-max-size: keep the default


def feed_chunks(feed: Callable[[Stream, bytes], None], stream: Stream, data: bytes) -> None:
    """Hand `data` to `feed` in pieces of at most `CHUNK_SIZE` (a loop read may be bigger)."""
    if len(data) <= CHUNK_SIZE:
        feed(stream, data)
        return
    view = memoryview(data)
    for start in range(0, len(data), CHUNK_SIZE):
        feed(stream, bytes(view[start : start + CHUNK_SIZE]))


def _drain(stream: Stream, data: bytes) -> None:
    """What a reader feeds once the capture failed: nothing, so the child is never blocked."""


def pipe_reader(fd: int, stream: Stream, capture: OutputCapture, close: bool = False) -> Callable[[], None]:
    """A blocking reader for a thread: `fd` into `capture` until EOF (closing `fd` then if `close`,
    never under a running read). A read returns what the pipe holds, up to `READ_SIZE`."""

    def run() -> None:
        read = os.read
        feed = capture.feed
        try:
            while True:
                try:
                    data = read(fd, READ_SIZE)
                except OSError:
                    return  # the pipe was closed under us (the run is over)
                if not data:
                    return
                try:
                    feed(stream, data)
                except Exception:  # noqa: BLE001 - keep draining, or the child blocks on a full pipe
                    log.exception("output of %s could not be taken in; the pipe is still drained", stream.name)
                    feed = _drain
        finally:
            if close:
                with contextlib.suppress(OSError):
                    os.close(fd)

    return run


class LoopPipe:
    """One output pipe read by the loop itself: `add_reader` on its fd, no transport.

    A wake-up reads until the pipe is empty (at most `WAKEUP_BYTES`, so other runs and the
    window get their turn), each read up to `READ_SIZE` and fed as one chunk: a child that
    writes faster than one read per wake-up costs no selector round per piece. `eof` is set
    when the pipe ended or was closed. A feed that raises is logged once and the pipe is still
    drained, so the child never blocks on a full pipe. The fd is not closed here (its owner does).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, stream: Stream,
                 feed: Callable[[Stream, bytes], None]) -> None:
        self.loop = loop
        self.fd = fd
        self.stream = stream
        self.feed = feed
        self.eof: asyncio.Future[object] = loop.create_future()
        self.failed = False
        self._watching = False

    def start(self) -> LoopPipe:
        os.set_blocking(self.fd, False)
        self.loop.add_reader(self.fd, self._readable)
        self._watching = True
        return self

    def _readable(self) -> None:
        fd, stream = self.fd, self.stream
        got = 0
        while got < WAKEUP_BYTES:
            try:
                data = os.read(fd, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""  # the pipe is gone: as EOF
            if not data:
                self.close()
                return
            got += len(data)
            if self.failed:
                continue  # keep draining
            try:
                self.feed(stream, data)
            except Exception:  # noqa: BLE001 - never stop reading: the child would block
                log.exception("output of %s could not be taken in; the pipe is still drained", stream.name)
                self.failed = True

    def close(self) -> None:
        """Stop reading (EOF, or the run gave up on the pipe); sets `eof`."""
        if self._watching:
            self._watching = False
            with contextlib.suppress(Exception):  # the loop is closed, or the fd already is
                self.loop.remove_reader(self.fd)
        if not self.eof.done():
            self.eof.set_result(None)


def thread_future(loop: asyncio.AbstractEventLoop, fn: Callable[[], object], name: str) -> asyncio.Future[object]:
    """Run `fn` in a daemon thread; a loop future with its result (or exception) once it returns."""
    fut: asyncio.Future[object] = loop.create_future()

    def body() -> None:
        try:
            result: object = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the loop
            err = exc

            def fail() -> None:
                if not fut.done():
                    fut.set_exception(err)

            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(fail)
            return

        def succeed() -> None:
            if not fut.done():
                fut.set_result(result)

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(succeed)

    threading.Thread(target=body, name=name, daemon=True).start()
    return fut
