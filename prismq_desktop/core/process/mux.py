"""PipeMux: every ASYNC run's pipes (and pidfds) of one executor, read by one selector thread (POSIX).

Why: with the loop reading each pipe, every read cost the loop a wakeup (under the window a
QSocketNotifier activation), a transport read, a log write and a decode: 100 chatty runs are
~1,000 of those a second on the GUI thread. Here one daemon thread owns a
`selectors.DefaultSelector` over every live run's stdout, stderr and pidfd, reads up to 1 MiB
at a time straight into the run's `OutputCapture` (its tail and the log file are locked:
`THREADED` mode feeds them from reader threads too), so the log write and the decode happen
off the loop. The loop is handed only what it must see - a pipe's end, the root's exit and
"output is pending" - with at most one ``call_soon_threadsafe`` in flight per loop: at once
for an exit or an end of pipe, or for output after a quiet spell (a first line is not
delayed), else at most every `TICK`.

Lifetime: the thread starts with the first run and ends once it has had no run for `IDLE`
seconds, so an engine with no runs has no thread, and an engine whose runs all ended has none
shortly after; `close()` ends it at once. The mux owns the fds it is given: it closes each pipe
at its end (or when the run is dropped) and each pidfd once seen; nobody else may close them.

Backpressure: a run whose output the loop has not been told about for `MAX_UNTAKEN` bytes
(the loop is stalled) is not read until the loop catches up, so the child blocks on its pipe
as it would with the loop reading, and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from prismq_desktop.core.process.capture import OutputCapture
from prismq_desktop.core.process.executor import Job
from prismq_desktop.core.process.logfile import Stream
from prismq_desktop.core.process.supervisor import FLUSH_INTERVAL, Supervisor

log = logging.getLogger(__name__)

TICK = 0.015  # output notifications reach a loop at most this often (an exit or an EOF: at once)
IDLE = 0.5  # the thread ends after this long with no run
READ_SIZE = 1 << 20  # the most one read takes (a widened pipe holds 1 MiB)
MAX_UNTAKEN = 16 << 20  # output fed but not yet announced to the loop before reading pauses
#: After a round that read only a trickle (every read under `TRICKLE` bytes), the thread waits
#: until `COALESCE` after its wakeup before looking again, so 100 chatty runs wake it ~65 times
#: a second, several pipes each, rather than once per line (each wakeup costs a context switch
#: and a GIL hand-off); a busy pipe is read again at once.
COALESCE = 0.015
#: The thread runs this much nicer than the window's (Linux): on a busy machine the GUI thread
#: gets the core first, and a firehose child waits on its full pipe instead (bench_gui: stall
#: p99 8-12 ms against 14-15 ms at the same nice, wall time no worse).
READER_NICE = 5
TRICKLE = 16 * 1024

_PIPE = 0  # key.data kinds
_PIDFD = 1


class MuxRun:
    """One run's pipes and exit as the mux sees them; the futures are set on `loop`.

    `on_output(urgent)` is called on the loop when output is pending (urgent: a batch passed
    1 MiB); `eof[stream]` is set when that pipe ends (all its output was fed first);
    `on_exit(code)` once the pidfd says the root exited (None: the reap lost a race with
    another waiter, wait for it another way).
    """

    __slots__ = ("loop", "capture", "proc", "fds", "pidfd", "on_exit", "eof", "on_output", "lock",
                 "dropped", "failed", "fed", "told", "paused", "registered")

    def __init__(self, loop: asyncio.AbstractEventLoop, capture: OutputCapture, proc: subprocess.Popen[bytes],
                 fds: dict[int, Stream], pidfd: int, on_output: Callable[[bool], None],
                 on_exit: Callable[[int | None], None]) -> None:
        self.loop = loop
        self.capture = capture
        self.proc = proc
        self.fds = dict(fds)  # open pipes still owned by the mux
        self.pidfd = pidfd
        self.on_exit = on_exit
        self.eof: dict[Stream, asyncio.Future[None]] = {s: loop.create_future() for s in fds.values()}
        self.on_output = on_output
        self.lock = threading.Lock()  # held by the thread while it reads and feeds this run
        self.dropped = False
        self.failed = False
        self.fed = 0  # bytes fed (thread)
        self.told = 0  # of those, announced to the loop
        self.paused = False
        self.registered: set[int] = set()


class _Outbox:
    """What one loop has yet to be told, and whether a call is on its way to it."""

    __slots__ = ("output", "events", "posted", "last_post")

    def __init__(self) -> None:
        self.output: dict[MuxRun, bool] = {}  # run -> urgent
        self.events: list[tuple[MuxRun, int, Any]] = []
        self.posted = False
        self.last_post = -1.0


_EOF, _EXIT = 0, 1


class PipeMux:
    """One selector thread for every run handed to `add`; see the module docstring."""

    def __init__(self, name: str = "prismq-pipe-mux") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._sel: selectors.BaseSelector | None = None
        self._wake_r = self._wake_w = -1
        self._woken = False
        self._thread: threading.Thread | None = None
        self._runs: set[MuxRun] = set()
        self._commands: list[tuple[str, MuxRun]] = []
        self._boxes: dict[asyncio.AbstractEventLoop, _Outbox] = {}
        self._closed = False
        self._buf = bytearray(READ_SIZE)
        self._view = memoryview(self._buf)
        self.posts = 0  # call_soon_threadsafe calls made (counts for tests and benchmarks)
        self.reads = 0  # reads that returned output
        self.pauses = 0  # times a run was not read because the loop was behind
        self._biggest = -1  # the largest read of the thread's current round (-1: none)

    # ------------------------------------------------------------------ any thread
    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def add(self, run: MuxRun) -> None:
        """Start reading `run`'s pipes and watching its pidfd; raises OSError when they cannot be
        watched (then nothing of it is registered and its fds are still the caller's)."""
        with run.lock, self._lock:  # the thread touches no run before its registration is whole
            if self._closed:
                raise OSError("the pipe reader is closed")
            if self._sel is None:
                self._wake_r, self._wake_w = os.pipe()
                for fd in (self._wake_r, self._wake_w):
                    os.set_blocking(fd, False)
                self._sel = selectors.DefaultSelector()
                self._sel.register(self._wake_r, selectors.EVENT_READ, None)
            sel = self._sel
            try:
                for fd, stream in list(run.fds.items()):
                    sel.register(fd, selectors.EVENT_READ, (run, _PIPE, stream))
                    run.registered.add(fd)
                if run.pidfd >= 0:
                    sel.register(run.pidfd, selectors.EVENT_READ, (run, _PIDFD, None))
                    run.registered.add(run.pidfd)
            except (OSError, ValueError, KeyError) as exc:
                for fd in run.registered:
                    with contextlib.suppress(KeyError, ValueError, OSError):
                        sel.unregister(fd)
                run.registered.clear()
                raise OSError(f"cannot watch the run's pipes: {exc}") from exc
            self._runs.add(run)
            self._boxes.setdefault(run.loop, _Outbox())
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._thread.start()

    def drop(self, run: MuxRun) -> None:
        """Stop reading `run` (its leftovers hold the pipes, or the run is over): nothing of it is
        fed after this returns; its fds are closed by the thread. Idempotent."""
        with run.lock:  # waits for a read of this run in progress
            if run.dropped:
                return
            run.dropped = True
        self._command("drop", run)

    def close(self) -> None:
        """End the thread now (runs still registered are dropped); later `add`s raise."""
        with self._lock:
            self._closed = True
            runs = list(self._runs)
        for run in runs:
            self.drop(run)
        self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        with self._lock:
            if self._thread is None and self._sel is not None:
                self._close_selector()

    def _command(self, what: str, run: MuxRun) -> None:
        with self._lock:
            self._commands.append((what, run))
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            if self._woken or self._wake_w < 0:
                return
            self._woken = True
            fd = self._wake_w
        with contextlib.suppress(OSError):
            os.write(fd, b"\0")

    def _close_selector(self) -> None:
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1
        self._woken = False

    # ------------------------------------------------------------------ the thread
    def _serve(self) -> None:
        if READER_NICE and sys.platform.startswith("linux"):  # a Linux thread has a nice value of its own
            with contextlib.suppress(OSError, AttributeError):
                tid = threading.get_native_id()
                os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + READER_NICE)
        idle_since = time.monotonic()
        sel = self._sel
        assert sel is not None
        while True:
            now = time.monotonic()
            timeout = self._next_timeout(now, idle_since)
            try:
                ready = sel.select(timeout)
            except OSError:  # cannot happen on a live selector; never spin on it
                log.exception("pipe reader: select failed")
                ready = []
                time.sleep(0.01)
            woke = time.monotonic()
            self._biggest = -1
            for key, _mask in ready:
                if key.data is None:
                    with self._lock:
                        self._woken = False
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                    continue
                run, kind, stream = key.data
                if kind == _PIPE:
                    self._read(run, key.fd, stream)
                else:
                    self._reap(run)
            self._run_commands()
            now = time.monotonic()
            self._post_due(now)
            if 0 <= self._biggest < TRICKLE and now - woke < COALESCE:
                time.sleep(COALESCE - (now - woke))
            with self._lock:
                if self._runs or self._commands:
                    idle_since = now
                elif self._closed or now - idle_since >= IDLE:
                    self._thread = None
                    if self._closed:
                        self._close_selector()
                    return

    def _next_timeout(self, now: float, idle_since: float) -> float | None:
        with self._lock:
            if self._closed and not self._runs:
                return 0.0
            due = None
            for box in self._boxes.values():
                if box.output and not box.posted:
                    at = box.last_post + TICK
                    due = at if due is None else min(due, at)
            if not self._runs:
                idle_end = idle_since + IDLE
                due = idle_end if due is None else min(due, idle_end)
        return None if due is None else max(0.0, due - now)

    def _read(self, run: MuxRun, fd: int, stream: Stream) -> None:
        with run.lock:
            if run.dropped or fd not in run.fds or run.paused:
                return
            try:
                n = os.readv(fd, [self._buf])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                n = 0  # treated as the pipe's end (EIO, EBADF: nothing more will come)
            if n == 0:
                self._close_pipe(run, fd)
                del run.fds[fd]
                self._tell(run, _EOF, stream)
                self._retire_if_done(run)
                return
            data = bytes(self._view[:n])
            self.reads += 1
            if n > self._biggest:
                self._biggest = n
            run.fed += n
            if not run.failed:
                try:
                    run.capture.feed(stream, data)  # its on_pending calls note_output
                except Exception:  # noqa: BLE001 - keep draining, or the child blocks on a full pipe
                    log.exception("output of %s could not be taken in; the pipe is still drained", stream.name)
                    run.failed = True
            if run.fed - run.told > MAX_UNTAKEN and not run.paused:
                run.paused = True  # the loop is behind: stop reading until it catches up
                self.pauses += 1
                for pipe in run.fds:
                    self._forget(run, pipe)
                self.note_output(run, True)  # so the loop is told, takes it, and reading resumes

    def _reap(self, run: MuxRun) -> None:
        with run.lock:
            fd = run.pidfd
            if fd < 0:
                return  # dropped in between
            self._close_pipe(run, fd)
            run.pidfd = -1
        try:
            code = run.proc.poll()  # readable: the root exited, so this reaps it at once
        except Exception:  # noqa: BLE001 - the loop side waits for it another way
            code = None
        self._tell(run, _EXIT, code)
        self._retire_if_done(run)

    def _forget(self, run: MuxRun, fd: int) -> None:
        if fd in run.registered:
            run.registered.discard(fd)
            assert self._sel is not None
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(fd)

    def _close_pipe(self, run: MuxRun, fd: int) -> None:
        self._forget(run, fd)
        with contextlib.suppress(OSError):
            os.close(fd)

    def _retire_if_done(self, run: MuxRun) -> None:
        if not run.fds and run.pidfd < 0:
            with self._lock:
                self._runs.discard(run)

    def _run_commands(self) -> None:
        with self._lock:
            commands, self._commands = self._commands, []
        for what, run in commands:
            if what == "drop":
                for fd in list(run.fds):
                    self._close_pipe(run, fd)
                run.fds.clear()
                if run.pidfd >= 0:
                    self._close_pipe(run, run.pidfd)
                    run.pidfd = -1
                with self._lock:
                    self._runs.discard(run)
            elif what == "resume" and run.paused and not run.dropped:
                run.paused = False
                assert self._sel is not None
                for fd, stream in run.fds.items():
                    if fd not in run.registered:
                        try:
                            self._sel.register(fd, selectors.EVENT_READ, (run, _PIPE, stream))
                            run.registered.add(fd)
                        except (OSError, ValueError, KeyError):
                            log.exception("pipe reader: cannot watch a pipe again; it is read as ended")
                            del run.fds[fd]
                            self._tell(run, _EOF, stream)
                            break
            if what == "drop" or not run.fds:
                self._retire_if_done(run)

    # ------------------------------------------------------------------ to the loop
    def note_output(self, run: MuxRun, urgent: bool) -> None:
        """(thread) Output of `run` is pending: the loop hears of it within `TICK`."""
        with self._lock:
            box = self._boxes[run.loop]
            box.output[run] = box.output.get(run, False) or urgent
            if not box.posted and time.monotonic() - box.last_post >= TICK:
                self._post(box, run.loop)

    def _tell(self, run: MuxRun, kind: int, arg: object) -> None:
        with self._lock:
            box = self._boxes[run.loop]
            box.events.append((run, kind, arg))
            if not box.posted:
                self._post(box, run.loop)

    def _post_due(self, now: float) -> None:
        with self._lock:
            for loop, box in self._boxes.items():
                if box.output and not box.posted and now - box.last_post >= TICK:
                    self._post(box, loop)

    def _post(self, box: _Outbox, loop: asyncio.AbstractEventLoop) -> None:
        """(under the lock) One call to the loop for everything in `box`, now and until it runs."""
        box.posted = True
        box.last_post = time.monotonic()
        try:
            loop.call_soon_threadsafe(self._deliver, box)
            self.posts += 1
        except RuntimeError:  # the loop is closed: nobody is waiting for these runs any more
            box.output.clear()
            box.events.clear()
            box.posted = False

    def _deliver(self, box: _Outbox) -> None:
        """(loop) Tell the runs' supervisors what the thread saw, output before ends."""
        resume: list[MuxRun] = []
        with self._lock:
            output, box.output = box.output, {}
            events, box.events = box.events, []
            box.posted = False
            for run in output:
                if run.paused:
                    resume.append(run)
                run.told = run.fed
        for run, urgent in output.items():
            if run.dropped:
                continue
            try:
                run.on_output(urgent)
            except Exception:  # noqa: BLE001 - one run's subscriber bug must not starve the others
                log.exception("output callback failed")
        for run, kind, arg in events:
            if kind == _EOF:
                fut = run.eof.get(arg)
                if fut is not None and not fut.done():
                    fut.set_result(None)
            elif not run.dropped:
                try:
                    run.on_exit(arg)
                except Exception:  # noqa: BLE001 - the others' ends must still be heard
                    log.exception("exit callback failed")
        for run in resume:
            self._command("resume", run)


