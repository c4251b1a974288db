"""Reading a child's output pipes: bigger pipe buffers, blocking readers, threads as loop futures.

Shared by the local executor (THREADED and LOCAL modes) and the worker pool. Pipes are read
in chunks of at most `CHUNK_SIZE` straight into an `OutputCapture`, never line by line.
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


def widen_pipe(fd: int) -> None:
    """Give a child's output pipe 1 MiB of buffer (Linux), so a burst of output does not block
    the child while the reader is briefly busy (a GUI repaint, a log write)."""
    if not sys.platform.startswith("linux"):
        return
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
    never under a running read)."""

    def run() -> None:
        read = os.read
        feed = capture.feed
        try:
            while True:
                try:
                    data = read(fd, CHUNK_SIZE)
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
