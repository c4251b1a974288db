"""SubprocessWrapper: the local executor, with four ways to run a resolved Launch.

- ASYNC: asyncio subprocess on the running loop, pipes read with `read(65536)`.
- THREADED: `Popen` plus one reader thread per pipe; the loop only gets batches.
  Works on any loop (a Windows selector loop cannot spawn asyncio subprocesses).
- LOCAL: a blocking run on the calling thread, no event loop; for debugging and
  scripts. Output is still captured, logged and batched to subscribers.
- DRY_RUN: resolves and records what would run; starts nothing.

AUTO picks ASYNC when the running loop can spawn subprocesses, else THREADED. The
`PRISMQ_RUN_MODE` environment variable (async, threaded, local, dry-run) overrides AUTO;
an explicit mode argument beats both. The wrapper knows nothing of the registry: the
engine gives it a `Job` with callbacks, so another executor (a remote one) can take its
place.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from prismq_desktop.core.models import Outcome, OutcomeKind, RunMode
from prismq_desktop.core.process.launch import Launch
from prismq_desktop.core.process.output import CHUNK_SIZE, OutputCapture, OutputChunk, Stream
from prismq_desktop.core.process.tree import IS_WINDOWS, ProcessTree, popen_kwargs

ENV_MODE = "PRISMQ_RUN_MODE"
FLUSH_INTERVAL = 0.05  # batches reach subscribers at most every ~50 ms
LINGER = 1.0  # after the root exits, how long its leftovers may keep the pipes open


class ModeError(ValueError):
    pass


def _parse_mode(value: str) -> RunMode:
    try:
        return RunMode(value.strip().lower().replace("_", "-"))
    except ValueError:
        allowed = ", ".join(m.value for m in RunMode)
        raise ModeError(f"unknown run mode {value!r} (choose from {allowed})") from None


def loop_can_spawn(loop: asyncio.AbstractEventLoop) -> bool:
    """Can this loop run asyncio subprocesses? (Not: a Windows selector loop, or loops without support.)"""
    proactor = getattr(asyncio, "ProactorEventLoop", None)
    if IS_WINDOWS and (proactor is None or not isinstance(loop, proactor)):
        return False
    impl = getattr(type(loop), "_make_subprocess_transport", None)
    return impl is not None and impl is not getattr(asyncio.BaseEventLoop, "_make_subprocess_transport", None)


def requested_mode(requested: RunMode | str = RunMode.AUTO) -> RunMode:
    """The explicit mode, else the `PRISMQ_RUN_MODE` override, else AUTO (unresolved)."""
    mode = _parse_mode(requested) if isinstance(requested, str) else requested
    if mode is RunMode.AUTO and os.environ.get(ENV_MODE):
        mode = _parse_mode(os.environ[ENV_MODE])
    return mode


def choose_mode(requested: RunMode | str = RunMode.AUTO) -> RunMode:
    """Resolve AUTO (and the environment override) to a concrete mode."""
    mode = requested_mode(requested)
    if mode is not RunMode.AUTO:
        return mode
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return RunMode.LOCAL
    return RunMode.ASYNC if loop_can_spawn(loop) else RunMode.THREADED


@dataclass
class Job:
    """One execution: what the executor needs and how it reports back.

    Control requests (`request_stop`, `pause`, `resume`) may come before the process
    exists, while it runs, or after; they are safe from the loop thread in ASYNC and
    THREADED modes and from any thread in LOCAL mode.
    """

    run_id: int
    launch: Launch
    capture: OutputCapture
    soft_timeout: float | None = None
    hard_timeout: float | None = None
    grace_period: float = 5.0
    on_started: Callable[[int, float | None], None] = lambda pid, ct: None
    on_output: Callable[[list[OutputChunk]], None] = lambda chunks: None
    tree: ProcessTree | None = None
    stop_outcome: Outcome | None = None
    _stop_graceful: bool = True
    _stop_task: asyncio.Task[None] | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop_event: threading.Event = field(default_factory=threading.Event)

    def request_stop(self, kind: OutcomeKind, message: str, graceful: bool = True) -> bool:
        """Stop the whole tree (TERM, grace, KILL; or KILL at once). The first reason wins."""
        if self.stop_outcome is None:
            self.stop_outcome = Outcome(kind, None, message)
        elif graceful:
            return False  # already stopping; a second cancel does not restart the grace
        self._stop_graceful = graceful
        self._stop_event.set()
        if self.tree is not None and self._loop is not None:
            self._begin_async_stop(graceful)
        return True

    def _begin_async_stop(self, graceful: bool) -> None:
        assert self.tree is not None and self._loop is not None
        if self._stop_task is not None and not graceful:
            self._stop_task.cancel()
        self._stop_task = self._loop.create_task(self.tree.stop(self.grace_period, graceful))

    def pause(self) -> bool:
        if self.tree is None or self.stop_outcome is not None:
            return False
        self.tree.suspend()
        return True

    def resume(self) -> bool:
        if self.tree is None:
            return False
        self.tree.resume()
        return True


def _final_outcome(job: Job, returncode: int) -> Outcome:
    if job.stop_outcome is not None:
        return Outcome(job.stop_outcome.kind, returncode, job.stop_outcome.message)
    if returncode < 0 and not IS_WINDOWS:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return Outcome(OutcomeKind.FAILED, returncode, f"killed by {name}")
    return Outcome.from_exit_code(returncode)


def _start_error(launch: Launch, exc: OSError) -> Outcome:
    return Outcome(OutcomeKind.FAILED_TO_START, None, f"cannot start {launch.argv[0]}: {exc.strerror or exc}")


class _Flusher:
    """Hands pending output to subscribers on the loop.

    Sparse output goes out at once (a line split over two writes must not wait 50 ms for
    its newline); a stream is throttled to a batch every ~50 ms, or sooner once a batch
    holds 1 MiB, so memory stays bounded however fast the child writes.
    """

    QUIET_BYTES = 4096  # batches this small (and few) do not start throttling
    QUIET_BURST = 4

    def __init__(self, loop: asyncio.AbstractEventLoop, job: Job, threadsafe: bool) -> None:
        self.loop = loop
        self.job = job
        self.threadsafe = threadsafe
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._window_start = -1.0
        self._window_bytes = 0
        self._window_batches = 0

    def request(self, urgent: bool = False) -> None:
        if self.threadsafe:
            with contextlib.suppress(RuntimeError):  # loop closed at shutdown
                self.loop.call_soon_threadsafe(self._schedule, urgent)
        else:
            self._schedule(urgent)

    def _schedule(self, urgent: bool = False) -> None:
        if self._handle is not None:
            if not urgent or not isinstance(self._handle, asyncio.TimerHandle):
                return
            self._handle.cancel()
        now = time.monotonic()
        if now - self._window_start >= FLUSH_INTERVAL:
            self._window_start, self._window_bytes, self._window_batches = now, 0, 0
        quiet = self._window_bytes < self.QUIET_BYTES and self._window_batches < self.QUIET_BURST
        if urgent or quiet:
            self._handle = self.loop.call_soon(self.fire)
        else:
            self._handle = self.loop.call_later(self._window_start + FLUSH_INTERVAL - now, self.fire)

    def fire(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        chunks = self.job.capture.take_pending()
        if chunks:
            self._window_batches += 1
            self._window_bytes += sum(len(c.data) for c in chunks)
            self.job.on_output(chunks)


class _RunProtocol(asyncio.SubprocessProtocol):
    """Pipes of an ASYNC run: each piece asyncio reads goes straight to the capture in chunks of
    at most 64 KiB (no StreamReader buffer in between, no reader tasks)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, feed: Callable[[Stream, bytes], None]) -> None:
        self.feed = feed
        self.eof: dict[int, asyncio.Future[object]] = {1: loop.create_future(), 2: loop.create_future()}
        self.exited: asyncio.Future[object] = loop.create_future()
        self.transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        stream = Stream.STDOUT if fd == 1 else Stream.STDERR
        raw = data.encode() if isinstance(data, str) else data
        if len(raw) <= CHUNK_SIZE:
            self.feed(stream, raw)
            return
        view = memoryview(raw)
        for start in range(0, len(raw), CHUNK_SIZE):
            self.feed(stream, bytes(view[start : start + CHUNK_SIZE]))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        fut = self.eof.get(fd)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def process_exited(self) -> None:
        assert self.transport is not None
        if not self.exited.done():
            self.exited.set_result(self.transport.get_returncode())


