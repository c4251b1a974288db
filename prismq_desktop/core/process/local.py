"""SubprocessWrapper: the local executor, with four ways to run a resolved Launch.

- ASYNC: the loop reads the pipes (a pidfd for the exit on Linux, else an asyncio subprocess);
  under the window (a loop not of asyncio's own, POSIX) every run's pipes and pidfd are read
  by the executor's one selector thread instead (`PipeMux`, mux.py: the loop only hears of
  exits and batches). `executor.pipe_mux_wanted` decides; ``PRISMQ_PIPE_MUX`` forces it.
- THREADED: `Popen` plus one reader thread per pipe; the loop only gets batches.
  Works on any loop (a Windows selector loop cannot spawn asyncio subprocesses).
- LOCAL: a blocking run on the calling thread, no event loop; for debugging and
  scripts. Output is still captured, logged and batched to subscribers.
- DRY_RUN: resolves and records what would run; starts nothing.

How a mode is chosen, and the `Executor` protocol and `Job` it implements, are in
executor.py; what happens once the process exists (batches, timeouts, stopping, the
outcome) is the `Supervisor`'s (supervisor.py). The wrapper knows nothing of the
registry: the engine gives it a `Job` with callbacks, so another executor (a remote one)
can take its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable

from prismq_desktop.core.models import Outcome, OutcomeKind, RunMode
from prismq_desktop.core.process.executor import Job, choose_mode, parse_mode, pipe_mux_wanted
from prismq_desktop.core.process.launch import Launch
from prismq_desktop.core.process.logfile import Stream
from prismq_desktop.core.process.mux import MuxRun, MuxSupervisor, PipeMux
from prismq_desktop.core.process.pipes import LoopPipe, pipe_reader, thread_future, widen_pipe
from prismq_desktop.core.process.supervisor import Supervisor, start_error
from prismq_desktop.core.process.tree import ProcessTree, popen_kwargs, spawn_clock

__all__ = ["SubprocessWrapper", "popen_piped"]


def _wait_in_thread(loop: asyncio.AbstractEventLoop, proc: subprocess.Popen[bytes], run_id: int,
                    exited: asyncio.Future[object]) -> None:
    """Wait for `proc` in a thread and settle `exited` with its code: the fallback when no pidfd
    could be had (EMFILE, an older kernel), shared by the loop's reads and the pipe mux."""
    waiter = thread_future(loop, proc.wait, f"run-{run_id}-wait")

    def done(fut: asyncio.Future[object]) -> None:
        if not exited.done():
            exited.set_result(fut.result())

    waiter.add_done_callback(done)

log = logging.getLogger(__name__)


