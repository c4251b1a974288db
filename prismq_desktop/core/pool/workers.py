"""The pool's workers: the parent's end of one warm interpreter, and the POSIX fork server.

A `Worker` serves one run (a `Slot`) at a time and reports what its control channel says
through two callbacks: `on_message(worker, msg, received)` for each message and `on_eof(worker)`
once the channel ends. `ForkServerWorker` is the POSIX one (forkserver.py on one end of a
socketpair); the Windows one is in windows.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from prismq_desktop.core.pool import forkserver
from prismq_desktop.core.process.executor import Job
from prismq_desktop.core.process.tree import ProcessTree, ServedTree

log = logging.getLogger(__name__)

RECV_SIZE = 64 * 1024  # control messages are small; 256 KiB buffers cost an mmap per recv (see pipes.READ_SIZE)


class WorkerSettings(Protocol):
    """What a worker is started with (a `ResourcePool` is one)."""

    python: str
    preload: tuple[str, ...]
    spare: bool
    worker_env: dict[str, str]


class WorkerLost(Exception):
    """The worker died before the run's child existed: the run can go to another worker."""


class StartFailed(Exception):
    """The child could not become the run (a bad working directory, no fork)."""


class Slot:
    """One run in one worker."""

    def __init__(self, seq: int, job: Job, worker: Worker, loop: asyncio.AbstractEventLoop) -> None:
        self.seq = seq
        self.job = job
        self.worker = worker
        self.started: asyncio.Future[int] = loop.create_future()
        self.exited: asyncio.Future[object] = loop.create_future()
        self.sent = 0.0
        self.latency: float | None = None
        self.pid: int | None = None
        self.ticks: int | None = None  # the child's start in clock ticks, as the server reported it
        self.direct = False  # sent straight to the server's spare (its exit may come with no seq)
        self.lost: str | None = None
        self.abandoned = False
        #: What the run left behind, from its "exit" (a subreaper server): None until then, or if not known.
        self.left: list[tuple[int, int]] | None = None
        self.tree: ProcessTree | None = None


class Worker:
    """A warm interpreter serving one run at a time, and the parent's end of its control channel."""

    kind = "worker"

    def __init__(
        self,
        settings: WorkerSettings,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[Worker, dict[str, Any], float], None],
        on_eof: Callable[[Worker], None],
    ) -> None:
        self.settings = settings
        self.loop = loop
        self.on_message = on_message
        self.on_eof = on_eof
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.ready = False
        self.retiring = False
        self.reserved = False
        self.slot: Slot | None = None
        self.runs = 0  # children that ended here (max_runs_per_worker counts these)
        self.served = 0  # runs started here (what the pool's "served" counts, from the same moment)
        self.born = time.monotonic()
        self.preload_failed: dict[str, str] = {}
        #: The worker's own environment, from its "ready" (a request then carries only the difference).
        self.base_env: dict[str, str] | None = None
        #: The worker is a child subreaper that reports what each run left behind (its "ready" says so).
        self.subreaper = False
        self.reader_thread: threading.Thread | None = None  # the control channel's reader, if not the loop

    @property
    def state(self) -> str:
        if self.retiring:
            return "retiring"
        if self.slot is not None or self.reserved:
            return "busy"
        return "idle" if self.ready else "starting"

    # -- to implement
    def start(self) -> None:
        raise NotImplementedError

    def send_run(self, request: dict[str, Any], fds: tuple[int, int]) -> None:
        raise NotImplementedError

    def close_channel(self) -> None:
        raise NotImplementedError

    def make_tree(self, pid: int, ticks: int | None = None) -> ProcessTree:
        """The run's tree; `ticks`: its start as the worker reported it (no /proc read then)."""
        if self.subreaper and self.pid is not None:
            return ServedTree(pid, self.pid, ticks=ticks)
        return ProcessTree(pid, ticks=ticks)

    def _read_channel(self) -> Iterable[dict[str, Any]]:
        raise NotImplementedError

    # -- shared
    def _start_reader(self) -> None:
        self.reader_thread = threading.Thread(target=self._reader_main, name=f"pool-worker-{self.pid}", daemon=True)
        self.reader_thread.start()

    def _post(self, fn: Callable[..., None], *args: Any) -> bool:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed
            return False
        return True

    def _reader_main(self) -> None:
        try:
            for msg in self._read_channel():
                if not self._post(self.on_message, self, msg, time.perf_counter()):
                    return
        except Exception:  # noqa: BLE001 - whatever broke the channel, the worker is gone for us
            log.debug("pool worker %s: control channel failed", self.pid, exc_info=True)
        self._post(self.on_eof, self)

    def retire(self) -> None:
        """Ask the worker to exit once it is free (its channel is closed; its EOF follows)."""
        if self.retiring:
            return
        self.retiring = True
        self.close_channel()

    def join_reader(self, timeout: float) -> None:
        if self.reader_thread is not None and self.reader_thread is not threading.current_thread():
            self.reader_thread.join(timeout)


