"""A pooled run's stdout and stderr: the read ends of two pipes whose write ends went to the worker.

Watched by the loop (`add_reader` on each fd) where it can - data that comes before the run is
announced waits in memory - or read by two threads (process/pipes.py's reader), as a spawned
run's pipes are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from prismq_desktop.core.process.executor import Job
from prismq_desktop.core.process.logfile import Stream
from prismq_desktop.core.process.pipes import feed_chunks, pipe_reader, thread_future

#: One read per wake-up. A pipe holds 64 KiB (nothing here widens it), so a bigger buffer never
#: gets more - and a 256 KiB one is above glibc's mmap threshold: an mmap, its page faults and a
#: munmap for every read (≈ 20 µs against ≈ 1.5 µs for 64 KiB, measured with a 6-byte line).
READ_SIZE = 64 * 1024


class PipeReader:
    """One output pipe on the loop (`add_reader` on the fd itself: no transport, no protocol, no
    awaits to set up). Data that comes before the run is announced waits in memory (the child
    may write before its pid reaches us); then every read goes to the capture in pieces of at
    most 64 KiB, as a spawned run's readers do."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, stream: Stream) -> None:
        self.loop = loop
        self.fd = fd
        self.stream = stream
        self.done: asyncio.Future[None] = loop.create_future()
        self._feed: Callable[[Stream, bytes], None] | None = None
        self._early: list[bytes] = []
        self._ended = False
        self._watching = False

    def watch(self) -> None:
        """Start watching the fd (NotImplementedError: the loop cannot; threads read it then)."""
        os.set_blocking(self.fd, False)
        self.loop.add_reader(self.fd, self._readable)
        self._watching = True

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.stop()
            return
        if self._feed is None:
            self._early.append(data)
        else:
            feed_chunks(self._feed, self.stream, data)

    def stop(self) -> None:
        """The pipe ended (or is given up): no more reads; `done` once the capture was started."""
        if self._watching:
            self._watching = False
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.fd)
        self._ended = True
        self._finish()

    def start(self, feed: Callable[[Stream, bytes], None]) -> None:
        self._feed = feed
        early, self._early = self._early, []
        for data in early:
            feed_chunks(feed, self.stream, data)
        self._finish()

    def _finish(self) -> None:
        if self._ended and self._feed is not None and not self.done.done():
            self.done.set_result(None)


class RunPipes:
    """A run's stdout and stderr read ends: watched by the loop, or read by two threads."""

    def __init__(self, out_r: int, err_r: int) -> None:
        self.fds = (out_r, err_r)
        self.protocols: list[PipeReader] = []
        self._threads_own_fds = False
        self._closed = False

    @property
    def watched(self) -> bool:
        return bool(self.protocols)

    def connect(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch both pipes on the loop (data is held until `start`); a loop that cannot leaves them to threads."""
        try:
            for fd, stream in zip(self.fds, (Stream.STDOUT, Stream.STDERR), strict=True):
                reader = PipeReader(loop, fd, stream)
                reader.watch()
                self.protocols.append(reader)
        except (NotImplementedError, RuntimeError):
            self.abort()
            self.protocols.clear()
            for fd in self.fds:
                with contextlib.suppress(OSError):
                    os.set_blocking(fd, True)

    def start(self, job: Job, loop: asyncio.AbstractEventLoop) -> list[asyncio.Future[None]] | list[asyncio.Future[object]]:
        """Begin feeding the capture; the futures complete at each pipe's end."""
        if self.protocols:
            for protocol in self.protocols:
                protocol.start(job.capture.feed)
            return [p.done for p in self.protocols]
        self._threads_own_fds = True  # a thread closes its fd when its pipe ends, never under a read
        out_r, err_r = self.fds
        return [
            thread_future(loop, pipe_reader(out_r, Stream.STDOUT, job.capture, close=True), f"run-{job.run_id}-stdout"),
            thread_future(loop, pipe_reader(err_r, Stream.STDERR, job.capture, close=True), f"run-{job.run_id}-stderr"),
        ]

    def abort(self) -> None:
        for reader in self.protocols:
            reader.stop()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.abort()
        if not self._threads_own_fds:
            for fd in self.fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
