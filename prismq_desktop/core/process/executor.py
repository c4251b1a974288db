"""The executor seam: what the engine hands whatever runs a process, and how a mode is chosen.

`RunEngine` resolves and records a run, then gives an `Executor` one `Job`. Today's executors
are local (`SubprocessWrapper` in local.py, `ResourcePool` in pool/); a remote one (say, a
Celery worker) would implement the same protocol. Nothing here starts a process.

Modes: AUTO picks ASYNC when the running loop can spawn subprocesses, else THREADED (and LOCAL
with no running loop). The `PRISMQ_RUN_MODE` environment variable (async, threaded, local,
dry-run) overrides AUTO; an explicit mode argument beats both.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prismq_desktop.core.models import Outcome, OutcomeKind, RunMode, RunSpec
from prismq_desktop.core.process.capture import OutputCapture, OutputChunk
from prismq_desktop.core.process.launch import Launch
from prismq_desktop.core.process.tree import IS_WINDOWS, ProcessTree

ENV_MODE = "PRISMQ_RUN_MODE"
#: "1" / "0": ASYNC runs' pipes read by one thread (mux.py) / by the loop; unset: see pipe_mux_wanted.
ENV_PIPE_MUX = "PRISMQ_PIPE_MUX"


class ModeError(ValueError):
    pass


def parse_mode(value: str) -> RunMode:
    """A mode from its name (``"dry_run"``, ``" Async "`` ...), or a `ModeError` naming the choices."""
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


def pipe_mux_wanted(loop: asyncio.AbstractEventLoop) -> bool:
    """Do ASYNC runs on `loop` have their pipes read by the executor's one selector thread (`PipeMux`)?

    POSIX only (Windows keeps its modes). By default only on a loop that is not one of asyncio's
    own - the window's qasync loop, where every watched fd is a Qt socket notifier and each read
    a wakeup of the GUI thread: there the thread halves the app's CPU for 100 chatty runs
    (benchmarks/bench_gui.py: 23-26 % -> 9.5-12 % of a core, the GUI thread 22-25 % -> 5-7 %).
    On asyncio's loop (the CLI, a headless orchestrator) the loop's own reads are cheaper than
    the hand-off: /bin/true runs cost ~6 % more parent CPU through the thread (bench_peers, five
    paired runs: 1.08 vs 1.02 ms), so they stay on the loop. ``PRISMQ_PIPE_MUX=1`` / ``=0``
    forces it on / off."""
    if IS_WINDOWS:
        return False
    forced = os.environ.get(ENV_PIPE_MUX)
    if forced:
        return forced.strip() != "0"
    return not type(loop).__module__.startswith("asyncio")


def requested_mode(requested: RunMode | str = RunMode.AUTO) -> RunMode:
    """The explicit mode, else the `PRISMQ_RUN_MODE` override, else AUTO (unresolved)."""
    mode = parse_mode(requested) if isinstance(requested, str) else requested
    if mode is RunMode.AUTO and os.environ.get(ENV_MODE):
        mode = parse_mode(os.environ[ENV_MODE])
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
    THREADED modes and from any thread in LOCAL mode. A request is recorded here
    (`stop_outcome`, `stop_graceful`) and handed to `stop_listener`, which the executor
    sets while it can act on one.
    """

    run_id: int
    launch: Launch
    capture: OutputCapture
    soft_timeout: float | None = None
    hard_timeout: float | None = None
    grace_period: float = 5.0
    on_started: Callable[[int, float | None], None] = lambda pid, ct: None
    on_output: Callable[[list[OutputChunk]], None] = lambda chunks: None
    #: The started process's tree (set by the executor once it exists; pause/resume act on it).
    tree: ProcessTree | None = None
    #: Why the run is being stopped (the first reason wins); None while nobody asked.
    stop_outcome: Outcome | None = None
    #: Whether the stop asked for is graceful (TERM, grace, KILL) or a kill at once.
    stop_graceful: bool = True
    #: Called with `graceful` on each effective stop request, on the requesting thread.
    stop_listener: Callable[[bool], None] | None = None
    #: The spec with its secret values put back (a remote executor sends it to the worker,
    #: which resolves it on its own machine); None for jobs made outside the engine.
    spec: RunSpec | None = None
    #: Remote runs: ``on_remote(worker_host=..., remote_id=...)`` records where it runs (saved
    #: at once, so a restarted app can reattach); ``on_sample(cpu_percent, rss_bytes)`` feeds the
    #: worker's readings of the remote tree (the local monitor cannot see it).
    on_remote: Callable[..., None] = lambda **fields: None
    on_sample: Callable[[float, int], None] = lambda cpu, rss: None
    #: Set by the engine when a restarted app reattaches to a remote run already going: the
    #: remote id, and the log offset up to which the stream was already written here.
    reattach_id: str | None = None
    #: The run's queue priority (0 CRITICAL .. 3 LOW): a remote executor passes it to the broker.
    priority: int = 2
    #: A remote executor's pause/resume (the tree is on another machine); None for local runs.
    remote_control: Callable[[str], bool] | None = None
    #: A remote function run's report (the runner's result file, sent back by the worker); the
    #: engine reads it instead of a local result file.
    remote_result: str | None = None
    #: When (time.monotonic) the first stop was asked for: the outcome says how long the tree took.
    stop_requested_at: float | None = None

    def request_stop(self, kind: OutcomeKind, message: str, graceful: bool = True) -> bool:
        """Stop the whole tree (TERM, grace, KILL; or KILL at once). The first reason wins."""
        if self.stop_outcome is None:
            self.stop_outcome = Outcome(kind, None, message)
            self.stop_requested_at = time.monotonic()
        elif graceful:
            return False  # already stopping; a second cancel does not restart the grace
        self.stop_graceful = graceful
        listener = self.stop_listener
        if listener is not None:
            listener(graceful)
        return True

    def pause(self) -> bool:
        if self.stop_outcome is not None:
            return False
        if self.tree is None:
            return self.remote_control("pause") if self.remote_control is not None else False
        self.tree.suspend()
        return True

    def resume(self) -> bool:
        if self.tree is None:
            return self.remote_control("resume") if self.remote_control is not None else False
        self.tree.resume()
        return True


