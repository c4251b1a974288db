"""RunEngine: registry + executor + event bus; what the CLI, the GUI and scripts use.

Every status change goes through `_change`, which applies `models.transition`, writes the
registry, and only then publishes `RunChanged`. Nothing a bad spec or a bad child does
raises out of here: it becomes a run that ended `failed_to_start` or `failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from prismq_desktop.core import paths
from prismq_desktop.core.events import EventBus, Notice, OutputBatch, Progress, RunChanged
from prismq_desktop.core.functions import payload as function_payload
from prismq_desktop.core.models import (
    Outcome,
    OutcomeKind,
    Run,
    RunMode,
    RunSpec,
    RunStatus,
    TargetKind,
    check_run_key,
    transition,
    where_problem,
)
from prismq_desktop.core.monitor.monitor import ResourceMonitor
from prismq_desktop.core.monitor.samples import RunSample
from prismq_desktop.core.patterns import Priority
from prismq_desktop.core.process.capture import OutputCapture, OutputChunk
from prismq_desktop.core.process.executor import ENV_MODE, Executor, Job
from prismq_desktop.core.process.launch import Launch, LaunchError, environ_snapshot, mark_run, remote_preview, resolve
from prismq_desktop.core.process.local import SubprocessWrapper
from prismq_desktop.core.process.logfile import LogWriter, Stream
from prismq_desktop.core.process.tree import kill_orphan
from prismq_desktop.core.progress import ProgressTracker, has_protocol
from prismq_desktop.core.secrets import SecretMissing, masked_argv, masked_env
from prismq_desktop.core.store.passing import PASSING, RETRY_FIRST, next_delay
from prismq_desktop.core.store.recovery import find_orphans
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.core.store.reserve import SpaceReserve
from prismq_desktop.core.store.schema import RegistryError, RegistryFull

log = logging.getLogger(__name__)

MODE_CACHE_SIZE = 16
# a full disk even after the data dir's reserve was given back (something else took the room):
# how long a finished run's snapshot is still retried before it is given up (logged, waiters released)
FULL_PATIENCE = 10.0
RESERVE_RECHECK = 5.0  # seconds between looks at a space reserve nobody gave back
# group commit: while other runs are live, the batched starts/ends are committed at most once per
# this many seconds, so a short run's start and end share one transaction (and one UPDATE)
GROUP_COMMIT = 0.003

def _change_kind(before: RunStatus, after: RunStatus) -> str:
    if after is RunStatus.DONE:
        return "finished"
    if after is RunStatus.PAUSED:
        return "paused"
    if after is RunStatus.RUNNING:
        return "resumed" if before is RunStatus.PAUSED else "started"
    return "queued"


def is_remote(run: Run) -> bool:
    """Does (or did) this run go to a remote worker? Its pid is then another machine's."""
    return run.remote_id is not None or run.spec.remote_queue is not None


def recover_orphans(registry: RunRegistry, publish: Callable[[RunChanged], None] | None = None,
                    keep: Callable[[Run], bool] | None = None) -> list[Run]:
    """End runs whose owning process died (`interrupted`), stopping a tree they left alive.

    The store reports the orphans; this decides and acts, then saves each new snapshot
    before announcing it. `keep(run)` true: the run is left as it is (a remote run a
    remote-capable engine reattaches to). A remote run's pid is never signalled here.
    """
    recovered = []
    for orphan in find_orphans(registry):
        run = orphan.run
        if keep is not None and keep(run):
            continue
        reason = f"PrismQ process {run.owner_pid} ended while this run was {run.status.value}"
        if is_remote(run):
            if run.remote_id is not None:
                continue  # still going (or done) on its worker: an engine with a broker reattaches
            reason += " (before it reached a worker)"
        elif orphan.tree_alive and run.pid and kill_orphan(run.pid, run.pid_create_time):
            reason += f"; its process tree (pid {run.pid}) was still alive and has been stopped"
        ended = transition(run, RunStatus.DONE, Outcome(OutcomeKind.INTERRUPTED, None, reason))
        registry.save(ended)
        if publish is not None:
            publish(RunChanged(ended, "finished"))
        recovered.append(ended)
    return recovered


class RunHandle:
    """A live (or finished) run: its newest snapshot, its output tail, and controls.

    `run` is an immutable snapshot that the engine replaces on every change; a handle
    never lets anyone else change the run.
    """

    def __init__(self, engine: RunEngine, run: Run) -> None:
        self._engine = engine
        self._run = run
        self.job: Job | None = None
        self.capture: OutputCapture | None = None
        self._done = False
        self._future: asyncio.Future[Run] | None = None
        self._staged: dict[str, Any] = {}  # fields known before the next change (argv, cwd), saved with it
        self._finish_deferred = False  # ended, but its last snapshot is not stored yet
        # driven by a task on the loop (launch, reattach): its start and end are stored with the
        # loop turn's batch; a blocking run (run_blocking) stores them at once, before it returns
        self._batched = False
        # called once its process has ended (before its end is stored): the orchestrator frees
        # its slot then; None once called
        self._ended_callbacks: list[Callable[[], None]] | None = []

    @property
    def run(self) -> Run:
        return self._run

    @property
    def id(self) -> int:
        return self.run.id

    @property
    def outcome(self) -> Outcome | None:
        return self.run.outcome

    @property
    def exit_code(self) -> int | None:
        return self.run.exit_code

    @property
    def done(self) -> bool:
        return self._done

    def stdout(self) -> str:
        return self.capture.text(Stream.STDOUT) if self.capture else ""

    def stderr(self) -> str:
        return self.capture.text(Stream.STDERR) if self.capture else ""

    async def wait(self, timeout: float | None = None) -> Run:
        if self._future is None:
            raise RuntimeError("this run was not started on an event loop")
        return await asyncio.wait_for(asyncio.shield(self._future), timeout)

    def when_done(self, callback: Callable[[], None]) -> bool:
        """Call `callback()` on the loop once the run's end is stored and announced (what
        `wait()` waits for, with no task per run); False when it was not started on a loop."""
        if self._future is None:
            return False
        self._future.add_done_callback(lambda _f: callback())
        return True

    def when_ended(self, callback: Callable[[], None]) -> bool:
        """Call `callback()` on the loop once the run's process has ended in memory (its tree is
        gone), which may be a group commit before its end is stored: a concurrency slot need
        not wait for the registry. When the registry is refusing writes (locked, disk full) it
        is called only once the end is stored, so no more runs start than can be recorded.
        False when it was not started on a loop."""
        if self._future is None:
            return False
        if self._ended_callbacks is None:
            self._future.get_loop().call_soon(callback)
        else:
            self._ended_callbacks.append(callback)
        return True

    def cancel(self, graceful: bool = True) -> bool:
        return self._engine.cancel(self.id, graceful=graceful)

    def pause(self) -> bool:
        return self._engine.pause(self.id)

    def resume(self) -> bool:
        return self._engine.resume(self.id)


