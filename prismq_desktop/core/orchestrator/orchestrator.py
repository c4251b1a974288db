"""TaskOrchestrator: one queue, one concurrency limit, six patterns, one result type.

Every submission becomes a run in the registry at once (status queued) and waits in a
priority queue (CRITICAL first, FIFO within a priority) for a slot under the global
limit. Retries are new runs linked to the first attempt (`parent_id`) that wait until
their backoff is over; a chain whose retries run out lands on the dead-letter list.
`after=[ids]` holds a run until those chains succeed (else it ends `dependency_failed`);
`on_success=` / `on_failure=` submit follow-ups. All of it is plain asyncio: the GUI
drives the same object through qasync.

Memory stays flat however long it runs: a chain is kept only while it is pending; once it
has ended (result set, dependents released, callback called) it is forgotten, and the calls
that look a finished run up answer from the registry.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import logging
import os
import random
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from prismq_desktop.core.engine import RunEngine
from prismq_desktop.core.events import DeadLettered, Event, Notice, RetryScheduled, RunChanged
from prismq_desktop.core.models import Outcome, OutcomeKind, Run, RunMode, RunSpec, check_run_key
from prismq_desktop.core.orchestrator.chains import Chain, ResultCallback
from prismq_desktop.core.orchestrator.execute import PatternUnavailable, execute_pattern
from prismq_desktop.core.orchestrator.queue import Clock, RunQueue
from prismq_desktop.core.orchestrator.results import TaskMetrics, TaskResult, percentile, tail_from_log
from prismq_desktop.core.orchestrator.retry import RetryPolicy
from prismq_desktop.core.orchestrator.specs import TaskTarget, as_spec, make_spec, with_parent_result
from prismq_desktop.core.patterns import Priority, TaskPattern
from prismq_desktop.core.pool import ResourcePool
from prismq_desktop.core.process.executor import Job
from prismq_desktop.core.process.logfile import LogWriter, Stream
from prismq_desktop.core.remote.config import check_broker_url
from prismq_desktop.core.schedule.scheduler import Scheduler
from prismq_desktop.core.store.passing import until_stored
from prismq_desktop.core.store.registry import DeadLetter
from prismq_desktop.core.store.runs import RunRef

if TYPE_CHECKING:  # imported when a broker is set: not on every start-up of the window (issue 17)
    from prismq_desktop.core.remote.executor import RemoteExecutor
    from prismq_desktop.core.remote.locks import DistributedLocks

log = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENT = max(2, os.cpu_count() or 2)
CALLBACK_ERRORS_KEPT = 100

__all__ = ["DEFAULT_MAX_CONCURRENT", "PatternUnavailable", "RetryPolicy", "TaskMetrics", "TaskOrchestrator", "TaskResult"]


class TaskOrchestrator:
    """Owns the registry (through a RunEngine), the run queue and the concurrency limit."""

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        mode: RunMode | str = RunMode.AUTO,
        backlog_warning: int = 1000,
        engine: RunEngine | None = None,
        pool_size: int = 2,
        clock: Clock | None = None,
        broker: str | None = None,
        lock_ttl: float | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        # The warm worker pool (pattern 6) is the engine's executor; only POOLED runs use it,
        # everything else spawns normally. Its fork servers start with the first pooled run.
        # With a broker, a RemoteExecutor in front sends `where="remote:QUEUE"` runs to Celery
        # workers, and idempotency keys and schedule fires are also claimed on its Redis.
        self.pool: ResourcePool | None = None
        self.remote: RemoteExecutor | None = None
        self.locks: DistributedLocks | None = None
        if broker:
            check_broker_url(broker)
        if engine is None:
            self.pool = ResourcePool(size=pool_size, mode=mode, accept=self._pooled)
            executor: Any = self.pool
            if broker:
                from prismq_desktop.core.remote.executor import RemoteExecutor

                executor = self.remote = RemoteExecutor(broker, fallback=self.pool)
            engine = RunEngine(home, mode=mode, executor=executor)
        elif (remote := sys.modules.get("prismq_desktop.core.remote.executor")) is not None and isinstance(
                engine.executor, remote.RemoteExecutor):  # never imported: it cannot be one
            self.remote = engine.executor
        if self.remote is not None and self.remote.home is None:
            self.remote.home = str(engine.home)  # where remote.key is looked for
        if broker:
            from prismq_desktop.core.remote.locks import DistributedLocks

            self.locks = DistributedLocks(broker, **({"ttl": lock_ttl} if lock_ttl else {}))
        self._held: dict[str, str] = {}  # idempotency key -> our token on the broker, while its chain is pending
        self._refresher: asyncio.Task[None] | None = None
        self.engine = engine
        self.registry = self.engine.registry
        self.bus = self.engine.bus
        self.backlog_warning = backlog_warning
        self._backlog_warned = False
        self.queue: RunQueue[Chain] = RunQueue(self._start, limit=max_concurrent, clock=clock,
                                                on_release=self._released)
        self._chains: dict[int, Chain] = {}  # any attempt's run id -> its chain, while it is pending
        self._policies: dict[tuple[Any, ...], tuple[RetryPolicy, dict[str, Any]]] = {}
        self._dependents: dict[int, list[Chain]] = collections.defaultdict(list)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.rng = random.Random()
        #: (run id, traceback) of the newest result callbacks that raised (each is also logged,
        #: written to the run's log and announced as a Notice)
        self.callback_errors: collections.deque[tuple[int, str]] = collections.deque(maxlen=CALLBACK_ERRORS_KEPT)
        self._scheduler: Scheduler | None = None

    def _pooled(self, job: Job) -> bool:
        # the POOLED pattern, or a spec that says where="pool" (the window's "Warm pool" choice)
        handle = self.engine.handle(job.run_id)
        return handle is not None and (handle.run.pattern is TaskPattern.POOLED or handle.run.spec.where == "pool")

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> TaskOrchestrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, cancel_running: bool = True) -> None:
        """Cancel what is queued and running, wait for the trees to go, close the registry."""
        if self._scheduler is not None:
            await self._scheduler.stop()
        if cancel_running:
            self.cancel_all()
            # let the cancelled chains finish (callbacks called once, futures resolved) first
            pending = {t for t in self._tasks if not t.done()}
            if pending:
                await asyncio.wait(pending, timeout=10)
        await self.engine.shutdown(cancel_running=cancel_running)
        if self.pool is not None:
            await self.pool.close()
        if self._refresher is not None:
            self._refresher.cancel()
        if self.locks is not None:
            for key, token in list(self._held.items()):
                self._release_key(key, token)
            self.locks.close()
        if self.remote is not None:
            self.remote.close()
        pending = {t for t in self._tasks if not t.done()}
        if pending:
            await asyncio.wait(pending, timeout=10)
        for task in list(self._tasks):
            task.cancel()

    # ------------------------------------------------------------------ limits
    @property
    def max_concurrent(self) -> int:
        return self.queue.limit

    def set_max_concurrent(self, limit: int) -> None:
        """Raising the limit starts queued runs at once; lowering it never stops running ones."""
        self.queue.set_limit(limit)
        self._check_backlog()

    def pause_queue(self) -> None:
        """Stop starting queued runs (running ones go on)."""
        self.queue.pause()

    def resume_queue(self) -> None:
        self.queue.resume()

    @property
    def queue_length(self) -> int:
        return self.queue.waiting_count

    @property
    def running_count(self) -> int:
        return self.queue.running_count

    def queued_runs(self) -> list[Run]:
        """Queued and waiting runs (snapshots), in the order they would start."""
        return [chain.current.run for _, chain in self.queue.waiting()]

    # ------------------------------------------------------------------ submitting
    def delay(
        self,
        script: TaskTarget,
        args: Iterable[str] | str | None = None,
        *,
        callback: ResultCallback | None = None,
        priority: Priority | str | int = Priority.NORMAL,
        max_retries: int = 0,
        retry_on: Iterable[str | int] = ("failed", "timed_out"),
        backoff_base: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_cap: float = 60.0,
        jitter: float = 0.25,
        on_success: TaskTarget | None = None,
        on_failure: TaskTarget | None = None,
        after: Iterable[int] = (),
        idempotency_key: str | None = None,
        idempotency_window: float | None = None,
        mode: RunMode | str | None = None,
        pattern: TaskPattern | str = TaskPattern.FIRE_AND_FORGET,
        schedule_id: int | None = None,
        trigger: str | None = None,
        follow_up_of: int | None = None,
        requeue_of: int | None = None,
        run_key: str | None = None,
        **spec_options: Any,
    ) -> int:
        """Queue a run and return its id at once. `callback(result)` is called exactly once at the end.

        A plain method (not a coroutine) that must be called with the event loop running; the
        run is stored before the loop's next turn and announced only after that. `run_key` is a
        caller-chosen id (`check_run_key`; InvalidRunKey, or RunKeyTaken when another run has it)
        that every call taking an id accepts in place of the number.
        """
        asyncio.get_running_loop()  # raises first: nothing is recorded without a loop to run it
        if run_key is not None:
            check_run_key(run_key)
        spec = make_spec(script, args, spec_options)
        if spec_options:
            raise TypeError(f"unknown option(s): {', '.join(sorted(spec_options))}")
        token: str | None = None
        if idempotency_key:
            self.engine.flush_created()  # runs submitted earlier in this loop turn count too
            existing = self.registry.find_idempotent(idempotency_key, idempotency_window)
            if existing is None and self.engine.unsaved:  # a pending one whose row a locked registry refused
                existing = next((c.current.run for c in self._chains.values()
                                 if c.idempotency_key == idempotency_key and not c.future.done()), None)
            if existing is None and self.locks is not None:
                token, existing, foreign = self._claim_key(idempotency_key)
                if foreign is not None:
                    return self.engine.record_unstarted(spec, Outcome(OutcomeKind.SKIPPED, None, foreign),
                                                        idempotency_key=None, trigger=trigger,
                                                        schedule_id=schedule_id).id
            if existing is not None:
                chain = self._chains.get(existing.id)
                first_id = chain.first_id if chain else _first_id(existing)
                if callback is not None:
                    if chain is not None:
                        chain.future.add_done_callback(lambda fut: self._spawn(self._call_back(callback, fut.result())))
                    else:
                        self._spawn(self._call_back(callback, self._stored_result(first_id) or
                                                    self._result_from_run(existing, first_id)))
                return first_id
        policy, policy_dict = self._policy(max_retries, backoff_base, backoff_factor, backoff_cap, jitter,
                                           tuple(retry_on))
        prio = Priority.parse(priority)
        pat = TaskPattern.parse(pattern)
        options: dict[str, Any] = {"retry": dict(policy_dict)}
        if follow_up_of is not None:
            options["follow_up_of"] = int(follow_up_of)  # so a result read back from the registry names it
        if requeue_of is not None:  # the dead letter is marked in the transaction that stores the run
            options["requeue_of"] = int(requeue_of)
        follow = {"on_success": as_spec(on_success), "on_failure": as_spec(on_failure)}
        for key, value in follow.items():
            if value is not None:
                options[key] = value.to_dict()
        deps = tuple(self.resolve(d) for d in after)
        handle = self.engine.create(spec, mode=mode, priority=int(prio), pattern=pat.value,
                                    idempotency_key=idempotency_key, depends_on=deps, options=options,
                                    schedule_id=schedule_id, trigger=trigger, key=run_key)
        loop = asyncio.get_running_loop()
        chain = Chain(
            first_id=handle.id, spec=spec, policy=policy, pattern=pat, priority=prio, mode=mode, callback=callback,
            on_success=follow["on_success"], on_failure=follow["on_failure"], idempotency_key=idempotency_key,
            future=loop.create_future(), current=handle, depends_on=deps, run_ids=[handle.id],
        )
        self._chains[handle.id] = chain
        if token is not None and idempotency_key:
            self._hold_key(idempotency_key, token, handle.id)
        if handle.done:  # e.g. a dry run that could not even be recorded as started
            self._spawn(self._after_run(chain))
            return handle.id
        self._enqueue(chain)
        self._check_backlog()
        return handle.id

    def _policy(self, *args: Any) -> tuple[RetryPolicy, dict[str, Any]]:
        """The retry policy (and its stored form) for these arguments: made once per set of them
        (a policy is immutable; a burst of delay() calls shares it)."""
        found = self._policies.get(args)
        if found is None:
            policy = RetryPolicy(*args)
            if len(self._policies) >= 64:
                self._policies.clear()
            found = self._policies[args] = (policy, policy.to_dict())
        return found

    # ------------------------------------------------------------------ idempotency across machines
    def _claim_key(self, key: str) -> tuple[str | None, Run | None, str | None]:
        """(our token, None, None) when this process now holds `key` on the broker; (None, the
        holder's run, None) when the holder's run is in our registry; (None, None, why) when it
        is another data dir's. A broker that cannot be reached: (None, None, None), local only."""
        assert self.locks is not None
        try:
            token, holder = self.locks.acquire(key, {"registry": str(self.registry.path), "pid": os.getpid()})
        except Exception as exc:  # noqa: BLE001 - one line; the local check still holds
            log.warning("idempotency key %r not claimed on the broker: %s", key, exc)
            return None, None, None
        if token is not None:
            return token, None, None
        run_id = holder.get("run_id")
        if holder.get("registry") == str(self.registry.path):
            deadline = time.monotonic() + 2.0  # its row is stored within the holder's loop turn
            while True:
                found = self.registry.find_idempotent(key, None)
                if found is not None or time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
            if found is not None:
                return None, found, None
        where = f"run #{run_id}" if run_id else "a submission"
        return None, None, (f"idempotency key {key!r} is held by {where} on {holder.get('host', '?')} "
                            f"(pid {holder.get('pid', '?')}); not run twice")

    def _hold_key(self, key: str, token: str, run_id: int) -> None:
        assert self.locks is not None
        self._held[key] = token
        try:
            self.locks.update(key, token, {"registry": str(self.registry.path), "pid": os.getpid(), "run_id": run_id})
        except Exception as exc:  # noqa: BLE001
            log.warning("idempotency key %r: %s", key, exc)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_keys(), name="prismq-idem-refresh")

    def _release_key(self, key: str, token: str) -> None:
        assert self.locks is not None
        self._held.pop(key, None)
        try:
            self.locks.release(key, token)
        except Exception as exc:  # noqa: BLE001 - it expires by itself
            log.warning("idempotency key %r not released (it expires by itself): %s", key, exc)

    async def _refresh_keys(self) -> None:
        """Keep our keys alive while their chains are pending; a dead process's keys expire."""
        assert self.locks is not None
        while self._held:
            await asyncio.sleep(self.locks.ttl / 3)
            for key, token in list(self._held.items()):
                try:
                    await asyncio.to_thread(self.locks.refresh, key, token)
                except Exception as exc:  # noqa: BLE001
                    log.warning("idempotency key %r not refreshed: %s", key, exc)

    def _enqueue(self, chain: Chain) -> None:
        run_id = chain.current.id
        failed = self._failed_dependency(chain.depends_on)
        if failed is not None:
            self._end_unstarted(chain, Outcome(OutcomeKind.DEPENDENCY_FAILED, None, failed))
            return
        unmet = [d for d in chain.depends_on if not self._dependency_settled(d)]
        if unmet:
            for dep in unmet:
                self._dependents[self._chain_root(dep)].append(chain)
        self.queue.push(run_id, chain, int(chain.priority), hold_until=chain.current.run.not_before, blocked=bool(unmet))

    def _released(self, run_id: int, chain: Chain) -> None:
        """A retry's wait is over: the run is an ordinary queued run again."""
        self.engine.amend(run_id, hold_until=None)

    def _chain_root(self, run_id: int) -> int:
        chain = self._chains.get(run_id)
        return chain.first_id if chain else run_id

    def _dependency_settled(self, run_id: int) -> bool:
        chain = self._chains.get(run_id)
        if chain is not None:
            return chain.future.done()
        run = self._final_attempt(run_id)
        return run is None or not run.is_active

    def _failed_dependency(self, deps: Sequence[int]) -> str | None:
        for dep in deps:
            chain = self._chains.get(dep)
            if chain is not None:
                if not chain.future.done():
                    continue
                result = chain.future.result()
                if not result.ok:
                    what = result.outcome.describe() if result.outcome else "did not finish"
                    return f"run #{dep} it depends on {what}"
                continue
            run = self._final_attempt(dep)  # an ended chain: how its last attempt ended
            if run is None:
                return f"run #{dep} it depends on does not exist"
            if not run.is_active and (run.outcome is None or run.outcome.kind is not OutcomeKind.SUCCEEDED):
                return f"run #{dep} it depends on {run.outcome.describe() if run.outcome else 'did not finish'}"
        return None

    def _check_backlog(self) -> None:
        backlog = self.queue_length
        if backlog > self.backlog_warning and not self._backlog_warned:
            self._backlog_warned = True
            self.bus.publish(Notice(None, f"backlog: {backlog} runs are waiting (warning threshold {self.backlog_warning})",
                                    "warning", {"queued": backlog, "threshold": self.backlog_warning}))
        elif backlog <= self.backlog_warning // 2:
            self._backlog_warned = False

    # ------------------------------------------------------------------ dispatching
    def _start(self, run_id: int, chain: Chain) -> None:
        """The queue gave this run a slot."""
        if chain.current.done:
            self.queue.finished(run_id)
            return
        handle = chain.current
        self.engine.launch(handle)
        # no task per run waiting for its end: its slot is given back once its process has
        # ended (the registry's group commit need not hold the next run back), and what
        # follows it (retry, dead letter, follow-up, result, dependents) once its end is stored
        if handle.when_ended(functools.partial(self._freed, handle.id)):
            handle.when_done(functools.partial(self._ran, chain))
        else:
            self._spawn(self._watch(chain))

    def _freed(self, run_id: int) -> None:
        """The run's process has ended: its slot is free (the next one starts)."""
        self.queue.finished(run_id)
        self._check_backlog()

    def _ran(self, chain: Chain) -> None:
        """The run's end is stored and announced: what follows it (here when nothing follows
        that writes the registry or calls back: no task per run for the common end)."""
        if not self._after_run_now(chain):
            self._spawn(self._after_run(chain))

    def _after_run_now(self, chain: Chain) -> bool:
        """`_after_run` for an end with nothing to retry, dead-letter, follow or call back; False
        (nothing done) for any other end."""
        if not chain.current.done:
            return False
        run = chain.current.run
        if chain.future.done() and chain.first_id not in self._chains:
            return True  # already ended and forgotten
        outcome = run.outcome
        if outcome is None or chain.callback is not None:
            return False
        if outcome.kind is not OutcomeKind.SUCCEEDED and chain.policy.max_retries > 0 and chain.policy.matches(outcome):
            return False
        follow = chain.on_success if outcome.kind is OutcomeKind.SUCCEEDED else chain.on_failure
        if follow is not None and outcome.kind is not OutcomeKind.CANCELLED:
            return False
        try:
            self._settle(chain)
        finally:
            self._forget(chain)
        return True

    def _settle(self, chain: Chain) -> TaskResult:
        """The chain's result is final: set it, and release or fail the runs that waited for it."""
        result = self._result(chain)
        if chain.idempotency_key and chain.idempotency_key in self._held:
            self._release_key(chain.idempotency_key, self._held[chain.idempotency_key])
        if not chain.future.done():
            chain.future.set_result(result)
        for waiting in self._dependents.pop(chain.first_id, []):
            if self.queue.remove(waiting.current.id) is not None and not waiting.current.done:
                self._enqueue(waiting)
        return result

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, chain: Chain) -> None:
        handle = chain.current
        try:
            await handle.wait()
        finally:
            self.queue.finished(handle.id)
            self._check_backlog()
        await self._after_run(chain)

    def _end_unstarted(self, chain: Chain, outcome: Outcome) -> None:
        self.engine.finish_unstarted(chain.current, outcome)
        self._spawn(self._after_run(chain))

    async def _after_run(self, chain: Chain) -> None:
        if not chain.current.done:  # it ended, but its end is not stored yet (a locked registry)
            await chain.current.wait()
        run = chain.current.run
        if chain.future.done() and chain.first_id not in self._chains:
            return  # already ended and forgotten
        outcome = run.outcome
        assert outcome is not None
        retryable = outcome.kind is not OutcomeKind.SUCCEEDED and chain.policy.matches(outcome)
        # what follows writes the registry: a locked one (or a full disk) is waited out, never skipped
        if retryable and chain.attempt <= chain.policy.max_retries:
            await until_stored(lambda: self._schedule_retry(chain), f"the retry of run #{run.id}")
            return
        if retryable and chain.policy.max_retries > 0:
            reason = f"gave up after {chain.attempt} attempts: {outcome.describe()}"
            dl_id = await until_stored(lambda: self.registry.add_dead_letter(run, chain.first_id, chain.attempt, reason),
                                       f"the dead letter of run #{run.id}")
            self.bus.publish(DeadLettered(run.id, dl_id, reason))  # announced once stored
        follow = chain.on_success if outcome.kind is OutcomeKind.SUCCEEDED else chain.on_failure
        if follow is not None and outcome.kind is not OutcomeKind.CANCELLED:
            if outcome.kind is OutcomeKind.SUCCEEDED and run.result:
                follow = self._handed_result(follow, run)
            handed = follow
            follow_id = await until_stored(
                lambda: self.delay(handed, priority=chain.priority, mode=chain.mode,
                                   pattern=TaskPattern.FIRE_AND_FORGET, follow_up_of=chain.first_id),
                f"the follow-up of run #{run.id}")
            chain.follow_ups.append(follow_id)
        try:
            result = self._settle(chain)
            if chain.callback is not None:
                await self._call_back(chain.callback, result)
        finally:
            self._forget(chain)

    def _handed_result(self, follow: RunSpec, run: Run) -> RunSpec:
        """`follow` given the parent function's return value (see specs.with_parent_result)."""
        base = run.log_path[:-4] if run.log_path and run.log_path.endswith(".log") else str(
            self.engine.home / "logs" / f"run-{run.id}")
        try:
            return with_parent_result(follow, run.result, base + ".parent-result.json", run.spec.serializer.value)
        except (OSError, ValueError, TypeError) as exc:  # the follow-up still runs, told nothing
            log.warning("run %s: its result could not be handed to the follow-up: %s", run.id, exc)
            self.bus.publish(Notice(run.id, f"the result could not be handed to the follow-up: {exc}", "warning", {}))
            return follow

    def _forget(self, chain: Chain) -> None:
        """The chain has ended: drop everything kept for it (the registry answers from now on)."""
        for run_id in chain.run_ids:
            if self._chains.get(run_id) is chain:
                del self._chains[run_id]
        for dep in chain.depends_on:  # it may have ended while still waiting for them (cancelled)
            root = self._chain_root(dep)
            waiting = self._dependents.get(root)
            if waiting is not None:
                waiting[:] = [c for c in waiting if c is not chain]
                if not waiting:
                    del self._dependents[root]
        chain.callback = None

    def _schedule_retry(self, chain: Chain) -> None:
        wait = chain.policy.backoff(chain.attempt, self.rng)
        previous = chain.current
        at = self.queue.clock.time() + wait
        handle = self.engine.create(
            chain.spec, mode=chain.mode, priority=int(chain.priority), pattern=chain.pattern.value,
            attempt=chain.attempt + 1, parent_id=chain.first_id, not_before=at,
            idempotency_key=chain.idempotency_key, options=previous.run.options,
            schedule_id=previous.run.schedule_id, trigger=previous.run.trigger,
        )
        chain.attempt += 1
        chain.current = handle
        chain.run_ids.append(handle.id)
        self._chains[handle.id] = chain
        self.bus.publish(RetryScheduled(previous.id, handle.id, chain.attempt, at))
        self._enqueue(chain)

    async def _call_back(self, callback: ResultCallback, result: TaskResult) -> None:
        """Call a result callback; an exception is logged, written to the run's log and announced."""
        try:
            outcome = callback(result)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:  # noqa: BLE001 - recorded below, never swallowed silently
            tb = traceback.format_exc()
            log.error("callback for run %s raised:\n%s", result.run_id, tb)
            self.callback_errors.append((result.run_id or 0, tb))
            path = result.run.log_path if result.run else None
            if path:
                writer = LogWriter(path)
                writer.meta(event="callback_error", error=repr(exc), traceback=tb)
                writer.close()
            self.bus.publish(Notice(result.run_id, f"the result callback raised {exc!r}", "error", {"traceback": tb}))

    # ------------------------------------------------------------------ results
    def _result(self, chain: Chain) -> TaskResult:
        handle = chain.current
        return TaskResult(
            run_id=chain.first_id,
            pattern=chain.pattern,
            stdout=handle.stdout(),
            stderr=handle.stderr(),
            run=handle.run,  # one snapshot: status, outcome and run always agree
            attempts=chain.attempt,
            follow_up_ids=tuple(chain.follow_ups),
        )

    def _result_from_run(self, run: Run, first_id: int | None = None) -> TaskResult:
        """A result from a stored snapshot (`run` is the chain's newest attempt, `first_id` its first)."""
        first = _first_id(run) if first_id is None else first_id
        if run.is_active:
            return TaskResult(first, run.pattern, run=run, attempts=run.attempt)
        return TaskResult(
            first, run.pattern,
            stdout=tail_from_log(run.log_path, Stream.STDOUT), stderr=tail_from_log(run.log_path, Stream.STDERR),
            run=run, attempts=run.attempt, follow_up_ids=self._stored_follow_ups(first),
        )

    def _final_attempt(self, run_id: int) -> Run | None:
        """The newest attempt of the chain that run `run_id` (any attempt of it) belongs to, from the registry."""
        run = self.engine.get(run_id)
        if run is None:
            return None
        return self.registry.latest_attempt(_first_id(run)) or run

    def _stored_follow_ups(self, first_id: int) -> tuple[int, ...]:
        first = self.registry.get(first_id)
        if first is None or not (first.options.get("on_success") or first.options.get("on_failure")):
            return ()
        return tuple(self.registry.follow_ups(first_id))

    def _stored_result(self, run_id: int) -> TaskResult | None:
        """status() of a chain that is not pending here (ended, or of another process); None if unknown."""
        run = self._final_attempt(run_id)
        return None if run is None else self._result_from_run(run)

    def get_result(self, run_id: RunRef) -> TaskResult | None:
        """The final result, or None while the run (or a retry of it) is pending."""
        run_id = self.resolve(run_id)
        chain = self._chains.get(run_id)
        if chain is not None:
            return chain.future.result() if chain.future.done() else None
        result = self._stored_result(run_id)
        if result is None:
            raise KeyError(f"no run #{run_id}")
        return None if result.run is not None and result.run.is_active else result

    def status(self, run_id: RunRef) -> TaskResult:
        """Where a run is now, finished or not (also for runs of an earlier session)."""
        run_id = self.resolve(run_id)
        chain = self._chains.get(run_id)
        if chain is not None:
            return chain.future.result() if chain.future.done() else self._result(chain)
        result = self._stored_result(run_id)
        if result is None:
            raise KeyError(f"no run #{run_id}")
        return result

    async def wait(self, run_id: RunRef, timeout: float | None = None) -> TaskResult:
        run_id = self.resolve(run_id)
        chain = self._chains.get(run_id)
        if chain is not None:
            return await asyncio.wait_for(asyncio.shield(chain.future), timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:  # a run of another process: poll the registry
            result = self.get_result(run_id)
            if result is not None:
                return result
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run #{run_id} still pending after {timeout}s")
            await asyncio.sleep(0.2)

    async def submit(self, script: TaskTarget, args: Iterable[str] | str | None = None,
                     **options: Any) -> TaskResult:
        """Queue a run and wait for its final result (after any retries)."""
        options.setdefault("pattern", TaskPattern.SIMPLE)
        run_id = self.delay(script, args, **options)
        try:
            return await self.wait(run_id)
        except asyncio.CancelledError:
            self.cancel(run_id)
            raise

    # ------------------------------------------------------------------ ids
    def resolve(self, ref: RunRef) -> int:
        """The numeric id of a run named by its id (12, "12", "#12") or its caller-chosen id.

        RunNotFound (a KeyError) when no run has it; a number is returned as it is."""
        if isinstance(ref, int) and not isinstance(ref, bool):
            return ref
        return self.registry.resolve(ref)

    def run_key(self, run_id: RunRef) -> str | None:
        """The caller-chosen id of a run (None when it was given none)."""
        run = self.engine.get(self.resolve(run_id))
        return run.key if run is not None else None

    # ------------------------------------------------------------------ control
    def cancel(self, run_id: RunRef) -> bool:
        """Cancel a run whether it is queued, running or waiting for a retry."""
        run_id = self.resolve(run_id)
        chain = self._chains.get(run_id)
        if chain is None:
            return self.engine.cancel(run_id)
        if chain.future.done():
            return False
        current = chain.current.id
        if self.queue.remove(current) is not None:
            why = "cancelled while waiting to retry" if chain.attempt > 1 else "cancelled while queued"
            self._end_unstarted(chain, Outcome(OutcomeKind.CANCELLED, None, why))
            return True
        return self.engine.cancel(current)

    def cancel_all(self) -> int:
        """Cancel everything: queued runs in one transaction, running ones through their trees."""
        chains = list({id(c): c for c in self._chains.values() if not c.future.done()}.values())
        waiting = [c for c in chains if self.queue.remove(c.current.id) is not None]
        self.engine.finish_unstarted_many([c.current for c in waiting],
                                          Outcome(OutcomeKind.CANCELLED, None, "cancelled while queued (cancel all)"))
        for chain in waiting:
            self._spawn(self._after_run(chain))
        count = len(waiting)
        waiting_ids = {id(c) for c in waiting}
        for chain in chains:
            if id(chain) not in waiting_ids:
                count += bool(self.cancel(chain.first_id))
        return count

    def pause(self, run_id: RunRef) -> bool:
        run_id = self.resolve(run_id)
        chain = self._chains.get(run_id)
        return self.engine.pause(chain.current.id if chain else run_id)

    def resume(self, run_id: RunRef) -> bool:
        run_id = self.resolve(run_id)
        chain = self._chains.get(run_id)
        return self.engine.resume(chain.current.id if chain else run_id)

    def reprioritize(self, run_id: RunRef, priority: Priority | str | int) -> bool:
        """Move a queued run within the queue (it goes behind runs already waiting at that priority)."""
        run_id = self.resolve(run_id)
        chain = self._chains.get(run_id)
        if chain is None or chain.future.done():
            return False
        prio = Priority.parse(priority)
        if not self.engine.amend(chain.current.id, priority=prio):  # stored and announced by the engine
            return False
        chain.priority = prio
        self.queue.reprioritize(chain.current.id, int(prio))
        return True

    # ------------------------------------------------------------------ dead letters
    def dead_letters(self) -> list[DeadLetter]:
        return self.registry.dead_letters()

    def requeue_dead_letter(self, dead_letter_id: int, **overrides: Any) -> int:
        """Start a fresh chain (same spec and retry policy) for a dead letter; returns the new run id."""
        entry = self.registry.dead_letter(dead_letter_id)
        if entry is None:
            raise KeyError(f"no dead letter #{dead_letter_id}")
        if entry.requeued_run_id is not None:
            raise ValueError(f"dead letter #{dead_letter_id} was already requeued as run #{entry.requeued_run_id}")
        for chain in self._chains.values():  # requeued here, its run not stored yet (a locked registry)
            if chain.current.run.options.get("requeue_of") == dead_letter_id:
                raise ValueError(f"dead letter #{dead_letter_id} was already requeued as run #{chain.first_id}")
        policy = RetryPolicy.from_dict(entry.options.get("retry", {}))
        options: dict[str, Any] = {
            "max_retries": policy.max_retries, "retry_on": policy.retry_on, "backoff_base": policy.base,
            "backoff_factor": policy.factor, "backoff_cap": policy.cap, "jitter": policy.jitter,
        }
        options.update(overrides)
        # one transaction stores the run and marks the dead letter: neither is ever written
        # without the other (a locked registry refuses both, or keeps both for later)
        return self.delay(entry.spec, requeue_of=dead_letter_id, **options)

    def purge_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        return self.registry.purge_dead_letters(ids)

    # ------------------------------------------------------------------ metrics
    def metrics(self, name: str) -> TaskMetrics:
        rows = self.registry.durations(name)
        durations = sorted(d for outcome, d in rows if d is not None and outcome == OutcomeKind.SUCCEEDED.value)
        count = len(rows)
        succeeded = sum(1 for outcome, _ in rows if outcome == OutcomeKind.SUCCEEDED.value)
        queued = sum(1 for _, c in self.queue.waiting() if c.current.run.name == name)
        running = sum(1 for _, c in self.queue.running() if c.current.run.name == name)
        return TaskMetrics(name, count, succeeded, succeeded / count if count else None,
                           percentile(durations, 50), percentile(durations, 95), queued, running)

    # ------------------------------------------------------------------ events
    async def events(self, run_id: RunRef) -> AsyncIterator[Event]:
        """Every event of one run (all attempts), ending after its final result.

        Subscribe before the run can produce anything you want to see (e.g. right after
        delay(), in the same loop turn); output a slow consumer misses arrives as a marker
        batch with dropped_bytes, as for any subscriber.
        """
        run_id = self.resolve(run_id)
        chain = self._chains.get(run_id)
        if chain is None:
            stored = self._final_attempt(run_id)
            if stored is not None and not stored.is_active:
                return  # it has ended: nothing more will come
        sub = self.bus.subscribe()

        def mine(ev: Event) -> bool:
            rid = _event_run_id(ev)
            if chain is None:
                return rid == run_id
            return rid is not None and rid in chain.run_ids  # the chain may be forgotten meanwhile

        try:
            while True:
                ev = sub.get_nowait()
                if ev is None:
                    if chain is not None and chain.future.done():
                        return  # everything published before the final result has been seen
                    getter = asyncio.ensure_future(sub.get())
                    waiters: set[asyncio.Future[Any]] = {getter}
                    if chain is not None:
                        waiters.add(chain.future)
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                            await getter
                        continue
                    try:
                        ev = getter.result()
                    except StopAsyncIteration:
                        return
                if mine(ev):
                    yield ev
        finally:
            sub.close()

    # ------------------------------------------------------------------ the pattern API
    async def execute(
        self,
        script: TaskTarget,
        args: Iterable[str] | str | None = None,
        pattern: TaskPattern | str | None = None,
        **options: Any,
    ) -> TaskResult:
        """One entry point for all six patterns (auto-selected from the options when not given)."""
        return await execute_pattern(self, script, args, pattern, options)

    @property
    def scheduler(self) -> Scheduler:
        """The periodic scheduler sharing this orchestrator's queue (created on first use, not started)."""
        if self._scheduler is None:
            self._scheduler = Scheduler(self, fire_claim=self.locks.claim_fire if self.locks is not None else None)
        return self._scheduler

    # -- what the scheduler needs (schedule/ports.py SchedulerHost)
    def record_unstarted(self, spec: RunSpec, outcome: Outcome, *, schedule_id: int, trigger: str) -> int:
        """Store a run that never starts (a skipped or missed fire) as DONE with `outcome`; its id."""
        return self.engine.record_unstarted(spec, outcome, pattern=TaskPattern.PERIODIC, schedule_id=schedule_id,
                                            trigger=trigger).id

    def owns(self, run_id: int) -> bool:
        """The run is live in this process."""
        return self.engine.handle(run_id) is not None


def _first_id(run: Run) -> int:
    """The id a chain is known by: its first attempt's."""
    return run.parent_id if run.parent_id is not None else run.id


def _event_run_id(ev: Event) -> int | None:
    if isinstance(ev, RunChanged):
        return ev.run.id
    return getattr(ev, "run_id", None)