class Executor(Protocol):
    """What the engine needs from whatever actually runs a Launch (local now, remote later).

    The engine resolves and records the spec (what to run), picks the mode with
    `mode_for_run`, and hands the executor one `Job` per run:

    - ``job.launch``: the exact argv, environment, cwd and encoding to start; the executor
      runs exactly that (it never re-resolves the spec).
    - ``job.capture``: the run's `OutputCapture`. Every byte the process writes goes to
      ``capture.feed(stream, data)`` in order per stream (pieces as read: up to 1 MiB, `pipes.READ_SIZE`,
      from a thread or the loop; 64 KiB `CHUNK_SIZE` pieces from the pool),
      then ``capture.finish()`` once both streams ended. Pending output is handed to
      ``job.on_output(capture.take_pending())`` in batches (a local `Supervisor` flushes
      at most every ~50 ms; a remote executor may batch more coarsely, but must flush at
      the end).
    - ``job.on_started(pid, create_time)``: call it exactly once, as soon as the process
      exists; the engine marks the run running and records the pid with its start time
      (a remote executor reports its worker's pid and may pass None for the time). Never call it for a process that did not start.
    - control requests: ``job.request_stop(kind, message, graceful)`` may be called before
      the start, during the run or after. Before the start, check ``job.stop_outcome`` and
      return it without starting anything; from the start on, set ``job.stop_listener`` (or
      poll ``job.stop_outcome`` / ``job.stop_graceful``) and stop the *whole tree*: graceful
      is TERM, ``job.grace_period`` seconds, then KILL; not graceful is KILL at once. Set
      ``job.tree`` if the process is local so ``job.pause()`` / ``job.resume()`` work;
      a remote executor that cannot pause leaves it None (they then report False).
    - timeouts: ``job.soft_timeout`` (a graceful stop with `OutcomeKind.TIMED_OUT`) and
      ``job.hard_timeout`` (a kill at once, also after a soft stop that did not end it) are
      seconds from the start, enforced by the executor.

    `execute` (and `execute_blocking`, LOCAL mode with no loop) returns the run's `Outcome`
    and never raises for a bad child: a launch that cannot start is
    `OutcomeKind.FAILED_TO_START`; a stopped run ends with ``job.stop_outcome``'s kind and
    message plus the exit code; otherwise the outcome comes from the exit code
    (`Outcome.from_exit_code`, a death by signal is FAILED). Only the cancellation of
    `execute` itself propagates (after the tree was killed). Nothing the run started may
    outlive it: leftovers in its tree are killed when the root exits.
    """

    def mode_for_run(self, override: RunMode | str | None = None) -> RunMode: ...

    async def execute(self, job: Job, mode: RunMode) -> Outcome: ...

    def execute_blocking(self, job: Job) -> Outcome: ...