class RunEngine:
    """Starts runs, records them, and tells subscribers what happens."""

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        registry: RunRegistry | None = None,
        executor: Executor | None = None,
        mode: RunMode | str = RunMode.AUTO,
        tail_lines: int = 2000,
        max_line_chars: int = 16384,
        monitor_interval: float = 1.0,
        recover: bool = True,
    ) -> None:
        self.home = paths.data_dir(home)
        self.registry = registry or RunRegistry(paths.registry_path(self.home))
        self.executor: Executor = executor or SubprocessWrapper(mode)
        self.bus = EventBus()
        # where secret values went (no OS credential store, or it failed): a Notice, so the window's
        # status bar says it too (the CLI prints it through paths.notice)
        self.registry.vault.on_notice = lambda text: self.bus.publish(Notice(None, text, "warning"))
        self.tail_lines = tail_lines
        self.max_line_chars = max_line_chars
        # psutil/procfs sampling of every live run's tree, off the loop thread; samples are
        # published on the loop, and each run's peak/mean CPU and RSS are saved when it ends
        self._loop: asyncio.AbstractEventLoop | None = _running_loop()
        self.monitor = ResourceMonitor(monitor_interval, publish=self._publish_sample, disk_path=str(self.home))
        self._live: dict[int, RunHandle] = {}
        self._unannounced: list[RunHandle] = []
        self._mode_cache: dict[tuple[int, object, str | None], RunMode] = {}
        self._launch_cache: dict[tuple[str, str], tuple[dict[str, str], Launch]] = {}
        # id(resolved launch) -> (it, the environ it was compared with, argv shown, env shown, removed shown)
        self._shown_cache: dict[int, tuple[Launch, dict[str, str], list[str], dict[str, str | None],
                                           dict[str, str | None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.RLock()
        # snapshots the registry refused for a passing reason (locked past the busy timeout, a
        # full disk), kept in memory with their announcements until stored (see _save)
        self._unsaved: dict[int, list[RunChanged]] = {}
        self._unsaved_since: dict[int, float] = {}
        self._uninserted: set[int] = set()  # of those, runs whose row does not exist yet (never started before it does)
        self._retry_delay = RETRY_FIRST
        self._retry_handle: asyncio.TimerHandle | None = None
        self._batch_pending = False  # a _flush_batch is scheduled
        self._batch_timer: asyncio.TimerHandle | None = None  # ... later, by the group commit
        self._batched: list[int] = []  # runs whose start/end waits for it
        self._in_batch: set[int] = set()  # runs in _unsaved only because the batch is not flushed yet
        self.group_commit = GROUP_COMMIT  # seconds; see _schedule_flush
        self._clock: Callable[[], float] = time.monotonic
        self._last_commit = float("-inf")
        self.batch_commits = 0  # batches flushed (counts, for tests and benchmarks)
        self.delayed_commits = 0  # of those, held back by the group commit
        self.unsaved_errors: dict[int, str] = {}  # runs whose end could not be stored at all (disk full)
        # room on the data dir's disk(s) for a run's last words when the disk fills just then
        self.reserve = SpaceReserve([self.home, self.home / "logs"])
        self._reserve_seen = self.reserve.released if self.reserve.ensure() else -1
        self._reserve_checked = time.monotonic()
        # runs a dead PrismQ left active end `interrupted` before anything new starts; remote
        # runs stay for `reattach_remote` (their worker may still be running them)
        self.recovered: list[Run] = recover_orphans(self.registry, self.bus.publish) if recover else []
        self._remote_usage: dict[int, list[float]] = {}  # run id -> [samples, peak cpu, cpu sum, peak rss, rss sum]

    @property
    def runs_remote(self) -> bool:
        """Can this engine's executor send runs to remote workers (a broker is configured)?"""
        return bool(getattr(self.executor, "runs_remote", False))

    def reattach_remote(self) -> list[RunHandle]:
        """Follow again the remote runs whose watching app died (needs a running loop and a
        broker): each becomes a live run of this engine, its log rewritten from the stream's
        start (the stream keeps a run's whole output until a watcher wrote its end), so the
        log file is whole whatever moment the old app died at."""
        if not self.runs_remote:
            return []
        loop = asyncio.get_running_loop()
        handles = []
        for orphan in find_orphans(self.registry):
            run = orphan.run
            if run.remote_id is None or run.id in self._live:
                continue
            owner_pid, owner_time = self.registry.owner
            handle = RunHandle(self, run.with_changes(owner_pid=owner_pid, owner_create_time=owner_time))
            handle._future = loop.create_future()
            self._live[run.id] = handle
            with self._lock:
                self.registry.save(handle._run)
            launch = remote_preview(run.spec) if run.spec.remote_queue else Launch(run.argv, {}, run.cwd or "", "utf-8")
            job = self._make_job(handle, launch, reattach=run.remote_id)
            handle._batched = True
            task = loop.create_task(self._drive(handle, job, RunMode(run.mode)), name=f"run-{run.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            handles.append(handle)
        return handles

    def _publish_sample(self, ev: Any) -> None:
        """Runs on the sampler thread: hand the sample to the loop (or publish directly with no loop)."""
        loop = self._loop
        if loop is None:
            self.bus.publish(ev)
            return
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.bus.publish, ev)
            except RuntimeError:
                pass  # the loop closed meanwhile

    # -- the one place a run changes
    def _change(self, handle: RunHandle, status: RunStatus, outcome: Outcome | None = None, *,
                batch: bool = False, **fields: Any) -> None:
        """Next snapshot (state diagram checked), saved, then announced: the only writer of runs.

        `batch`: a run's own start or end on the loop thread (the hot path): stored with every
        other run's changes of this loop turn in one transaction, and announced after it."""
        self.flush_created()
        with self._lock:
            before = handle._run
            changes = {**handle._staged, **fields}
            handle._staged.clear()
            after = transition(before, status, outcome, **changes)
            handle._run = after
            stored = self._save(handle, RunChanged(after, _change_kind(before.status, status)), batch=batch)
        if stored:
            self.bus.publish(RunChanged(after, _change_kind(before.status, status)))

    def _amend(self, handle: RunHandle, **fields: Any) -> None:
        """A change that is not a status change (priority, retry time): saved, then announced."""
        self.flush_created()
        with self._lock:
            after = handle._run.with_changes(**fields)
            handle._run = after
            stored = self._save(handle, RunChanged(after, "updated"))
        if stored:
            self.bus.publish(RunChanged(after, "updated"))

    # -- snapshots the registry refused for a while
    def _write(self, write: Callable[[], object], runs: list[Run]) -> None:
        """`write()` the snapshots `runs`; when the disk is full and one of them is a run's end,
        the data dir's reserve is given back and it is written again at once (a run's outcome
        is not left to a timeout)."""
        try:
            write()
        except RegistryFull:
            if not any(r.status is RunStatus.DONE for r in runs) or not self.reserve.release():
                raise
            log.warning("runs %s: the disk is full as they end; using the space kept for this", [r.id for r in runs])
            write()

    def _store(self, run: Run) -> None:
        self._write(lambda: self.registry.save(run), [run])

    def _keep(self, events: list[RunChanged], exc: Exception, *, insert: bool = False) -> None:
        """Keep refused snapshots and their announcements in memory (under self._lock) until stored."""
        ids = [ev.run.id for ev in events]
        what = f"run {ids[0]}" if len(ids) == 1 else f"{len(ids)} runs (#{ids[0]}..#{ids[-1]})"
        log.warning("%s: %s; kept in memory and retried", what, exc)
        for event in events:
            self._add_unsaved(event.run.id, event, insert)

    def _add_unsaved(self, run_id: int, event: RunChanged, insert: bool) -> None:
        self._unsaved[run_id] = [event]
        self._unsaved_since[run_id] = time.monotonic()
        if insert:
            self._uninserted.add(run_id)

    def _retry_later(self) -> None:
        """Retry the kept snapshots: on the loop when there is one, else on this thread until stored."""
        if _running_loop() is None:
            self._retry_blocking()
        else:
            self._schedule_retry()

    def _save(self, handle: RunHandle, event: RunChanged, batch: bool = False) -> bool:
        """Store `event.run` (under self._lock); True when it is stored and may be announced now.

        When the registry is locked past its busy timeout (or the disk is full), the snapshot
        and its announcement are kept in memory and retried with backoff: on the loop when
        there is one, else on this thread until stored. Announced only once stored; the run's
        waiters are released only then (`_finish` waits for it)."""
        queued = self._unsaved.get(handle.id)
        if queued is not None:  # an older one still waits (or the row itself): this one goes after it
            queued.append(event)
            return False
        loop = self._loop
        if batch and loop is not None and _running_loop() is loop:
            # kept like a refused snapshot, but flushed at the end of this loop turn: many runs'
            # changes in one transaction; announced (and their waiters released) once stored
            self._add_unsaved(handle.id, event, False)
            self._batched.append(handle.id)
            self._in_batch.add(handle.id)
            if not self._batch_pending:
                self._schedule_flush(loop)
            return False
        try:
            self._store(event.run)
            return True
        except PASSING as exc:
            self._keep([event], exc)
        self._retry_later()
        return False

    def _schedule_retry(self) -> None:
        loop = _running_loop()
        if loop is None or self._retry_handle is not None:
            return
        self._retry_handle = loop.call_later(self._retry_delay, self._retry_saves)
        self._retry_delay = next_delay(self._retry_delay)

    def _retry_blocking(self) -> None:
        while self._unsaved:
            time.sleep(self._retry_delay)
            self._retry_delay = next_delay(self._retry_delay)
            self._retry_saves(reschedule=False)

    def _give_up(self, run_id: int, events: list[RunChanged], exc: Exception) -> bool:
        """A finished run still refused for a full disk after FULL_PATIENCE: logged, waiters released."""
        waited = time.monotonic() - self._unsaved_since[run_id]
        last = events[-1].run
        if not isinstance(exc, RegistryFull) or waited < FULL_PATIENCE or last.status is not RunStatus.DONE:
            return False
        log.error("run %s ended %s but could not be recorded: %s", run_id,
                  last.outcome.describe() if last.outcome else "", exc)
        self.unsaved_errors[run_id] = str(exc)
        return True

    def _schedule_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Group commit with bounded latency: flush at the end of this loop turn, unless the last
        commit was less than `group_commit` ago and another run is live (more changes are coming):
        then when that much has passed. A lone run is never held back; under load a short run's
        start and end land in one transaction and one UPDATE (only its newest snapshot is written).
        Persisted before announced still holds: announcements follow the commit."""
        self._batch_pending = True
        wait = self._last_commit + self.group_commit - self._clock()
        if wait > 0 and len(self._live) > 1:
            self.delayed_commits += 1
            self._batch_timer = loop.call_later(wait, self._flush_batch)
        else:
            loop.call_soon(self._flush_batch)

    def _flush_batch(self) -> None:
        """Store the batched start/end snapshots in one transaction, then announce them (and
        release the waiters of runs that ended).

        Refused for a passing reason (locked, disk full): they stay kept and go to the retry
        with backoff like any refused snapshot. A row that is gone: one by one, so the others
        are still stored."""
        self._batch_pending = False
        if self._batch_timer is not None:
            self._batch_timer.cancel()  # when flushed early (shutdown)
            self._batch_timer = None
        stored: list[tuple[int, list[RunChanged]]] = []
        with self._lock:
            ids, self._batched = self._batched, []
            self._in_batch.difference_update(ids)  # stored now, or refused: retried with backoff
            if not ids:
                return
            self.batch_commits += 1
            items = [(rid, self._unsaved[rid]) for rid in dict.fromkeys(ids)
                     if rid in self._unsaved and rid not in self._uninserted]
            runs = [evs[-1].run for _, evs in items]
            try:
                self._write(lambda: self.registry.save_many(runs, check=True), runs)
                stored = items
            except PASSING as exc:
                self._keep_batch(items, exc)
            except RegistryError:
                for rid, evs in items:
                    try:
                        self._store(evs[-1].run)
                    except PASSING as exc:
                        self._keep_batch([(rid, evs)], exc)
                        continue
                    except RegistryError as exc:  # not passing: give up, but never leave waiters hanging
                        log.error("run %s could not be recorded: %s", rid, exc)
                        self.unsaved_errors[rid] = str(exc)
                    stored.append((rid, evs))
            self._last_commit = self._clock()
            for rid, _ in stored:
                del self._unsaved[rid]
                self._unsaved_since.pop(rid, None)
        for rid, events in stored:
            for event in events:
                self.bus.publish(event)
            handle = self._live.get(rid)
            if handle is not None and handle._finish_deferred:
                self._finish(handle)

    def _keep_batch(self, items: list[tuple[int, list[RunChanged]]], exc: Exception) -> None:
        """Batched snapshots refused for a passing reason: already kept; logged, retried with backoff."""
        what = f"run {items[0][0]}" if len(items) == 1 else f"{len(items)} runs (#{items[0][0]}..#{items[-1][0]})"
        log.warning("%s: %s; kept in memory and retried", what, exc)
        self._schedule_retry()

    def _retry_saves(self, reschedule: bool = True) -> None:
        """Try the kept snapshots again (new rows first, in one transaction); announce (and
        release) each one stored."""
        self._retry_handle = None
        stored: list[tuple[int, list[RunChanged]]] = []
        with self._lock:
            rows = [(rid, evs) for rid, evs in self._unsaved.items() if rid in self._uninserted]
            done: list[tuple[int, list[RunChanged]]] = []
            if rows:
                runs = [evs[-1].run for _, evs in rows]
                try:
                    self._write(lambda: self.registry.insert(runs), runs)
                    done = rows
                except PASSING as exc:
                    done = [(rid, evs) for rid, evs in rows if self._give_up(rid, evs, exc)]
                except RegistryError as exc:  # not passing: give up, but never leave waiters hanging
                    log.error("runs %s could not be recorded: %s", [rid for rid, _ in rows], exc)
                    self.unsaved_errors.update({rid: str(exc) for rid, _ in rows})
                    done = rows
            for run_id, events in list(self._unsaved.items()):
                if run_id in self._uninserted:
                    continue
                try:
                    self._store(events[-1].run)
                except PASSING as exc:
                    if not self._give_up(run_id, events, exc):
                        continue
                except RegistryError as exc:  # not passing: give up, but never leave waiters hanging
                    log.error("run %s could not be recorded: %s", run_id, exc)
                    self.unsaved_errors[run_id] = str(exc)
                done.append((run_id, events))
            for run_id, events in done:
                del self._unsaved[run_id]
                self._unsaved_since.pop(run_id, None)
                self._uninserted.discard(run_id)
                self._in_batch.discard(run_id)
                stored.append((run_id, events))
            if not self._unsaved:
                self._retry_delay = RETRY_FIRST
        for run_id, events in stored:
            for event in events:
                self.bus.publish(event)
            handle = self._live.get(run_id)
            if handle is not None and handle._finish_deferred:
                self._finish(handle)
        if self._unsaved and reschedule:
            self._schedule_retry()

    @property
    def unsaved(self) -> int:
        """How many runs have a newer state than the registry (kept in memory, being retried)."""
        return len(self._unsaved)

    async def wait_saved(self, timeout: float | None = None) -> bool:
        """Wait until every kept snapshot is stored (or given up); False if `timeout` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._unsaved:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._schedule_retry()
            await asyncio.sleep(0.02)
        return True

    def amend(self, run_id: int, *, priority: Priority | None = None, hold_until: float | None | bool = False) -> bool:
        """Change a queued run's place in the queue: its priority, or when a retry may start
        (`hold_until=None` releases it). Returns False for a run that is not queued here."""
        handle = self._live.get(run_id)
        if handle is None or handle.done or handle._run.status is not RunStatus.QUEUED:
            return False
        fields: dict[str, Any] = {}
        if priority is not None and priority != handle._run.priority:
            fields["priority"] = Priority(priority)
        if hold_until is not False and hold_until != handle._run.not_before:
            fields["not_before"] = hold_until
        if fields:
            self._amend(handle, **fields)
        return True

    # -- queries
    def get(self, run_id: int) -> Run | None:
        """The newest snapshot: from memory while the run is live here, else from the registry."""
        handle = self._live.get(run_id)
        return handle.run if handle else self.registry.get(run_id)

    def handle(self, run_id: int) -> RunHandle | None:
        return self._live.get(run_id)

    def active(self) -> list[RunHandle]:
        return [h for h in self._live.values() if not h.done]

    # -- starting
    def create(self, spec: RunSpec, *, mode: RunMode | str | None = None, **fields: Any) -> RunHandle:
        """Record a queued run (persisted, then announced) without starting it.

        `fields` set orchestration columns of the Run (priority, pattern, attempt, ...).
        `RegistryLocked`/`RegistryFull` when not even an id could be reserved: then nothing
        was created. Once it has an id the run is never lost: a refused insert is kept and
        retried, and the run is announced and started only after it is stored.
        """
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        key = (id(loop), mode, _env_mode())
        chosen = self._mode_cache.get(key)
        if chosen is None:
            if len(self._mode_cache) >= MODE_CACHE_SIZE:  # keyed by loop: a process may make many loops
                self._mode_cache.clear()
            chosen = self._mode_cache[key] = self.executor.mode_for_run(mode)
        run = self.registry.new_run(spec, mode=chosen, dry_run=chosen is RunMode.DRY_RUN, **fields)
        handle = RunHandle(self, run)
        handle._future = loop.create_future() if loop is not None else None
        self._live[run.id] = handle
        if self._loop is None and loop is not None:
            self._loop = loop
        claims = run.key is not None or (run.options.get("requeue_of") is not None and run.attempt <= 1)
        if loop is None or claims:
            # a caller-chosen id (or a dead letter's requeue) is claimed now, so a taken one fails
            # this call (RunKeyTaken, RequeueTaken) and never a later batch; runs created before
            # it are stored (and announced) first
            self.flush_created()
            with self._lock:
                try:
                    self.registry.insert([run])
                except PASSING as exc:
                    if claims:  # its claim cannot be made later: nothing was created
                        self._live.pop(run.id, None)
                        raise
                    # no loop: wait here until it is stored (then it is announced)
                    self._keep([RunChanged(run, "queued")], exc, insert=True)
                    self._retry_blocking()
                    return handle
                except BaseException:
                    self._live.pop(run.id, None)
                    raise
            self.bus.publish(RunChanged(run, "queued"))
            return handle
        # A burst of submissions in one loop iteration is stored with one commit; each run
        # is announced only after that (or before any later change of any run).
        with self._lock:
            if not self._unannounced:
                loop.call_soon(self.flush_created)
            self._unannounced.append(handle)
        return handle

    def flush_created(self) -> None:
        """Store runs created since the last flush in one transaction, then announce them.

        A locked registry (or a full disk) keeps them in memory, retried with backoff: each is
        announced once stored, and none starts before (`_drive` waits for it)."""
        with self._lock:
            if not self._unannounced:
                return
            handles, self._unannounced = self._unannounced, []
            try:
                self.registry.insert([h.run for h in handles])
            except PASSING as exc:
                self._keep([RunChanged(h.run, "queued") for h in handles], exc, insert=True)
                self._retry_later()
                return
        for handle in handles:
            self.bus.publish(RunChanged(handle.run, "queued"))

    def _resolve(self, handle: RunHandle) -> Launch | None:
        try:
            spec = handle.run.spec
            problem = where_problem(spec.where)
            if problem:
                raise LaunchError(problem)
            if spec.remote_queue is not None:
                if not self.runs_remote:
                    raise LaunchError(f"cannot run on {spec.where}: no broker is configured "
                                      "(set PRISMQ_BROKER_URL or pass --broker)")
                return remote_preview(spec)  # the worker resolves it on its own machine
            revealed = self.registry.vault.reveal_env(spec.env)  # stored references -> the real values
            launch = self._resolve_cached(spec) if revealed is None else resolve(spec.with_changes(env=revealed))
            if spec.kind is TargetKind.FUNCTION:
                launch = self._function_launch(handle, launch)
            return launch
        except (LaunchError, SecretMissing) as exc:
            self._fail_to_start(handle, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug in resolution must still end the run
            log.exception("resolving run %s failed", handle.id)
            self._fail_to_start(handle, f"internal error: {exc}")
        return None

    def _resolve_cached(self, spec: RunSpec) -> Launch:
        """`resolve(spec)`, kept per spec for commands and modules (the same delay() again is the
        same spec): the PATH search, cwd and environment are the same while neither the spec, the
        working directory nor os.environ changed. A command gone meanwhile still fails to start
        (the spawn refuses it, one line). Scripts and functions are checked every time (their file
        is the child's, not the OS's, to open)."""
        if spec.kind not in (TargetKind.EXECUTABLE, TargetKind.MODULE) and not (
                spec.kind is TargetKind.AUTO and not spec.target.lower().endswith((".py", ".pyw"))):
            return resolve(spec)
        try:
            here = os.getcwd()  # a relative target or cwd is resolved against it
        except OSError:  # the app's working directory was removed: resolve() copes, uncached
            return resolve(spec)
        key = (spec.json, here)
        base = environ_snapshot()[1]  # a new object whenever os.environ changed
        found = self._launch_cache.get(key)
        if found is not None and found[0] is base:
            return found[1]
        launch = resolve(spec)
        if len(self._launch_cache) >= MODE_CACHE_SIZE * 16:
            self._launch_cache.clear()
        self._launch_cache[key] = (base, launch)
        return launch

    # -- function tasks: the call goes in a file, the report comes back in another (both 0600)
    def _function_launch(self, handle: RunHandle, launch: Launch) -> Launch:
        """Write the call file and name both files in the child's environment (the runner reads them)."""
        call_path, result_path = function_files(handle.run.log_path, handle.id, self.home)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(result_path)  # never a stale report
            _write_private(call_path, handle.run.spec.payload or "")
        except OSError as exc:
            raise LaunchError(f"cannot write the function's arguments to {call_path}: {exc.strerror or exc}") from None
        env = {**launch.env, function_payload.CALL_FILE_VAR: call_path, function_payload.RESULT_FILE_VAR: result_path,
               function_payload.SERIALIZER_VAR: handle.run.spec.serializer.value}
        return dataclasses.replace(launch, env=env)

    def _function_outcome(self, handle: RunHandle, outcome: Outcome) -> tuple[Outcome, dict[str, Any]]:
        """A function run's outcome from the runner's report (and the report, stored with the run).

        The exit code alone cannot tell "returned" from "exited 0 without a result" (os._exit):
        a run succeeds only when the report says the function returned. An exception ends it
        failed with the type, message and traceback in its note (the log has them on stderr too).
        """
        if handle.run.spec.kind is not TargetKind.FUNCTION:
            return outcome, {}
        call_path, result_path = function_files(handle.run.log_path, handle.id, self.home)
        text: str | None = None
        problem: str | None = None
        if handle.run.spec.remote_queue is not None:  # the worker sent the report back in the stream
            text = handle.job.remote_result if handle.job is not None else None
            if text is not None and len(text) > function_payload.MAX_RESULT_BYTES:
                problem = (f"the function's result is {len(text)} bytes, more than the "
                           f"{function_payload.MAX_RESULT_BYTES} a run may keep")
            elif text is not None:
                problem = function_payload.check_report(text)
        else:
            try:
                size = os.path.getsize(result_path)
                if size > function_payload.MAX_RESULT_BYTES:
                    problem = (f"the function's result is {size} bytes, more than the "
                               f"{function_payload.MAX_RESULT_BYTES} a run may keep")
                else:
                    with open(result_path, "rb") as fh:
                        text = fh.read().decode("utf-8")
                    problem = function_payload.check_report(text)
            except FileNotFoundError:
                pass
            except (OSError, UnicodeDecodeError) as exc:
                problem = f"the function's result could not be read: {exc}"
        for path in (call_path, result_path):
            with contextlib.suppress(OSError):
                os.unlink(path)
        if problem is not None:
            kind = OutcomeKind.FAILED if outcome.kind is OutcomeKind.SUCCEEDED else outcome.kind
            return dataclasses.replace(outcome, kind=kind, message=_joined(outcome.message, problem)), {}
        if text is None:
            if outcome.kind is OutcomeKind.SUCCEEDED:
                return Outcome(OutcomeKind.FAILED, outcome.exit_code,
                               "the function's process ended without reporting a result"), {}
            return outcome, {}
        error = function_payload.report_error(text)
        if error is not None and outcome.kind in (OutcomeKind.SUCCEEDED, OutcomeKind.FAILED):
            note = f"{error.get('type', 'Exception')}: {error.get('message', '')}"
            if error.get("traceback"):
                note += "\n" + error["traceback"].rstrip("\n")
            outcome = Outcome(OutcomeKind.FAILED, outcome.exit_code if outcome.exit_code else 1,
                              _joined(outcome.message, note))
        return outcome, {"result": text}

    def launch(self, handle: RunHandle) -> None:
        """Start a queued run in the background (needs a running loop)."""
        loop = asyncio.get_running_loop()
        if handle.done or handle.job is not None:
            return
        launch = self._resolve(handle)
        if launch is None:
            return
        job = self._make_job(handle, launch)
        handle._batched = True
        task = loop.create_task(self._drive(handle, job, RunMode(handle.run.mode)), name=f"run-{handle.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def record_unstarted(self, spec: RunSpec, outcome: Outcome, **fields: Any) -> Run:
        """Store a run that is over before it began (a schedule's skipped or missed fire): one
        row written already DONE, one announcement — never a moment where it looks queued."""
        run = self.registry.new_run(spec, mode=RunMode.AUTO, **fields)  # no id: raised, nothing kept
        done = transition(run, RunStatus.DONE, outcome)
        self.flush_created()
        with self._lock:
            try:
                self._write(lambda: self.registry.insert([done]), [done])
            except PASSING as exc:  # kept, retried, announced once stored
                self._keep([RunChanged(done, "finished")], exc, insert=True)
                self._retry_later()
                return done
        self.bus.publish(RunChanged(done, "finished"))
        return done

    def finish_unstarted_many(self, handles: list[RunHandle], outcome: Outcome) -> None:
        """finish_unstarted for many runs with one commit, then one announcement each."""
        self.flush_created()
        todo = [h for h in handles if not h.done]
        with self._lock:
            events = []
            for handle in todo:
                handle._run = transition(handle._run, RunStatus.DONE, outcome)
                events.append(RunChanged(handle._run, "finished"))
            free = []
            for event in events:
                queued = self._unsaved.get(event.run.id)
                if queued is not None:  # an older state (or the row) still waits: this goes after it
                    queued.append(event)
                else:
                    free.append(event)
            runs = [ev.run for ev in free]
            try:
                self._write(lambda: self.registry.save_many(runs), runs)
            except PASSING as exc:  # kept and retried; each announced (and released) once stored
                self._keep(free, exc)
                free = []
                self._retry_later()
        for event in free:
            self.bus.publish(event)
        for handle in todo:
            self._finish(handle)

    def finish_unstarted(self, handle: RunHandle, outcome: Outcome) -> None:
        """End a run that never started (cancelled while queued, dependency failed, ...)."""
        if handle.done:
            return
        self._change(handle, RunStatus.DONE, outcome)
        self._finish(handle)

    def _fail_to_start(self, handle: RunHandle, message: str) -> None:
        writer = LogWriter(handle.run.log_path or "")
        writer.meta(event="failed_to_start", message=message)
        writer.close()
        self._change(handle, RunStatus.DONE, Outcome(OutcomeKind.FAILED_TO_START, None, message))
        self._finish(handle)

    def _make_job(self, handle: RunHandle, launch: Launch, reattach: str | None = None) -> Job:
        run = handle.run
        resolved = launch
        launch = mark_run(launch, run.id)  # how the run's re-parented descendants are found
        spec = run.spec
        remote = is_remote(run)
        if reattach is not None and run.log_path:
            with contextlib.suppress(OSError):
                os.unlink(run.log_path)  # rewritten whole from the stream's start
        self._ensure_reserve()  # given back when an earlier run ended on a full disk: made again if there is room
        writer = LogWriter(run.log_path or "", lazy=True)  # made at the first output, or at the end if kept
        argv_shown, env_shown = self._shown(resolved, launch, spec, remote)
        writer.meta(event="start", run_id=run.id, argv=argv_shown, cwd=launch.cwd, env=env_shown, mode=run.mode)
        capture = OutputCapture(writer, launch.encoding, self.tail_lines, self.max_line_chars)
        handle.capture = capture
        handle._staged.update(argv=launch.argv, cwd=launch.cwd)  # saved with the next change

        def on_started(pid: int, create_time: float | None) -> None:
            if handle._run.status is not RunStatus.QUEUED:
                return  # a reattached remote run that was already running
            self._change(handle, RunStatus.RUNNING, batch=handle._batched, pid=pid, pid_create_time=create_time)
            if remote:
                return  # another machine's pid: its worker samples it (on_sample)
            self.monitor.watch(run.id, pid)
            self.monitor.start()  # no-op when already running

        def on_remote(**fields: Any) -> None:
            if handle.done:
                return
            if handle._run.status is RunStatus.QUEUED and "remote_id" in fields:
                self._amend(handle, **fields)  # stored now: a restarted app can reattach from here on
            else:
                handle._staged.update(fields)  # saved with the next change

        def on_sample(cpu: float, rss: int) -> None:
            acc = self._remote_usage.setdefault(run.id, [0, 0.0, 0.0, 0, 0])
            acc[0] += 1
            acc[1] = max(acc[1], cpu)
            acc[2] += cpu
            acc[3] = max(acc[3], rss)
            acc[4] += rss
            self.bus.publish(RunSample(run.id, time.time(), cpu, int(rss), 0, 0, None, None))

        tracker = ProgressTracker()
        last_saved = [0.0]

        def on_output(chunks: list[OutputChunk]) -> None:
            self.bus.publish(OutputBatch(run.id, tuple(chunks)))
            reading = None
            for chunk in chunks:  # the protocol marker is looked for everywhere (a memchr)
                if has_protocol(chunk.text):
                    reading = tracker.feed(chunk.text) or reading
            if reading is None:  # heuristics only look at the newest output (the last few KiB)
                tail = chunks[-1].text
                for chunk in reversed(chunks[:-1]):
                    if len(tail) >= 4096:
                        break
                    tail = chunk.text + tail
                reading = tracker.feed(tail[-8192:])
            if reading is not None:
                # a reading, not a state change: the snapshot follows it at once, the registry
                # at most once a second (and with the final state)
                with self._lock:
                    handle._run = handle._run.with_changes(progress=reading.fraction, progress_message=reading.message)
                    now = time.monotonic()
                    if now - last_saved[0] >= 1.0 and handle.id not in self._unsaved:
                        last_saved[0] = now
                        try:
                            self.registry.save(handle._run)
                        except RegistryError as exc:  # a reading: the final state carries it anyway
                            log.warning("run %s: progress not saved: %s", run.id, exc)
                self.bus.publish(Progress(run.id, reading.fraction, reading.message))

        job = Job(
            run_id=run.id,
            launch=launch,
            capture=capture,
            soft_timeout=spec.soft_timeout,
            hard_timeout=spec.hard_timeout,
            grace_period=spec.grace_period,
            on_started=on_started,
            on_output=on_output,
            on_remote=on_remote,
            on_sample=on_sample,
            reattach_id=reattach,
            priority=int(run.priority),
        )
        if remote:
            revealed = self.registry.vault.reveal_env(spec.env)
            job.spec = spec if revealed is None else spec.with_changes(env=revealed)
        handle.job = job
        return job

    def _shown(self, resolved: Launch, launch: Launch, spec: RunSpec, remote: bool) -> tuple[list[str], dict[str, str | None]]:
        """What the log's start record shows of a launch (`launch`: `resolved` with the run's
        markers): its argv and the variables that differ from ours (every one for a remote run),
        secret-looking values masked. The same resolved launch again (the per-spec cache) shows
        the same, so it is worked out once, not over ~40 variables for every run."""
        current = environ_snapshot()[0]  # a plain dict: no decoding per variable per run
        key = id(resolved)
        cached = self._shown_cache.get(key)
        if cached is None or cached[0] is not resolved or cached[1] is not current or remote:
            base = {k: v for k, v in resolved.env.items() if current.get(k) != v or remote}
            removed = {k: None for k in spec.env if spec.env[k] is None}
            cached = (resolved, current, masked_argv(launch.argv), masked_env(base), masked_env(removed))
            if not remote:
                if len(self._shown_cache) >= MODE_CACHE_SIZE * 16:
                    self._shown_cache.clear()
                self._shown_cache[key] = cached
        markers = {k: v for k, v in launch.env.items() if k not in resolved.env and (current.get(k) != v or remote)}
        return list(cached[2]), {**cached[3], **masked_env(markers), **cached[4]}

    def _ensure_reserve(self) -> None:
        """The space reserve made again when it was given back, or looked at every few seconds
        anyway (someone may remove it): not four stat() calls for every run."""
        now = time.monotonic()
        if self.reserve.released == self._reserve_seen and now - self._reserve_checked < RESERVE_RECHECK:
            return
        self._reserve_checked = now
        if self.reserve.ensure():
            self._reserve_seen = self.reserve.released

    def _end(self, handle: RunHandle, outcome: Outcome) -> None:
        try:
            outcome, extra = self._function_outcome(handle, outcome)
        except Exception as exc:  # noqa: BLE001 - reading a report must never lose the run's end
            log.exception("run %s: reading the function's result failed", handle.id)
            extra = {}
            outcome = Outcome(OutcomeKind.FAILED, outcome.exit_code, f"internal error reading the result: {exc}")
        job = handle.job
        lost = job.capture.log_error if job is not None else None
        if lost:  # the run's real outcome, plus what its log could not keep
            outcome = dataclasses.replace(outcome, message=f"{outcome.message}; {lost}" if outcome.message else lost)
        writer = job.capture.log if job is not None else None
        if (writer is not None and writer.held and writer.error is None and outcome.kind is OutcomeKind.SUCCEEDED
                and not handle.run.dry_run and writer.discard()):
            pass  # no output, and its end is the registry's: no file (readers: "no output")
        elif writer is not None:  # room is given back for it when the disk is full
            writer.last(self.reserve.release, event="end", outcome=outcome.kind.value,
                                 exit_code=outcome.exit_code, message=outcome.message)
            writer.close()
        if handle.run.status is RunStatus.QUEUED and outcome.kind not in (
            OutcomeKind.FAILED_TO_START,
            OutcomeKind.CANCELLED,
            OutcomeKind.INTERRUPTED,
        ):
            self._change(handle, RunStatus.RUNNING)  # a dry run "runs" instantly
        try:
            usage = self.monitor.unwatch(handle.id)
            fields = usage.run_fields() if usage is not None else {}
            acc = self._remote_usage.pop(handle.id, None)
            if acc is not None and acc[0]:
                fields = {"peak_cpu": acc[1], "mean_cpu": acc[2] / acc[0], "peak_rss": int(acc[3]),
                          "mean_rss": int(acc[4] / acc[0])}
            self._change(handle, RunStatus.DONE, outcome, batch=handle._batched, **fields, **extra)
        finally:
            self._finish(handle)  # whatever happened above, nobody waits for this run forever

    def _finish(self, handle: RunHandle) -> None:
        self.monitor.unwatch(handle.id)
        with self._lock:
            pending = handle.id in self._unsaved
            if pending:  # released once its last snapshot is stored
                handle._finish_deferred = True
            else:
                handle._finish_deferred = False
                handle._done = True
            # its process is over: its slot may be given back now unless the registry refused it
            ended = not pending or handle.id in self._in_batch
        if ended:
            self._ended(handle)
        if pending:
            return
        if handle._future is not None and not handle._future.done():
            handle._future.set_result(handle.run)
        self._live.pop(handle.id, None)

    @staticmethod
    def _ended(handle: RunHandle) -> None:
        callbacks, handle._ended_callbacks = handle._ended_callbacks, None
        for callback in callbacks or ():
            try:
                callback()
            except Exception:  # noqa: BLE001 - a caller's bookkeeping must not lose the run's end
                log.exception("run %s: an ended callback failed", handle.id)

    async def start(self, spec: RunSpec, *, mode: RunMode | str | None = None, **fields: Any) -> RunHandle:
        """Record the run, start it in the background, and return its handle at once."""
        handle = self.create(spec, mode=mode, **fields)
        self.launch(handle)
        return handle

    async def run(self, spec: RunSpec, *, mode: RunMode | str | None = None, **fields: Any) -> RunHandle:
        """Start and wait for the end; the handle carries outcome, exit code and output tail."""
        handle = await self.start(spec, mode=mode, **fields)
        await handle.wait()
        return handle

    async def _drive(self, handle: RunHandle, job: Job, mode: RunMode) -> None:
        try:
            while handle.id in self._uninserted and job.stop_outcome is None:
                await asyncio.sleep(0.02)  # never started before its row is stored (a locked registry)
            outcome = await self.executor.execute(job, mode)
        except asyncio.CancelledError:
            self._end(handle, Outcome(OutcomeKind.INTERRUPTED, None, "the engine shut down during the run"))
            raise
        except Exception as exc:  # noqa: BLE001 - never lose a run record to an engine bug
            log.exception("run %s: executor failed", handle.id)
            outcome = Outcome(OutcomeKind.FAILED_TO_START if handle.run.pid is None else OutcomeKind.FAILED,
                              None, f"internal error: {exc}")
        self._end(handle, outcome)

    def run_blocking(
        self, spec: RunSpec, *, mode: RunMode | str | None = RunMode.LOCAL, on_started: Callable[[RunHandle], None] | None = None,
        key: str | None = None,
    ) -> RunHandle:
        """LOCAL (or DRY_RUN) run on the calling thread, no event loop needed (`key`: a caller-chosen id)."""
        chosen = self.executor.mode_for_run(mode)
        if chosen not in (RunMode.LOCAL, RunMode.DRY_RUN):
            chosen = RunMode.LOCAL
        handle = self.create(spec, mode=chosen, key=check_run_key(key) if key is not None else None)
        launch = self._resolve(handle)
        if launch is None:
            return handle
        job = self._make_job(handle, launch)
        if on_started is not None:
            on_started(handle)
        try:
            if chosen is RunMode.DRY_RUN:
                outcome = Outcome(OutcomeKind.SUCCEEDED, None, "dry run: nothing was started")
            else:
                outcome = self.executor.execute_blocking(job)
        except Exception as exc:  # noqa: BLE001
            log.exception("run %s: executor failed", handle.id)
            outcome = Outcome(OutcomeKind.FAILED, None, f"internal error: {exc}")
        self._end(handle, outcome)
        return handle

    # -- control
    def cancel(self, run_id: int, graceful: bool = True) -> bool:
        handle = self._live.get(run_id)
        if handle is None or handle.done:
            return False
        if handle.job is None:
            self.finish_unstarted(handle, Outcome(OutcomeKind.CANCELLED, None, "cancelled while queued"))
            return True
        if handle.run.status is RunStatus.QUEUED and handle.job.tree is None:
            handle.job.request_stop(OutcomeKind.CANCELLED, "cancelled before it started")
            return True
        return handle.job.request_stop(OutcomeKind.CANCELLED, "cancelled by the user", graceful=graceful)

    def pause(self, run_id: int) -> bool:
        handle = self._live.get(run_id)
        if handle is None or handle.job is None or handle.run.status is not RunStatus.RUNNING:
            return False
        if handle.job.pause():
            self._change(handle, RunStatus.PAUSED)
            return True
        return False

    def resume(self, run_id: int) -> bool:
        handle = self._live.get(run_id)
        if handle is None or handle.job is None or handle.run.status is not RunStatus.PAUSED:
            return False
        if handle.job.resume():
            self._change(handle, RunStatus.RUNNING)
            return True
        return False

    async def shutdown(self, cancel_running: bool = True, timeout: float = 10.0) -> None:
        """Stop (or wait for) every live run, then close the registry."""
        if cancel_running:
            for handle in self.active():
                self.cancel(handle.id)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2)
        self.flush_created()
        if self._batch_pending:
            self._flush_batch()
        await self.wait_saved()
        self.monitor.stop()
        self.registry.close()

    async def __aenter__(self) -> RunEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    def close(self) -> None:
        """Close without a loop (scripts, the CLI's blocking paths): store what is pending first."""
        self.flush_created()
        if self._batch_timer is not None:  # a group commit still waiting: stored just below instead
            self._batch_timer.cancel()
            self._batch_timer = None
        self._batch_pending = False
        self._retry_blocking()
        self._batched.clear()
        self._in_batch.clear()
        self.monitor.stop()
        self.registry.close()


def function_files(log_path: str | None, run_id: int, home: os.PathLike[str] | str) -> tuple[str, str]:
    """(call file, result file) of a function run: beside its log, private like it."""
    base = log_path[:-4] if log_path and log_path.endswith(".log") else os.path.join(str(home), "logs", f"run-{run_id}")
    return base + ".call", base + ".result.json"


def _write_private(path: str, text: str) -> None:
    """A 0600 file the child reads at once and the engine removes (no fsync: it is never kept)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600) if hasattr(os, "fchmod") else None
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def _joined(first: str | None, second: str) -> str:
    return f"{first}; {second}" if first else second


_ENV_MODE_KEY = getattr(os.environ, "encodekey", lambda k: None)(ENV_MODE)


def _env_mode() -> str | None:
    """$PRISMQ_RUN_MODE as os.environ has it now: one lookup in its raw mapping (a miss through
    os.environ.get raises and catches a KeyError: a cost on every run's creation)."""
    data = getattr(os.environ, "_data", None)
    if data is None or _ENV_MODE_KEY is None:
        return os.environ.get(ENV_MODE)
    raw = data.get(_ENV_MODE_KEY)
    return None if raw is None else str(os.environ.decodevalue(raw))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