class MuxSupervisor(Supervisor):
    """A `Supervisor` whose output notices come from the mux thread, batched, on the loop.

    The capture's ``on_pending`` (called on the mux thread inside `capture.feed`) only notes
    the run in the mux's outbox; the mux's one call per batch then runs `_schedule` on the
    loop, which flushes at once when the stream is quiet (or a batch passed 1 MiB) - no extra
    loop turn - and otherwise at most every ~50 ms, as the base class does.
    """

    def __init__(self, job: Job, loop: asyncio.AbstractEventLoop, mux: PipeMux) -> None:
        super().__init__(job, loop)
        self.mux = mux
        self.mux_run: MuxRun | None = None

    def request_flush(self, urgent: bool = False) -> None:
        run = self.mux_run
        if run is not None:
            self.mux.note_output(run, urgent)

    def _schedule(self, urgent: bool = False) -> None:
        assert self.loop is not None
        if self._handle is not None:
            if not urgent:
                return
            self._handle.cancel()
            self._handle = None
        now = time.monotonic()
        if now - self._window_start >= FLUSH_INTERVAL:
            self._window_start, self._window_bytes, self._window_batches = now, 0, 0
        if urgent or (self._window_bytes < self.QUIET_BYTES and self._window_batches < self.QUIET_BURST):
            self.flush()
        else:
            self._handle = self.loop.call_later(self._window_start + FLUSH_INTERVAL - now, self.flush)

    def _detach(self) -> None:
        """The supervision is ending (its `finally`, before the capture's last decode): nothing
        is fed after this, even when the run was cancelled with its pipes still open."""
        super()._detach()
        if self.mux_run is not None:
            self.mux.drop(self.mux_run)
