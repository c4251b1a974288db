"""Supervisor: everything around one started local process, the same for every way of running it.

`SubprocessWrapper` (ASYNC, THREADED and LOCAL modes) and `ResourcePool` (warm workers) differ
only in how a process is started and how its pipes are read. Once it exists, one `Supervisor`
per run:

- batches output to subscribers (`request_flush` is the capture's ``on_pending``): sparse
  output goes out at once, a busy stream at most every ~50 ms or once a batch holds 1 MiB;
- takes the job's stop requests (`attach` sets ``job.stop_listener``) and stops the whole
  tree: TERM, grace, KILL, or KILL at once;
- enforces the soft and hard timeouts;
- after the root exits, gives the pipes a moment, kills leftovers, and turns the return code
  into the run's `Outcome`.

`supervise` does this on an event loop (the process's end and each pipe's end are futures);
`supervise_blocking` does it on the calling thread with no loop (LOCAL mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Sequence

from prismq_desktop.core.models import Outcome, OutcomeKind
from prismq_desktop.core.process.executor import Job
from prismq_desktop.core.process.launch import RUN_TAG_VAR, Launch
from prismq_desktop.core.process.tree import IS_WINDOWS, ProcessTree

FLUSH_INTERVAL = 0.05  # batches reach subscribers at most every ~50 ms
LINGER = 1.0  # after the root exits, how long its leftovers may keep the pipes open


SOFT_TIMEOUT_PREFIX = "soft timeout of "


#: Windows stops are immediate (tree.py: no console, so no CTRL_BREAK for CREATE_NO_WINDOW children).
WINDOWS_STOP = "terminated at once (Windows has no graceful stop for a windowless process)"


def _how_it_stopped(job: Job, returncode: int, windows: bool = IS_WINDOWS) -> str:
    """What really happened after a soft timeout asked the tree to stop: "stopped by SIGTERM
    after 0.1 s", "exited with code 3 after 0.2 s", or "killed by SIGKILL after the 5 s grace";
    on Windows, where the job is terminated without a grace, `WINDOWS_STOP`."""
    after = time.monotonic() - job.stop_requested_at if job.stop_requested_at is not None else None
    took = "" if after is None else f" after {after:.1f} s" if after >= 0.1 else f" after {after:.2f} s"
    if windows:
        return WINDOWS_STOP
    if not IS_WINDOWS and returncode == -signal.SIGKILL:
        return f"killed by SIGKILL after the {job.grace_period:g} s grace"
    if returncode < 0 and not IS_WINDOWS:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"stopped by {name}{took}"
    return f"exited with code {returncode}{took}"


def final_outcome(job: Job, returncode: int) -> Outcome:
    """The outcome of a run whose root exited with `returncode` (a stop request names the kind)."""
    if job.stop_outcome is not None:
        message = job.stop_outcome.message
        stopped = job.tree.stopped if job.tree is not None else 0
        if stopped:
            message = f"{message} (tree of {stopped} process{'' if stopped == 1 else 'es'} stopped)"
        if message and message.startswith(SOFT_TIMEOUT_PREFIX):
            message = message.replace(" (tree", f"; {_how_it_stopped(job, returncode)} (tree", 1) if stopped else \
                f"{message}; {_how_it_stopped(job, returncode)}"
        return Outcome(job.stop_outcome.kind, returncode, message)
    if returncode < 0 and not IS_WINDOWS:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return Outcome(OutcomeKind.FAILED, returncode, f"killed by {name}")
    return Outcome.from_exit_code(returncode)


def start_error(launch: Launch, exc: OSError) -> Outcome:
    """The outcome of a launch the OS refused to start."""
    return Outcome(OutcomeKind.FAILED_TO_START, None, f"cannot start {launch.argv[0]}: {exc.strerror or exc}")


class Supervisor:
    """Supervises one job's process from its start to its outcome.

    Make it before the process can write (it becomes the capture's ``on_pending``), call
    `attach` once the process exists, then `supervise` (on `loop`) or `supervise_blocking`
    (``loop=None``). `threadsafe`: output is fed from threads other than the loop's.
    """

    QUIET_BYTES = 4096  # batches this small (and few) do not start throttling
    QUIET_BURST = 4

    def __init__(self, job: Job, loop: asyncio.AbstractEventLoop | None = None, *, threadsafe: bool = False) -> None:
        self.job = job
        self.loop = loop
        self.threadsafe = threadsafe
        self.tree: ProcessTree | None = None
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._window_start = -1.0
        self._window_bytes = 0
        self._window_batches = 0
        self._last_flush = 0.0
        self._stop_task: asyncio.Task[None] | None = None
        self._stop_wanted = threading.Event()  # LOCAL mode: the supervising thread acts on it
        job.capture.on_pending = self.request_flush if loop is not None else None

    # ------------------------------------------------------------------ output batches
    def request_flush(self, urgent: bool = False) -> None:
        """Output is pending (`urgent`: a batch passed 1 MiB): schedule a flush on the loop."""
        if self.threadsafe:
            assert self.loop is not None
            with contextlib.suppress(RuntimeError):  # loop closed at shutdown
                self.loop.call_soon_threadsafe(self._schedule, urgent)
        else:
            self._schedule(urgent)

    def _schedule(self, urgent: bool = False) -> None:
        assert self.loop is not None
        if self._handle is not None:
            if not urgent or not isinstance(self._handle, asyncio.TimerHandle):
                return
            self._handle.cancel()
        now = time.monotonic()
        if now - self._window_start >= FLUSH_INTERVAL:
            self._window_start, self._window_bytes, self._window_batches = now, 0, 0
        quiet = self._window_bytes < self.QUIET_BYTES and self._window_batches < self.QUIET_BURST
        if urgent or quiet:
            self._handle = self.loop.call_soon(self.flush)
        else:
            self._handle = self.loop.call_later(self._window_start + FLUSH_INTERVAL - now, self.flush)

    def flush(self) -> None:
        """Hand what is pending to ``job.on_output`` now."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        chunks = self.job.capture.take_pending()
        if chunks:
            self._window_batches += 1
            self._window_bytes += sum(len(c.data) for c in chunks)
            self.job.on_output(chunks)

    def _flush_if_due(self, force: bool = False) -> None:
        """LOCAL mode (no loop to schedule on): flush if the last one is ~50 ms old."""
        now = time.monotonic()
        if force or now - self._last_flush >= FLUSH_INTERVAL:
            self._last_flush = now
            chunks = self.job.capture.take_pending()
            if chunks:
                self.job.on_output(chunks)

    # ------------------------------------------------------------------ start and stop
    def attach(self, tree: ProcessTree) -> None:
        """The process exists: take the job's stop requests from now on and tell the engine."""
        self.tree = self.job.tree = tree
        if tree.tag is None:
            tree.tag = self.job.launch.env.get(RUN_TAG_VAR)
        self.job.stop_listener = self._on_stop_request
        self.job.on_started(tree.pid, tree.create_time)

    def _on_stop_request(self, graceful: bool) -> None:
        if self.loop is None:
            self._stop_wanted.set()
        else:
            self._begin_stop(graceful)

    def _begin_stop(self, graceful: bool) -> None:
        assert self.tree is not None and self.loop is not None
        if self._stop_task is not None and not graceful:
            self._stop_task.cancel()
        self._stop_task = self.loop.create_task(self.tree.stop(self.job.grace_period, graceful))

    def _detach(self) -> None:
        if self.job.stop_listener == self._on_stop_request:
            self.job.stop_listener = None

    # ------------------------------------------------------------------ timeouts
    def _next_deadline(self, started: float) -> float | None:
        job = self.job
        marks = []
        if job.soft_timeout is not None and job.stop_outcome is None:
            marks.append(started + job.soft_timeout)
        if job.hard_timeout is not None and (job.stop_outcome is None or job.stop_graceful):
            marks.append(started + job.hard_timeout)
        return min(marks) if marks else None

    def _check_timeouts(self, started: float) -> None:
        job = self.job
        elapsed = time.monotonic() - started
        if job.hard_timeout is not None and elapsed >= job.hard_timeout and (job.stop_outcome is None or job.stop_graceful):
            msg = f"hard timeout of {job.hard_timeout:g}s reached: process tree killed"
            if job.stop_outcome is not None and job.stop_outcome.kind is OutcomeKind.TIMED_OUT:
                job.stop_outcome = Outcome(OutcomeKind.TIMED_OUT, None, msg)
            job.request_stop(OutcomeKind.TIMED_OUT, msg, graceful=False)
        elif job.soft_timeout is not None and elapsed >= job.soft_timeout and job.stop_outcome is None:
            job.request_stop(
                OutcomeKind.TIMED_OUT,
                f"{SOFT_TIMEOUT_PREFIX}{job.soft_timeout:g}s reached",  # final_outcome adds how the tree ended
            )

    # ------------------------------------------------------------------ on the loop
    async def supervise(
        self,
        exited: asyncio.Future[object],
        readers: Sequence[asyncio.Future[object]] | Sequence[asyncio.Future[None]],
        abort_pipes: Callable[[], None],
    ) -> Outcome:
        """Wait for the root's return code (`exited`) and the ends of its pipes (`readers`); the outcome.

        `abort_pipes` closes the pipes when leftovers still hold them open after the tree was killed.
        """
        job, tree = self.job, self.tree
        assert tree is not None, "attach() first"
        if job.stop_outcome is not None and self._stop_task is None:  # stopped while starting
            self._begin_stop(job.stop_graceful)
        started = time.monotonic()
        try:
            while not exited.done():
                deadline = self._next_deadline(started)
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                await asyncio.wait({exited}, timeout=timeout)
                if not exited.done():
                    self._check_timeouts(started)
            returncode = exited.result()
            assert isinstance(returncode, int)
            # The root is gone; give its output (and any leftover it left) a moment, then
            # stop what remains so nothing outlives the run.
            _done, pending = await asyncio.wait(readers, timeout=LINGER)
            if pending:
                await asyncio.to_thread(tree.kill_leftovers)
                _done, pending = await asyncio.wait(pending, timeout=LINGER)
            if pending:
                abort_pipes()
                for fut in pending:
                    fut.cancel()
            elif not tree.nothing_left():  # pipes closed, but members of its group may still run
                await asyncio.to_thread(tree.kill_leftovers)
            return final_outcome(job, returncode)
        except asyncio.CancelledError:
            # The engine itself is being cancelled: never leave the tree behind.
            tree.kill(tree.snapshot())
            raise
        finally:
            self._detach()
            if self._stop_task is not None and not self._stop_task.done():
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(self._stop_task, timeout=job.grace_period + 2)
            job.capture.finish()
            self.flush()
            tree.close()

    # ------------------------------------------------------------------ LOCAL mode
    def supervise_blocking(self, wait: Callable[[float | None], int | None], readers: Sequence[threading.Thread]) -> Outcome:
        """The same on the calling thread: `wait(timeout)` is the return code or None if still running.

        Ctrl+C (KeyboardInterrupt) cancels the run: its tree is stopped, then the outcome is returned.
        """
        job, tree = self.job, self.tree
        assert tree is not None, "attach() first"
        if job.stop_outcome is not None:  # asked before attach() could listen
            self._stop_wanted.set()
        started = time.monotonic()
        stopper: threading.Thread | None = None  # a graceful stop's TERM-grace-KILL, beside the waiting
        try:
            while True:
                returncode = wait(FLUSH_INTERVAL)
                if returncode is not None:
                    break
                self._flush_if_due()
                self._check_timeouts(started)
                if self._stop_wanted.is_set():
                    self._stop_wanted.clear()
                    if job.stop_graceful:
                        if stopper is None or not stopper.is_alive():
                            stopper = threading.Thread(target=tree.stop_blocking, args=(job.grace_period,),
                                                       name=f"run-{job.run_id}-stop")
                            stopper.start()
                    else:
                        tree.kill(tree.snapshot())
        except KeyboardInterrupt:
            job.request_stop(OutcomeKind.CANCELLED, "interrupted from the keyboard (Ctrl+C)")
            tree.stop_blocking(job.grace_period)
            returncode = wait(None)
            assert returncode is not None
        finally:
            self._detach()
            # Stopping is over before the run is: a graceful stop still waiting out its grace
            # (a SIGTERM-ignoring descendant) finishes here, not in a thread the exit would kill.
            if stopper is not None:
                stopper.join()
        for t in readers:
            t.join(LINGER)
        if any(t.is_alive() for t in readers):
            tree.kill_leftovers()
            for t in readers:
                t.join(LINGER)
        else:
            tree.kill_leftovers()
        job.capture.finish()
        self._flush_if_due(force=True)
        tree.close()
        return final_outcome(job, returncode)