class _RunProtocol(asyncio.SubprocessProtocol):
    """Pipes of an ASYNC run: each piece asyncio reads goes straight to the capture as one chunk
    (one log record; no StreamReader buffer in between, no reader tasks)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, feed: Callable[[Stream, bytes], None]) -> None:
        self.feed = feed
        self.eof: dict[int, asyncio.Future[object]] = {1: loop.create_future(), 2: loop.create_future()}
        self.exited: asyncio.Future[object] = loop.create_future()
        self.transport: asyncio.SubprocessTransport | None = None
        self.failed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if self.failed:
            return  # keep reading (asyncio does), so the child never blocks on a full pipe
        try:
            self.feed(Stream.STDOUT if fd == 1 else Stream.STDERR, data.encode() if isinstance(data, str) else data)
        except Exception:  # noqa: BLE001 - never raise into the transport: it would stop reading
            log.exception("output could not be taken in; the pipes are still drained")
            self.failed = True

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        fut = self.eof.get(fd)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def process_exited(self) -> None:
        assert self.transport is not None
        if not self.exited.done():
            self.exited.set_result(self.transport.get_returncode())


class _PipeProtocol(LoopPipe):
    """One pipe of a pidfd-watched ASYNC run, read by the loop itself (no transport): a wake-up
    reads until the pipe is empty, up to 1 MiB a read (asyncio's transport read 256 KiB once per
    wake-up), each read one chunk to the capture: one log record and one decode per read."""


def _pidfd_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """Can ASYNC runs on `loop` be watched with a pidfd (Linux ≥ 5.3, a selector loop)?

    asyncio's default child watcher in 3.11 (ThreadedChildWatcher) starts a thread per child
    and waits for it to start; swapping the watcher means changing the process-wide policy
    (set_child_watcher, deprecated in 3.12, gone in 3.14), which the guide forbids. Watching
    our own pidfd with `add_reader` needs neither, and is the same on 3.11 and 3.12."""
    return (_PIDFD_OK and isinstance(loop, asyncio.SelectorEventLoop)
            and os.environ.get("PRISMQ_NO_PIDFD") is None)


def _can_pidfd() -> bool:
    if not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))  # the kernel may lack it (ENOSYS) or a sandbox refuse it
    except OSError:
        return False
    return True


_PIDFD_OK = _can_pidfd()
_devnull_fd = -1
_devnull_lock = threading.Lock()


def _devnull() -> int:
    """One /dev/null fd for every child's stdin, not an open per run (never closed; close-on-exec
    here, dup'ed as the child's fd 0)."""
    global _devnull_fd
    with _devnull_lock:
        if _devnull_fd < 0:
            _devnull_fd = os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        return _devnull_fd


class SubprocessWrapper:
    """The local process executor."""

    def __init__(self, mode: RunMode | str = RunMode.AUTO) -> None:
        self.requested_mode = parse_mode(mode) if isinstance(mode, str) else mode
        self.mux: PipeMux | None = None  # made with the first ASYNC run that uses it (POSIX)

    def close(self) -> None:
        """End the pipe reader thread now (it also ends by itself once idle)."""
        if self.mux is not None:
            self.mux.close()
            self.mux = None

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
        if mode is RunMode.ASYNC:
            try:
                return await self._execute_async(job, loop)
            except NotImplementedError:  # the loop cannot spawn after all: fall back
                pass
        return await self._execute_threaded(job, loop)

    async def _execute_async(self, job: Job, loop: asyncio.AbstractEventLoop) -> Outcome:
        if pipe_mux_wanted(loop):
            if self.mux is None:
                self.mux = PipeMux()
            return await self._execute_mux(job, loop, self.mux)
        if _pidfd_loop(loop):
            return await self._execute_pidfd(job, loop)
        launch = job.launch
        supervisor = Supervisor(job, loop)
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
            return start_error(launch, exc)
        supervisor.attach(ProcessTree(transport.get_pid()))
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
            return await supervisor.supervise(proto.exited, list(proto.eof.values()), transport.close)
        finally:
            transport.close()

    async def _execute_pidfd(self, job: Job, loop: asyncio.AbstractEventLoop) -> Outcome:
        """ASYNC with no thread at all: Popen, the pipes read by the loop, the exit seen on a pidfd."""
        launch = job.launch
        supervisor = Supervisor(job, loop)
        # one loop turn before the spawn, as asyncio's own path takes: a subscriber made in the
        # turn that queued the run (a task that calls orch.events()) still sees it start
        await asyncio.sleep(0)
        if job.stop_outcome is not None:
            return job.stop_outcome
        before = spawn_clock()
        try:
            proc = popen_piped(launch)
        except OSError as exc:
            return start_error(launch, exc)
        spawned = (before, spawn_clock())
        assert proc.stdout is not None and proc.stderr is not None
        exited: asyncio.Future[object] = loop.create_future()
        pidfd = -1
        try:
            pidfd = os.pidfd_open(proc.pid)
        except OSError:  # cannot happen after the probe, but never lose the run to it
            pass
        supervisor.attach(ProcessTree(proc.pid, spawned=spawned))

        def wait_in_thread() -> None:
            _wait_in_thread(loop, proc, job.run_id, exited)

        def reaped() -> None:
            loop.remove_reader(pidfd)
            code = proc.poll()  # readable: the child has exited, so this reaps it at once
            if code is None:
                wait_in_thread()  # poll could not take Popen's wait lock: never leave the run waiting
            elif not exited.done():
                exited.set_result(code)

        if pidfd >= 0:
            loop.add_reader(pidfd, reaped)
        else:
            wait_in_thread()
        transports: list[LoopPipe] = []
        eofs: list[asyncio.Future[object]] = []
        try:
            for pipe, stream in ((proc.stdout, Stream.STDOUT), (proc.stderr, Stream.STDERR)):
                with contextlib.suppress(ValueError, OSError):
                    widen_pipe(pipe.fileno())
                transports.append(_PipeProtocol(loop, pipe.fileno(), stream, job.capture.feed).start())
                eofs.append(transports[-1].eof)

            def abort_pipes() -> None:
                for t in transports:
                    t.close()

            return await supervisor.supervise(exited, eofs, abort_pipes)
        finally:
            for t in transports:
                t.close()
            for pipe in (proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    pipe.close()
            if pidfd >= 0:
                loop.remove_reader(pidfd)  # a no-op once reaped() ran
                os.close(pidfd)

    async def _execute_mux(self, job: Job, loop: asyncio.AbstractEventLoop, mux: PipeMux) -> Outcome:
        """ASYNC on POSIX: Popen onto our own pipes, which the mux thread reads (and the pidfd it
        watches); the loop only supervises: exits, ends of pipes and batches come to it."""
        launch = job.launch
        supervisor = MuxSupervisor(job, loop, mux)
        # one loop turn before the spawn, as asyncio's own path takes: a subscriber made in the
        # turn that queued the run (a task that calls orch.events()) still sees it start
        await asyncio.sleep(0)
        if job.stop_outcome is not None:
            return job.stop_outcome
        before = spawn_clock()
        try:
            proc, fds = _popen_to_fds(launch)
        except OSError as exc:
            return start_error(launch, exc)
        spawned = (before, spawn_clock())
        pidfd = -1
        if _PIDFD_OK and os.environ.get("PRISMQ_NO_PIDFD") is None:
            with contextlib.suppress(OSError):  # EMFILE: the exit is waited for by a thread instead
                pidfd = os.pidfd_open(proc.pid)
        exited: asyncio.Future[object] = loop.create_future()

        def wait_in_thread() -> None:
            _wait_in_thread(loop, proc, job.run_id, exited)

        def on_exit(code: int | None) -> None:
            if code is None:
                wait_in_thread()  # poll could not take Popen's wait lock: never leave the run waiting
            elif not exited.done():
                exited.set_result(code)

        run = MuxRun(loop, job.capture, proc, fds, pidfd, supervisor._schedule, on_exit)
        supervisor.mux_run = run
        supervisor.attach(ProcessTree(proc.pid, spawned=spawned))
        try:
            mux.add(run)
        except OSError as exc:  # the selector refused them (out of memory): threads read them
            log.warning("run %s: %s; reading its pipes with threads", job.run_id, exc)
            supervisor.mux_run = None
            return await self._supervise_fds(job, loop, proc, fds, pidfd, supervisor)
        if pidfd < 0:
            wait_in_thread()
        return await supervisor.supervise(exited, list(run.eof.values()), lambda: mux.drop(run))

    async def _supervise_fds(self, job: Job, loop: asyncio.AbstractEventLoop, proc: subprocess.Popen[bytes],
                             fds: dict[int, Stream], pidfd: int, supervisor: Supervisor) -> Outcome:
        """The mux could not take a started run: reader threads on its fds, as THREADED mode has."""
        supervisor.threadsafe = True
        job.capture.on_pending = supervisor.request_flush
        if pidfd >= 0:
            os.close(pidfd)
        readers = [thread_future(loop, pipe_reader(fd, stream, job.capture, close=True), f"run-{job.run_id}-{stream.name}")
                   for fd, stream in fds.items()]
        waiter = thread_future(loop, proc.wait, f"run-{job.run_id}-wait")
        return await supervisor.supervise(waiter, readers, lambda: None)

    async def _execute_threaded(self, job: Job, loop: asyncio.AbstractEventLoop) -> Outcome:
        supervisor = Supervisor(job, loop, threadsafe=True)
        proc = _spawn_supervised(job, supervisor)
        if isinstance(proc, Outcome):
            return proc
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            thread_future(loop, pipe_reader(proc.stdout.fileno(), Stream.STDOUT, job.capture), f"run-{job.run_id}-stdout"),
            thread_future(loop, pipe_reader(proc.stderr.fileno(), Stream.STDERR, job.capture), f"run-{job.run_id}-stderr"),
        ]
        waiter = thread_future(loop, proc.wait, f"run-{job.run_id}-wait")
        try:
            return await supervisor.supervise(waiter, readers, lambda: None)
        finally:
            for pipe in (proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    pipe.close()

    # ------------------------------------------------------------------ LOCAL mode
    def execute_blocking(self, job: Job) -> Outcome:
        """Run on the calling thread with no event loop; Ctrl+C cancels the run's tree."""
        if job.stop_outcome is not None:
            return job.stop_outcome
        supervisor = Supervisor(job)
        proc = _spawn_supervised(job, supervisor)
        if isinstance(proc, Outcome):
            return proc
        assert proc.stdout is not None and proc.stderr is not None
        threads = [
            threading.Thread(target=pipe_reader(pipe.fileno(), stream, job.capture), daemon=True)
            for pipe, stream in ((proc.stdout, Stream.STDOUT), (proc.stderr, Stream.STDERR))
        ]
        for t in threads:
            t.start()

        def wait(timeout: float | None) -> int | None:
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None

        try:
            return supervisor.supervise_blocking(wait, threads)
        finally:
            for pipe in (proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    pipe.close()


def popen_piped(launch: Launch) -> subprocess.Popen[bytes]:
    """Start a launch with piped output in its own session/job (THREADED and LOCAL modes)."""
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        launch.argv,
        stdin=_devnull(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=launch.cwd,
        env=launch.env,
        bufsize=0,
        **popen_kwargs(),  # type: ignore[call-overload]
    )
    return proc


def _popen_to_fds(launch: Launch) -> tuple[subprocess.Popen[bytes], dict[int, Stream]]:
    """Start a launch writing into two pipes of ours (read ends non-blocking, close-on-exec,
    1 MiB wide), so no file object wraps them: the mux owns and closes the read ends."""
    out_r, out_w = os.pipe()
    try:
        err_r, err_w = os.pipe()
    except OSError:
        os.close(out_r)
        os.close(out_w)
        raise
    try:
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            launch.argv, stdin=_devnull(), stdout=out_w, stderr=err_w, cwd=launch.cwd, env=launch.env,
            bufsize=0, **popen_kwargs(),  # type: ignore[call-overload]
        )
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
        widen_pipe(fd)
    return proc, {out_r: Stream.STDOUT, err_r: Stream.STDERR}


def _spawn_supervised(job: Job, supervisor: Supervisor) -> subprocess.Popen[bytes] | Outcome:
    """Start the job's process with wide pipes and hand its tree to the supervisor (THREADED
    and LOCAL), or the outcome of a start the OS refused."""
    before = spawn_clock()
    try:
        proc = popen_piped(job.launch)
    except OSError as exc:
        return start_error(job.launch, exc)
    supervisor.attach(ProcessTree(proc.pid, spawned=(before, spawn_clock())))
    assert proc.stdout is not None and proc.stderr is not None
    widen_pipe(proc.stdout.fileno())
    widen_pipe(proc.stderr.fileno())
    return proc
