"""ResourcePool: warm Python workers for high-frequency script runs, as an engine Executor.

A fresh `python script.py` costs ≈ 12 ms before its first line (≈ 60 ms when it imports
asyncio, json, sqlite3, decimal and email); a fork of a warm Python that already imported
them costs ≈ 2-3 ms. `ResourcePool` keeps such warm workers and plugs into `RunEngine`
through the `Executor` protocol (process/executor.py):

    pool = ResourcePool(size=2, preload=("asyncio", "json"))
    engine = RunEngine(home, executor=pool)
    ...
    await engine.shutdown()
    await pool.close()

POSIX: a worker is a fork server (see forkserver.py) that forks one child per run (one is
kept forked ahead, so a request costs no fork); the child calls setsid(), so it is the root
of its own session exactly like a spawned run, and the engine's ProcessTree (killpg) cancels,
pauses and times it out the same way. The pool's end of each server's control socket is
watched by the loop (`add_reader`), or by a thread on a loop that cannot. Windows: a
worker is a long-lived Python that runs one script at a time with runpy (winworker.py); a
run's process is the worker, so stopping a run kills the worker and the pool replaces it.

What is the same as a normal run: the run's stdout and stderr are pipes read in 64 KiB chunks
into `job.capture` (on the loop in ASYNC mode, by process/pipes.py's reader in two threads in
THREADED mode; see pipes.py here), and the run is supervised by the same `Supervisor` as a
spawned run (batches, timeouts, cancel, leftovers, the outcome), so status, history and the
log do not tell a pooled run from a spawned one - except a ``pool`` metadata record in the log.

Modules: pool.py (this: scheduling, lifecycle, the Executor), workers.py (a worker's parent end,
the POSIX fork server), windows.py (the Windows worker), pipes.py (a pooled run's output pipes),
routing.py (what may be pooled), stats.py (the view's records).

What goes to the pool: runs of a `.py` script or a ``-m`` module by the pool's interpreter
(`sys.executable` unless `python=` says otherwise) with no interpreter options and the same
interpreter-startup environment (PYTHONPATH, PYTHONHASHSEED, ... see `STARTUP_VARS`) as the
workers. Everything else - executables, other interpreters, LOCAL and DRY_RUN mode, a frozen
app, a pool that is closed or whose workers keep failing to start - runs through a plain
`SubprocessWrapper`. `why_not_pooled(launch)` says why a launch would not be pooled.

Workers serve one run at a time. When all are busy a run waits in a FIFO queue (or, with
``overflow="spawn"``, starts as a normal spawn). A worker is recycled after
`max_runs_per_worker` runs; one that dies is replaced, and the run it was serving ends
`failed` with a message saying so (its process tree is killed). `resize(n)` changes the
number of workers at any time; `stats()` describes the pool for a view.

The pool binds to the event loop it is first used on; use it from that loop's thread.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Literal

import psutil

from prismq_desktop.core.models import Outcome, OutcomeKind, RunMode
from prismq_desktop.core.pool.forkserver import cwd_problem
from prismq_desktop.core.pool.pipes import RunPipes
from prismq_desktop.core.pool.routing import DEFAULT_PRELOAD, worker_request
from prismq_desktop.core.pool.stats import PoolStats, WorkerStats, percentile
from prismq_desktop.core.pool.windows import WinWorker
from prismq_desktop.core.pool.workers import ForkServerWorker, Slot, StartFailed, Worker, WorkerLost
from prismq_desktop.core.process.executor import Job
from prismq_desktop.core.process.launch import Launch, child_environment, is_frozen
from prismq_desktop.core.process.local import SubprocessWrapper
from prismq_desktop.core.process.supervisor import Supervisor
from prismq_desktop.core.process.tree import IS_WINDOWS, ServedTree

__all__ = ["DEFAULT_PRELOAD", "PoolStats", "ResourcePool", "WorkerStats", "pool_supported"]

log = logging.getLogger(__name__)

LATENCY_SAMPLES = 1000  # start latencies kept for the mean / p95
BROKEN_AFTER = 3  # workers in a row dying before they are ready: stop trying, spawn normally
QUEUE_POLL = 0.05  # how often a queued run checks whether it was cancelled
REAP_TIMEOUT = 3.0  # a retired worker that has not exited by then is killed
SPARE_WAIT = 0.05  # how long a run waits for the fork server's next spare before going through the server


def pool_supported() -> bool:
    """Can this process run a worker pool? (Not when frozen: sys.executable is then the app.)"""
    if is_frozen():
        return False
    if IS_WINDOWS:
        return True
    return hasattr(os, "fork") and hasattr(socket, "send_fds") and hasattr(socket, "AF_UNIX")


# ---------------------------------------------------------------------------- the pool
class ResourcePool:
    """Warm workers for Python script runs; an `Executor` for `RunEngine(executor=pool)`.

    size                 number of workers (each serves one run at a time); `resize()` changes it
    preload              modules every worker imports before serving
    max_runs_per_worker  a worker is replaced after this many runs
    python               the interpreter of the workers (default `sys.executable`); runs by
                         another interpreter are spawned normally
    overflow             "queue": a run waits for a free worker; "spawn": it is spawned normally
    mode, fallback       the `SubprocessWrapper` used for what is not pooled (and `mode_for_run`)
    env                  the workers' environment (default: the app's plus the child defaults)
    spare                POSIX: keep a child forked ahead in each fork server (faster starts)
    accept               which jobs may use the pool (None: all); the rest spawn normally

    Workers start with the first pooled run (or `await pool.start()`), on that run's loop.
    """

    def __init__(
        self,
        size: int = 2,
        preload: Iterable[str] = DEFAULT_PRELOAD,
        max_runs_per_worker: int = 500,
        *,
        python: str | None = None,
        overflow: Literal["queue", "spawn"] = "queue",
        mode: RunMode | str = RunMode.AUTO,
        fallback: SubprocessWrapper | None = None,
        env: dict[str, str] | None = None,
        spare: bool = True,
        accept: Callable[[Job], bool] | None = None,
    ) -> None:
        if size < 0:
            raise ValueError("size must be 0 or more")
        if max_runs_per_worker < 1:
            raise ValueError("max_runs_per_worker must be at least 1")
        if overflow not in ("queue", "spawn"):
            raise ValueError("overflow must be 'queue' or 'spawn'")
        self.fallback = fallback or SubprocessWrapper(mode)
        self.python = os.path.abspath(python or sys.executable)
        self.preload = tuple(preload)
        self.max_runs_per_worker = max_runs_per_worker
        self.overflow = overflow
        self.spare = spare  # fork servers keep a child forked ahead (POSIX)
        #: Which jobs may use the pool at all (say, runs of the POOLED pattern); the others are
        #: spawned normally and not counted as fallbacks. None: every job that can be pooled.
        self.accept = accept
        #: The workers' environment: what a run gets by default (the app's plus the child defaults).
        self.worker_env = dict(env) if env is not None else child_environment({})
        self.supported = pool_supported()
        self._size = size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[Worker] = []
        self._waiters: collections.deque[asyncio.Future[Worker | None]] = collections.deque()
        self._reapers: set[asyncio.Task[None]] = set()
        self._seq = itertools.count(1)
        self._latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_SAMPLES)
        self._retired_served = 0  # runs served by workers that are gone (recycled, resized away, crashed)
        self._fallback_runs = 0
        self._crashes = 0
        self._recycled = 0
        self._early_deaths = 0
        self._broken: str | None = None
        self._closed = False
        self._warned_preload = False

    # ------------------------------------------------------------------ Executor protocol
    def mode_for_run(self, override: RunMode | str | None = None) -> RunMode:
        return self.fallback.mode_for_run(override)

    def execute_blocking(self, job: Job) -> Outcome:
        """LOCAL mode (no event loop): a normal blocking spawn; the pool lives on a loop."""
        if self.accept is None or self.accept(job):
            self._fallback_runs += 1
        return self.fallback.execute_blocking(job)

    async def execute(self, job: Job, mode: RunMode) -> Outcome:
        """Run `job` in a warm worker (or, when it cannot be pooled, as a normal spawn)."""
        if self.accept is not None and not self.accept(job):
            return await self.fallback.execute(job, mode)
        request = self._request(job.launch)
        if mode in (RunMode.DRY_RUN, RunMode.LOCAL) or isinstance(request, str):
            return await self._spawn(job, mode)
        if job.stop_outcome is not None:
            return job.stop_outcome
        loop = asyncio.get_running_loop()
        self._bind(loop)
        for _attempt in range(3):
            worker = await self._acquire(job)
            if worker is None:
                if job.stop_outcome is not None:
                    return job.stop_outcome
                return await self._spawn(job, mode)
            threaded = mode is RunMode.THREADED or IS_WINDOWS
            started = await self._start_on(worker, job, dict(request), loop, threaded)
            if started is None:
                continue  # the worker died before the child existed: nothing ran; try another
            if isinstance(started, Outcome):
                return started
            slot, pipes = started
            return await self._supervise(slot, pipes, loop)
        return Outcome(OutcomeKind.FAILED_TO_START, None, "pool workers kept dying before the run could start")

    async def _spawn(self, job: Job, mode: RunMode) -> Outcome:
        if mode is not RunMode.DRY_RUN:
            self._fallback_runs += 1
        return await self.fallback.execute(job, mode)

    # ------------------------------------------------------------------ what is pooled
    def _request(self, launch: Launch) -> dict[str, Any] | str:
        """The worker request for `launch`, or why it cannot go to a worker."""
        if not self.supported:
            return "worker pools are not available here"
        return worker_request(launch, self.python, self.worker_env)

    def why_not_pooled(self, launch: Launch) -> str | None:
        """None if `launch` would run in a worker, else the reason it is spawned normally."""
        got = self._request(launch)
        return got if isinstance(got, str) else None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the workers now (otherwise the first pooled run does)."""
        self._bind(asyncio.get_running_loop())

    async def wait_ready(self, timeout: float = 30.0) -> bool:
        """Wait until every worker has imported its preloads (True) or `timeout` passes."""
        await self.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [w for w in self._workers if not w.retiring]
            if len(live) >= self._size and all(w.ready for w in live):
                return True
            if self._broken or self._closed:
                return False
            await asyncio.sleep(0.01)
        return False

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop or self._closed or not self.supported:
            return
        if self._loop is not None:
            if not self._loop.is_closed() and self._loop.is_running():
                raise RuntimeError("this ResourcePool is in use on another event loop")
            self._stop_workers_blocking()  # its loop ended without close(): start afresh here
        self._loop = loop
        _LIVE_POOLS.add(self)
        self._top_up()

    def _live(self) -> list[Worker]:
        return [w for w in self._workers if not w.retiring]

    def _spawn_worker(self) -> Worker | None:
        assert self._loop is not None
        cls = WinWorker if IS_WINDOWS else ForkServerWorker
        worker: Worker = cls(self, self._loop, self._on_message, self._on_eof)
        try:
            worker.start()
        except OSError as exc:
            self._note_early_death(f"cannot start a pool worker: {exc.strerror or exc}")
            return None
        self._workers.append(worker)
        return worker

    def _top_up(self) -> None:
        while not self._closed and self._broken is None and self._loop is not None and len(self._live()) < self._size:
            worker = self._spawn_worker()
            if worker is None:
                break
            self._hand_out(worker)

    def _note_early_death(self, why: str) -> None:
        self._early_deaths += 1
        if self._early_deaths >= BROKEN_AFTER and self._broken is None:
            self._broken = why
            log.warning("worker pool disabled (%s); runs are spawned normally", why)
            self._wake_all_waiters()

    def resize(self, size: int) -> None:
        """Change the number of workers; busy ones over the new size retire when their run ends."""
        if size < 0:
            raise ValueError("size must be 0 or more")
        self._size = size
        self._broken = None
        self._early_deaths = 0
        if self._loop is None or self._closed:
            return
        surplus = len(self._live()) - size
        for worker in sorted(self._live(), key=lambda w: (w.state == "busy", w.ready)):
            if surplus <= 0:
                break
            if worker.state != "busy":
                worker.retire()
                surplus -= 1
        self._top_up()
        if size == 0:
            self._wake_all_waiters()

    @property
    def size(self) -> int:
        return self._size

    # ------------------------------------------------------------------ scheduling
    def _pick_idle(self) -> Worker | None:
        best: Worker | None = None
        for worker in self._workers:
            if worker.retiring or worker.slot is not None or worker.reserved:
                continue
            if worker.ready:
                return worker
            best = best or worker  # a worker still importing its preloads will take the run next
        return best

    async def _acquire(self, job: Job) -> Worker | None:
        """A free worker, reserved for `job`; None to spawn normally (or if `job` was stopped while queued)."""
        if self._closed or self._broken is not None or self._size == 0:
            return None
        worker = self._pick_idle()
        if worker is not None:
            worker.reserved = True
            return worker
        if self.overflow == "spawn":
            return None
        assert self._loop is not None
        fut: asyncio.Future[Worker | None] = self._loop.create_future()
        self._waiters.append(fut)
        try:
            while not fut.done():
                await asyncio.wait({fut}, timeout=QUEUE_POLL)
                if not fut.done() and job.stop_outcome is not None:
                    fut.cancel()
                    return None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.result() is not None:
                got = fut.result()
                assert got is not None
                got.reserved = False
                self._hand_out(got)
            fut.cancel()
            raise
        return fut.result()

    def _hand_out(self, worker: Worker) -> None:
        """`worker` is free: give it to the first queued run (or leave it idle)."""
        if worker.retiring or worker.slot is not None or worker.reserved:
            return
        while self._waiters:
            fut = self._waiters.popleft()
            if fut.done():
                continue
            worker.reserved = True
            fut.set_result(worker)
            return

    def _wake_all_waiters(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    # ------------------------------------------------------------------ one run
    async def _start_on(
        self, worker: Worker, job: Job, request: dict[str, Any], loop: asyncio.AbstractEventLoop, threaded: bool
    ) -> tuple[Slot, RunPipes] | Outcome | None:
        """Send the run to `worker`; the slot and its output pipes once the child exists.

        None: the worker died first (nothing ran, the run may go elsewhere); an Outcome: the
        child could not become the run (failed to start).
        """
        requested = time.perf_counter()
        if (isinstance(worker, ForkServerWorker) and worker.announces and not threaded
                and "function_preload" not in request):
            # A run that just ended has the server forking the next spare: wait for it (≈ 1 ms)
            # rather than send this run through the server, which would wait for it too.
            try:
                await worker.wait_spare(SPARE_WAIT)
            except asyncio.CancelledError:
                worker.reserved = False
                self._hand_out(worker)
                raise
            if worker.retiring:
                worker.reserved = False
                return None  # nothing was sent: the run may go to another worker
        slot = Slot(next(self._seq), job, worker, loop)
        request["seq"] = slot.seq
        if worker.base_env is not None:  # only what differs from the server's own environment
            request["env_diff"] = env_diff(request.pop("env"), worker.base_env)
        worker.reserved = False
        worker.slot = slot
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pipes = RunPipes(out_r, err_r)
        try:
            slot.sent = requested  # the start latency counts the wait for the spare too
            if not self._send_direct(worker, slot, request, (out_w, err_w)):
                worker.send_run(request, (out_w, err_w))
        except OSError:
            worker.retire()  # its EOF fails the slot below
        except StartFailed as exc:
            worker.slot = None
            self._release(worker)
            pipes.close()
            return Outcome(OutcomeKind.FAILED_TO_START, None, f"cannot start {job.launch.argv[1]}: {exc}")
        finally:
            os.close(out_w)
            os.close(err_w)
        try:
            if not threaded:
                pipes.connect(loop)  # while the server hands the run to its child
            await slot.started
        except asyncio.CancelledError:
            slot.abandoned = True
            if slot.pid is not None:
                self._kill_group(slot.pid)
            pipes.close()
            raise
        except (WorkerLost, StartFailed) as exc:
            pipes.close()
            if isinstance(exc, WorkerLost):
                return None
            return Outcome(OutcomeKind.FAILED_TO_START, None, f"cannot start {job.launch.argv[1]}: {exc}")
        return slot, pipes

    def _send_direct(self, worker: Worker, slot: Slot, request: dict[str, Any], fds: tuple[int, int]) -> bool:
        """Send the run straight to the server's announced spare (no round trip through the server);
        the slot is started at once, its pid and start ticks known. False: it goes through the server
        (a function task whose module the server imports first, or no spare ready: our copy of the
        spare's socket is closed first - given back - so the server may hand it the run).
        StartFailed: the directory is not usable, checked here as the server would (the run failed
        to start; nothing was sent)."""
        if not isinstance(worker, ForkServerWorker) or worker.spare is None:
            return False
        if "function_preload" in request:
            worker.drop_spare()  # given back: the server imports the module first, then forks or hands over
            return False
        problem = cwd_problem(request.get("cwd", ""))
        if problem is not None:
            raise StartFailed(problem)
        got = worker.send_direct(request, fds)
        if got is None:
            return False
        slot.direct = True
        slot.pid, slot.ticks = got
        slot.latency = time.perf_counter() - slot.sent
        self._latencies.append(slot.latency)
        worker.served += 1
        slot.started.set_result(got[0])
        return True

    @staticmethod
    def _kill_group(pid: int) -> None:
        if IS_WINDOWS:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
            return
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)

    async def _supervise(self, slot: Slot, pipes: RunPipes, loop: asyncio.AbstractEventLoop) -> Outcome:
        """The started run, supervised by the same `Supervisor` as a spawned run."""
        job = slot.job
        assert slot.pid is not None
        supervisor = Supervisor(job, loop, threadsafe=not pipes.watched)
        tree = slot.tree = slot.worker.make_tree(slot.pid, slot.ticks)
        if isinstance(tree, ServedTree) and slot.exited.done():
            tree.left = slot.left  # the exit came with the start (a run that was over at once)
        supervisor.attach(tree)
        if job.capture.log is not None:
            job.capture.log.meta(
                event="pool",
                worker_pid=slot.worker.pid,
                worker_runs=slot.worker.runs,
                start_latency_ms=round((slot.latency or 0.0) * 1000, 3),
            )
        readers = pipes.start(job, loop)
        try:
            outcome = await supervisor.supervise(slot.exited, readers, pipes.abort)
        finally:
            pipes.close()
        if slot.lost is not None and job.stop_outcome is not None and job.stop_outcome.message == slot.lost:
            return Outcome(OutcomeKind.FAILED, None, slot.lost)
        return outcome

    # ------------------------------------------------------------------ control channel events (loop thread)
    def _on_message(self, worker: Worker, msg: dict[str, Any], received: float) -> None:
        kind = msg.get("t")
        if kind == "ready":
            worker.ready = True
            self._early_deaths = 0
            failed = msg.get("failed") or {}
            if failed and not self._warned_preload:
                self._warned_preload = True
                log.warning("pool workers could not preload: %s", ", ".join(f"{k} ({v})" for k, v in failed.items()))
            worker.preload_failed = dict(failed)
            env = msg.get("env")
            if isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
                worker.base_env = env
            worker.subreaper = msg.get("subreaper") is True
            if isinstance(worker, ForkServerWorker):
                worker.announces = msg.get("direct") is True
            self._hand_out(worker)
            return
        if kind == "spare":
            if isinstance(worker, ForkServerWorker):
                worker.keep_spare(msg)
            return
        slot = worker.slot
        if kind == "exit" and msg.get("seq") is None:  # the server's spare died: ours, or the run we sent it
            if isinstance(worker, ForkServerWorker) and worker.spare is not None and worker.spare[0] == msg.get("pid"):
                worker.drop_spare()
                return
            if slot is None or not slot.direct or slot.pid != msg.get("pid"):
                return
        elif slot is None or msg.get("seq") != slot.seq:
            return
        if kind == "started":
            slot.latency = received - slot.sent
            self._latencies.append(slot.latency)
            pid = int(msg.get("pid") or 0)
            slot.pid = pid or None
            if isinstance(worker, ForkServerWorker) and worker.spare is not None and worker.spare[0] == pid:
                worker.drop_spare()  # the server gave this run the spare it had announced to us
            ticks = msg.get("ticks")
            slot.ticks = ticks if isinstance(ticks, int) and ticks >= 0 else None
            if slot.abandoned:
                if pid:
                    self._kill_group(pid)
                elif msg.get("error"):
                    worker.slot = None
                    self._release(worker)
                return
            if msg.get("error"):
                slot.started.set_exception(StartFailed(str(msg["error"])))
                if not pid:  # no child was made, so no exit will be reported: the worker is free now
                    worker.slot = None
                    if not slot.exited.done():
                        slot.exited.set_result(127)
                    self._release(worker)
            else:
                worker.served += 1
                slot.started.set_result(pid)
        elif kind == "exit":
            worker.slot = None
            worker.runs += 1
            if worker.subreaper:
                slot.left = _left_behind(msg.get("left"))
                if isinstance(slot.tree, ServedTree):
                    slot.tree.left = slot.left
            if not slot.started.done():  # cannot happen (started comes first); never leave a waiter hanging
                slot.started.set_exception(StartFailed("the child ended before it started"))
            if not slot.exited.done():
                slot.exited.set_result(int(msg.get("code", -1)))
            if msg.get("recycle"):  # Windows worker: the run left threads running (winworker.py)
                self._recycled += 1
                worker.retire()
                self._top_up()
                return
            self._release(worker)

    def _release(self, worker: Worker) -> None:
        if self._closed:
            worker.retire()
            return
        if worker.runs >= self.max_runs_per_worker:
            self._recycled += 1
            worker.retire()
            self._top_up()
            return
        if len(self._live()) > self._size:
            worker.retire()
            return
        self._hand_out(worker)

    def _forget(self, worker: Worker) -> None:
        """Take `worker` off the list; what it served stays in the pool's total."""
        if worker in self._workers:
            self._workers.remove(worker)
            self._retired_served += worker.served

    def _on_eof(self, worker: Worker) -> None:
        self._forget(worker)
        expected = worker.retiring
        worker.retiring = True
        if isinstance(worker, ForkServerWorker):
            worker.close_socket()
        code = worker.proc.poll() if worker.proc is not None else None
        if code is None and not expected and worker.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # it is exiting: its status makes a better message
                code = worker.proc.wait(0.1)
        slot, worker.slot = worker.slot, None
        worker.reserved = False
        if IS_WINDOWS and slot is not None and (slot.job.stop_outcome is not None or slot.started.done()):
            expected = True  # the worker was the run's process: a stopped run (or os._exit) ends it
        if not expected:
            self._crashes += 1
            if not worker.ready:
                self._note_early_death(f"pool workers exit before they are ready ({_describe(code)})")
            else:
                log.warning("pool %s %s died (%s)", worker.kind, worker.pid, _describe(code))
        if slot is not None:
            self._fail_slot(slot, worker, code)
        if self._loop is not None:
            task = self._loop.create_task(self._reap(worker))
            self._reapers.add(task)
            task.add_done_callback(self._reapers.discard)
        if not self._closed:
            self._top_up()
            if self._broken is not None or self._size == 0:
                self._wake_all_waiters()

    def _fail_slot(self, slot: Slot, worker: Worker, code: int | None) -> None:
        if slot.abandoned:
            return
        if self._closed:
            why = "the worker pool was closed"
        else:
            why = f"the pool {worker.kind} (pid {worker.pid}) died ({_describe(code)})"
        if not slot.started.done():
            slot.started.set_exception(WorkerLost(why))
            return
        if slot.exited.done():
            return
        if IS_WINDOWS:  # the worker was the run's process: its exit is the run's exit
            if self._loop is not None:
                task = self._loop.create_task(self._worker_exit_is_run_exit(slot, worker))
                self._reapers.add(task)
                task.add_done_callback(self._reapers.discard)
            return
        slot.lost = f"{why} during the run; its process tree was killed"
        slot.job.request_stop(OutcomeKind.FAILED, slot.lost, graceful=False)
        slot.exited.set_result(-signal.SIGKILL)

    @staticmethod
    async def _worker_exit_is_run_exit(slot: Slot, worker: Worker) -> None:  # pragma: no cover - Windows only
        code: int | None = None
        if worker.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = await asyncio.to_thread(worker.proc.wait, REAP_TIMEOUT)
        if not slot.exited.done():
            slot.exited.set_result(code if code is not None else 1)

    async def _reap(self, worker: Worker) -> None:
        proc = worker.proc
        if proc is not None:
            deadline = time.monotonic() + REAP_TIMEOUT
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.kill()
                await asyncio.to_thread(proc.wait)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        if isinstance(worker, WinWorker):
            worker.release_job()
        if worker.reader_thread is not None:
            await asyncio.to_thread(worker.join_reader, 1.0)

    # ------------------------------------------------------------------ shutdown
    async def close(self, timeout: float = 5.0) -> None:
        """Stop every worker and whatever run is still in one; afterwards runs spawn normally."""
        if self._closed:
            await self._drain_reapers(timeout)
            return
        self._closed = True
        self._wake_all_waiters()
        loop = self._loop
        if loop is None:
            return
        busy = [w.slot for w in self._workers if w.slot is not None]
        for slot in busy:
            if slot.started.done() and not slot.exited.done():
                slot.job.request_stop(OutcomeKind.INTERRUPTED, "the worker pool was closed during the run", graceful=False)
        pending = [s.exited for s in busy if not s.exited.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for worker in list(self._workers):
            worker.retire()
        deadline = time.monotonic() + timeout
        while self._workers and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for worker in list(self._workers):  # no EOF came: take them down by force
            self._forget(worker)
            if worker.proc is not None:
                with contextlib.suppress(OSError):
                    worker.proc.kill()
            task = loop.create_task(self._reap(worker))
            self._reapers.add(task)
            task.add_done_callback(self._reapers.discard)
        await self._drain_reapers(timeout)

    async def _drain_reapers(self, timeout: float) -> None:
        if self._reapers:
            await asyncio.wait(set(self._reapers), timeout=timeout + REAP_TIMEOUT)

    def close_blocking(self, timeout: float = 5.0) -> None:
        """Stop the workers without an event loop (for atexit, or after the loop is gone)."""
        self._closed = True
        self._stop_workers_blocking(timeout)

    def _stop_workers_blocking(self, timeout: float = 5.0) -> None:
        workers, self._workers = self._workers, []
        self._retired_served += sum(w.served for w in workers)
        for worker in workers:
            worker.retiring = True
            worker.close_channel()  # a fork server kills its children's groups on EOF
        deadline = time.monotonic() + timeout
        for worker in workers:
            if worker.proc is None:
                continue
            try:
                worker.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
            if isinstance(worker, ForkServerWorker):
                worker.join_reader(1.0)
                worker.close_socket()
            if isinstance(worker, WinWorker):
                worker.release_job()
        self._waiters.clear()
        self._loop = None

    async def __aenter__(self) -> ResourcePool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ the view
    def stats(self) -> PoolStats:
        now = time.monotonic()
        workers = tuple(
            WorkerStats(w.pid, w.state, w.served, w.slot.job.run_id if w.slot is not None else None, now - w.born)
            for w in self._workers
        )
        retired = self._retired_served
        lat = sorted(self._latencies)
        mean = sum(lat) / len(lat) * 1000 if lat else None
        p95 = percentile(lat, 95) * 1000 if lat else None
        return PoolStats(
            size=self._size,
            workers=workers,
            queued=sum(1 for f in self._waiters if not f.done()),
            busy=sum(1 for w in workers if w.state == "busy"),
            idle=sum(1 for w in workers if w.state == "idle"),
            runs_served=retired + sum(w.runs_served for w in workers),  # the rows plus the retired: they agree
            retired_served=retired,
            fallback_runs=self._fallback_runs,
            crashes=self._crashes,
            recycled=self._recycled,
            start_latency_mean_ms=mean,
            start_latency_p95_ms=p95,
            broken=self._broken,
            closed=self._closed,
            started=self._loop is not None and not self._closed,
            supported=self.supported,
        )


_LIVE_POOLS: weakref.WeakSet[ResourcePool] = weakref.WeakSet()


@atexit.register
def _close_pools_at_exit() -> None:
    """A pool left open when the interpreter exits: stop its workers (they would see EOF anyway)."""
    for pool in list(_LIVE_POOLS):
        if pool._workers:
            with contextlib.suppress(Exception):
                pool.close_blocking(timeout=2.0)


def env_diff(env: dict[str, str], base: dict[str, str]) -> dict[str, Any]:
    """`env` as what to set and unset on top of `base` (a fork server's environment)."""
    return {"set": {k: v for k, v in env.items() if base.get(k) != v}, "unset": [k for k in base if k not in env]}


def _left_behind(value: object) -> list[tuple[int, int]] | None:
    """An "exit" message's ``left`` as (pid, start ticks) pairs: [] when absent (nothing was left),
    None when malformed (not known: the tree then looks for itself)."""
    if value is None:
        return []
    if not isinstance(value, list):
        return None
    pairs = [(item[0], item[1]) for item in value if isinstance(item, list) and len(item) == 2
             and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in item)]
    return pairs if len(pairs) == len(value) else None


def _describe(code: int | None) -> str:
    if code is None:
        return "exit status not known yet"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