class ForkServerWorker(Worker):
    """POSIX: a fork server (forkserver.py) on one end of a socketpair.

    The control socket is watched by the loop (`add_reader`) where the loop can; else a thread reads it.
    """

    kind = "fork server"

    def __init__(
        self,
        settings: WorkerSettings,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[Worker, dict[str, Any], float], None],
        on_eof: Callable[[Worker], None],
    ) -> None:
        super().__init__(settings, loop, on_message, on_eof)
        self.sock: socket.socket | None = None
        self._watched = False
        self._decoder = forkserver.Decoder()
        #: The server's spare, announced to us ("spare": pid, start ticks, its socket): a run is
        #: sent straight to it (`send_direct`), with no round trip through the server.
        self.spare: tuple[int, int | None, socket.socket] | None = None
        self.announces = False  # the server announces its spares (its "ready" says so)
        self._spare_waiter: asyncio.Future[None] | None = None

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                forkserver.command(self.settings.python, theirs.fileno(), self.settings.preload, self.settings.spare),
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=self.settings.worker_env,
                cwd=os.path.abspath(os.sep),
                start_new_session=True,  # a Ctrl+C in the app's terminal is not for the workers
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self.pid = self.proc.pid
        try:
            ours.setblocking(False)
            self.loop.add_reader(ours.fileno(), self._readable)
            self._watched = True
        except (NotImplementedError, RuntimeError):
            ours.setblocking(True)
            self._start_reader()

    def _readable(self) -> None:
        """On the loop: read what the server sent; dispatch whole messages; EOF ends the worker."""
        assert self.sock is not None
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, RECV_SIZE, forkserver.MAX_FDS)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            if not data:
                for fd in fds:
                    os.close(fd)
                self._unwatch()
                self.on_eof(self)
                return
            now = time.perf_counter()
            try:
                messages = [self._took_spare(msg) for msg in self._decoder.feed(data, fds)]
            except ValueError:
                log.warning("pool fork server %s sent garbage; retiring it", self.pid)
                self.retire()
                return
            self._close_stray_fds()
            for msg in messages:
                self.on_message(self, msg, now)

    def _took_spare(self, msg: dict[str, Any]) -> dict[str, Any]:
        """A "spare" message brings the spare's socket (the first fd received with it): put it in
        the message (``_fd``), for `keep_spare` on the loop thread."""
        if msg.get("t") == "spare" and self._decoder.fds:
            msg["_fd"] = self._decoder.fds.pop(0)
        return msg

    def keep_spare(self, msg: dict[str, Any]) -> None:
        """On the loop: keep the announced spare (pid, start ticks, socket) for `send_direct`."""
        fd = msg.pop("_fd", None)
        if not isinstance(fd, int):
            return
        link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fileno=fd)  # (given: no getsockopt queries)
        pid, ticks = msg.get("pid"), msg.get("ticks")
        if self.retiring or not isinstance(pid, int) or pid <= 0:
            link.close()
            return
        self.drop_spare()
        self.spare = (pid, ticks if isinstance(ticks, int) and ticks >= 0 else None, link)
        waiter, self._spare_waiter = self._spare_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_spare(self, timeout: float) -> bool:
        """Wait (on the loop, at most `timeout` s) until an announced spare has said "r" - it has
        its own session - so a run can be sent straight to it; False: none in time (a run just
        ended and the server is still forking it), the run goes through the server then."""
        loop = self.loop
        deadline = loop.time() + timeout
        while not self.retiring:
            spare = self.spare
            if spare is not None:
                fd = spare[2].fileno()
                if select.select([fd], [], [], 0)[0]:
                    return True
            if loop.time() >= deadline:
                return False
            fut: asyncio.Future[None] = loop.create_future()
            timer = loop.call_at(deadline, _resolve, fut)
            try:
                if spare is not None:
                    loop.add_reader(fd, _resolve, fut)
                else:
                    self._spare_waiter = fut
                await fut
            finally:
                timer.cancel()
                if spare is not None:
                    loop.remove_reader(fd)
                elif self._spare_waiter is fut:
                    self._spare_waiter = None
        return False

    def _close_stray_fds(self) -> None:
        fds, self._decoder.fds = self._decoder.fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def drop_spare(self) -> int | None:
        """Let go of the announced spare (closing our copy of its socket); its pid, if there was one."""
        spare, self.spare = self.spare, None
        if spare is None:
            return None
        with contextlib.suppress(OSError):
            spare[2].close()
        return spare[0]

    def send_direct(self, request: dict[str, Any], fds: tuple[int, int]) -> tuple[int, int | None] | None:
        """Send a run straight to the announced spare once its "r" says it has its own session:
        (its pid, start ticks); None if there is none, it is not ready or it is gone (then nothing
        was sent, our copy of its socket is closed - given back - and the server takes the run)."""
        spare, self.spare = self.spare, None
        if spare is None:
            return None
        pid, ticks, link = spare
        try:
            try:
                if link.recv(1, socket.MSG_DONTWAIT) != b"r":  # b"": it died
                    return None
            except OSError:  # not ready yet (no session of its own yet): the server hands it over
                return None
            try:
                data = forkserver.encode(dict(request, direct=True))
                sent = socket.send_fds(link, [data], list(fds), socket.MSG_DONTWAIT)
                while sent < len(data):  # a request is far below the socket buffer: this does not loop
                    rest = data[sent:]
                    sent += _nonblocking(link, lambda: link.send(rest, socket.MSG_DONTWAIT))  # noqa: B023
            except OSError:
                # Its "r" is taken, so the server could not hand it a run: end it (its exit comes
                # from the server, matched to nothing); the run goes through the server.
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                return None
        finally:
            with contextlib.suppress(OSError):
                link.close()
        return pid, ticks

    def _unwatch(self) -> None:
        if self._watched and self.sock is not None:
            self._watched = False
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock.fileno())

    def send_run(self, request: dict[str, Any], fds: tuple[int, int]) -> None:
        assert self.sock is not None
        sock = self.sock
        data = forkserver.encode(request)
        sent = _nonblocking(sock, lambda: socket.send_fds(sock, [data], list(fds)))
        while sent < len(data):
            rest = data[sent:]
            sent += _nonblocking(sock, lambda: sock.send(rest))  # noqa: B023 - called at once

    def close_channel(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)  # we see EOF (our reader wakes); the server sees EOF and exits

    def _read_channel(self) -> Iterable[dict[str, Any]]:
        assert self.sock is not None
        while True:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, RECV_SIZE, forkserver.MAX_FDS)
            if not data:
                for fd in fds:
                    os.close(fd)
                return
            messages = [self._took_spare(msg) for msg in self._decoder.feed(data, fds)]
            self._close_stray_fds()
            yield from messages

    def close_socket(self) -> None:
        self.drop_spare()
        self._unwatch()
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _nonblocking(sock: socket.socket, send: Callable[[], int], timeout: float = 10.0) -> int:
    """Call `send` on a possibly non-blocking socket, waiting (bounded) while its buffer is full."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return send()
        except (BlockingIOError, InterruptedError):
            if time.monotonic() > deadline:
                raise OSError("the pool worker does not read its control channel") from None
            select.select([], [sock], [], 0.05)