class Executor(Protocol):
    """What the engine needs from whatever actually runs a Launch (local now, remote later).

    The spec (what to run) is resolved and recorded by the engine; an executor only
    starts it, reports through the Job's callbacks, honours its stop/pause requests and
    returns the Outcome.
    """

    def mode_for_run(self, override: RunMode | str | None = None) -> RunMode: ...

    async def execute(self, job: Job, mode: RunMode) -> Outcome: ...

    def execute_blocking(self, job: Job) -> Outcome: ...


class SubprocessWrapper:
    """The local process executor."""

    def __init__(self, mode: RunMode | str = RunMode.AUTO) -> None:
        self.requested_mode = _parse_mode(mode) if isinstance(mode, str) else mode

    def mode_for_run(self, override: RunMode | str | None = None) -> RunMode:
        return choose_mode(override if override is not None else self.requested_mode)

    # ------------------------------------------------------------------ async modes
    async def execute(self, job: Job, mode: RunMode) -> Outcome:
        """Run `job` to completion in ASYNC or THREADED mode; never raises for a bad child."""
        if mode is RunMode.DRY_RUN:
            return Outcome(OutcomeKind.SUCCEEDED, None, "dry run: nothing was started")
        if mode is RunMode.LOCAL:
            return self.execute_blocking(job)
        if job.stop_outcome is not None:
            return job.stop_outcome
        loop = asyncio.get_running_loop()
        job._loop = loop
        if mode is RunMode.ASYNC:
            try:
                return await self._execute_async(job, loop)
            except NotImplementedError:  # the loop cannot spawn after all: fall back
                pass
        return await self._execute_threaded(job, loop)

    async def _execute_async(self, job: Job, loop: asyncio.AbstractEventLoop) -> Outcome:
        launch = job.launch
        flusher = _Flusher(loop, job, threadsafe=False)
        job.capture.on_pending = flusher.request
        proto = _RunProtocol(loop, job.capture.feed)
        try:
            transport, _ = await loop.subprocess_exec(
                lambda: proto,
                *launch.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=launch.cwd,
                env=launch.env,
                **popen_kwargs(),  # type: ignore[arg-type]
            )
        except OSError as exc:
            return _start_error(launch, exc)
        pid = transport.get_pid()
        job.tree = ProcessTree(pid)
        job.on_started(pid, job.tree.create_time)
        for fd in (1, 2):
            pipe_transport = transport.get_pipe_transport(fd)
            pipe = pipe_transport.get_extra_info("pipe") if pipe_transport is not None else None
            if pipe is None:
                continue
            try:
                widen_pipe(pipe.fileno())
            except (ValueError, OSError):
                pass  # a fast child may already have closed it: nothing left to widen
        try:
            return await self._supervise(job, proto.exited, list(proto.eof.values()), flusher, transport.close)
        finally:
            transport.close()

    async def _execute_threaded(self, job: Job, loop: asyncio.AbstractEventLoop) -> Outcome:
        launch = job.launch
        flusher = _Flusher(loop, job, threadsafe=True)
        job.capture.on_pending = flusher.request
        try:
            proc = _popen(launch)
        except OSError as exc:
            return _start_error(launch, exc)
        job.tree = ProcessTree(proc.pid)
        job.on_started(proc.pid, job.tree.create_time)
        assert proc.stdout is not None and proc.stderr is not None
        widen_pipe(proc.stdout.fileno())
        widen_pipe(proc.stderr.fileno())

        def in_thread(fn: Callable[[], object], name: str) -> asyncio.Future[object]:
            fut: asyncio.Future[object] = loop.create_future()

            def body() -> None:
                try:
                    result: object = fn()
                except BaseException as exc:  # noqa: BLE001 - handed to the loop
                    err = exc

                    def fail() -> None:
                        if not fut.done():
                            fut.set_exception(err)

                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(fail)
                    return

                def succeed() -> None:
                    if not fut.done():
                        fut.set_result(result)

                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(succeed)

            threading.Thread(target=body, name=name, daemon=True).start()
            return fut

        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            in_thread(_reader(proc.stdout.fileno(), Stream.STDOUT, job.capture), f"run-{job.run_id}-stdout"),
            in_thread(_reader(proc.stderr.fileno(), Stream.STDERR, job.capture), f"run-{job.run_id}-stderr"),
        ]
        waiter = in_thread(proc.wait, f"run-{job.run_id}-wait")
        try:
            return await self._supervise(job, waiter, readers, flusher, lambda: None)
        finally:
            for pipe in (proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    pipe.close()

    async def _supervise(
        self,
        job: Job,
        waiter: asyncio.Future[object],
        readers: list[asyncio.Future[None]] | list[asyncio.Future[object]] | list[asyncio.Task[None]],
        flusher: _Flusher,
        abort_pipes: Callable[[], None],
    ) -> Outcome:
        assert job.tree is not None
        tree = job.tree
        if job.stop_outcome is not None:  # stopped while starting
            job._begin_async_stop(job._stop_graceful)
        started = time.monotonic()
        try:
            while not waiter.done():
                deadline = _next_deadline(job, started)
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                await asyncio.wait({waiter}, timeout=timeout)
                if not waiter.done():
                    _check_timeouts(job, started)
            returncode = waiter.result()
            assert isinstance(returncode, int)
            # The root is gone; give its output (and any leftover it left) a moment, then
            # stop what remains so nothing outlives the run.
            _done, pending = await asyncio.wait(readers, timeout=LINGER)
            if pending:
                tree.kill_leftovers()
                _done, pending = await asyncio.wait(pending, timeout=LINGER)
            if pending:
                abort_pipes()
                for fut in pending:
                    fut.cancel()
            elif tree.kill_leftovers():
                pass  # pipes closed but members of its group still ran: stopped now
            return _final_outcome(job, returncode)
        except asyncio.CancelledError:
            # The engine itself is being cancelled: never leave the tree behind.
            tree.kill(tree.snapshot())
            raise
        finally:
            if job._stop_task is not None and not job._stop_task.done():
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(job._stop_task, timeout=job.grace_period + 2)
            job.capture.finish()
            flusher.fire()
            tree.close()

    # ------------------------------------------------------------------ LOCAL mode
    def execute_blocking(self, job: Job) -> Outcome:
        """Run on the calling thread with no event loop; Ctrl+C cancels the run's tree."""
        if job.stop_outcome is not None:
            return job.stop_outcome
        launch = job.launch
        last_flush = [0.0]

        def flush(force: bool = False) -> None:
            now = time.monotonic()
            if force or now - last_flush[0] >= FLUSH_INTERVAL:
                last_flush[0] = now
                chunks = job.capture.take_pending()
                if chunks:
                    job.on_output(chunks)

        job.capture.on_pending = None
        try:
            proc = _popen(launch)
        except OSError as exc:
            return _start_error(launch, exc)
        tree = job.tree = ProcessTree(proc.pid)
        job.on_started(proc.pid, tree.create_time)
        assert proc.stdout is not None and proc.stderr is not None
        widen_pipe(proc.stdout.fileno())
        widen_pipe(proc.stderr.fileno())
        threads = [
            threading.Thread(target=_reader(pipe.fileno(), stream, job.capture), daemon=True)
            for pipe, stream in ((proc.stdout, Stream.STDOUT), (proc.stderr, Stream.STDERR))
        ]
        for t in threads:
            t.start()
        started = time.monotonic()
        try:
            while True:
                try:
                    returncode = proc.wait(timeout=FLUSH_INTERVAL)
                    break
                except subprocess.TimeoutExpired:
                    pass
                flush()
                _check_timeouts(job, started)
                if job._stop_event.is_set():
                    job._stop_event.clear()
                    if job._stop_graceful:
                        threading.Thread(target=tree.stop_blocking, args=(job.grace_period,), daemon=True).start()
                    else:
                        tree.kill(tree.snapshot())
        except KeyboardInterrupt:
            job.request_stop(OutcomeKind.CANCELLED, "interrupted from the keyboard (Ctrl+C)")
            tree.stop_blocking(job.grace_period)
            returncode = proc.wait()
        for t in threads:
            t.join(LINGER)
        if any(t.is_alive() for t in threads):
            tree.kill_leftovers()
            for t in threads:
                t.join(LINGER)
        else:
            tree.kill_leftovers()
        for pipe in (proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                pipe.close()
        job.capture.finish()
        flush(force=True)
        tree.close()
        return _final_outcome(job, returncode)


def _popen(launch: Launch) -> subprocess.Popen[bytes]:
    """Start a launch with piped output in its own session/job (THREADED and LOCAL modes)."""
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        launch.argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=launch.cwd,
        env=launch.env,
        bufsize=0,
        **popen_kwargs(),  # type: ignore[call-overload]
    )
    return proc


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


def _reader(fd: int, stream: Stream, capture: OutputCapture) -> Callable[[], None]:
    def run() -> None:
        read = os.read
        feed = capture.feed
        try:
            while True:
                data = read(fd, CHUNK_SIZE)
                if not data:
                    return
                feed(stream, data)
        except OSError:
            return

    return run


def _next_deadline(job: Job, started: float) -> float | None:
    marks = []
    if job.soft_timeout is not None and job.stop_outcome is None:
        marks.append(started + job.soft_timeout)
    if job.hard_timeout is not None and (job.stop_outcome is None or job._stop_graceful):
        marks.append(started + job.hard_timeout)
    return min(marks) if marks else None


def _check_timeouts(job: Job, started: float) -> None:
    elapsed = time.monotonic() - started
    if job.hard_timeout is not None and elapsed >= job.hard_timeout and (job.stop_outcome is None or job._stop_graceful):
        msg = f"hard timeout of {job.hard_timeout:g}s reached: process tree killed"
        if job.stop_outcome is not None and job.stop_outcome.kind is OutcomeKind.TIMED_OUT:
            job.stop_outcome = Outcome(OutcomeKind.TIMED_OUT, None, msg)
        job.request_stop(OutcomeKind.TIMED_OUT, msg, graceful=False)
    elif job.soft_timeout is not None and elapsed >= job.soft_timeout and job.stop_outcome is None:
        job.request_stop(
            OutcomeKind.TIMED_OUT,
            f"soft timeout of {job.soft_timeout:g}s reached: asked to stop, killed after {job.grace_period:g}s grace",
        )

