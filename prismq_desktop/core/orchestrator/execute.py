"""The six-pattern API (`TaskOrchestrator.execute`): each pattern in terms of submit/wait/cancel.

It only needs what `Orchestration` lists, so a pattern is written against the public
operations of the orchestrator, not its internals.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol

from prismq_desktop.core.events import Event, OutputBatch, Progress
from prismq_desktop.core.functions.targets import is_function
from prismq_desktop.core.models import Outcome, OutcomeKind, RunSpec, RunStatus, TargetKind
from prismq_desktop.core.orchestrator.results import TaskResult, batch_result
from prismq_desktop.core.orchestrator.specs import TaskTarget, make_spec
from prismq_desktop.core.patterns import PatternAdvisor, TaskPattern
from prismq_desktop.core.pool import ResourcePool
from prismq_desktop.core.schedule.scheduler import Scheduler, make_trigger


class PatternUnavailable(RuntimeError):
    """A pattern the API accepts but whose machinery is not part of this build yet."""


class Orchestration(Protocol):
    """The orchestrator operations the patterns are built from."""

    @property
    def pool(self) -> ResourcePool | None: ...

    @property
    def max_concurrent(self) -> int: ...

    @property
    def scheduler(self) -> Scheduler: ...

    def delay(self, script: TaskTarget, args: Iterable[str] | str | None = None,
              **options: Any) -> int: ...

    def status(self, run_id: int) -> TaskResult: ...

    async def wait(self, run_id: int, timeout: float | None = None) -> TaskResult: ...

    def cancel(self, run_id: int) -> bool: ...

    def events(self, run_id: int) -> AsyncIterator[Event]: ...


async def execute_pattern(orch: Orchestration, script: TaskTarget,
                          args: Iterable[str] | str | None, pattern: TaskPattern | str | None,
                          options: dict[str, Any]) -> TaskResult:
    """One entry point for all six patterns (auto-selected from the options when not given)."""
    chosen = TaskPattern.parse(pattern) if pattern is not None else PatternAdvisor.select(options)
    for key in ("streaming", "wait_for_result", "use_pool", "concurrent_tasks"):
        options.pop(key, None)
    if chosen is TaskPattern.PERIODIC:
        return execute_periodic(orch, script, args, options)
    if chosen is TaskPattern.POOLED and orch.pool is None:
        raise PatternUnavailable("POOLED needs the warm worker pool, and this orchestrator was given its own engine "
                                 "without one; nothing was run")
    if chosen is TaskPattern.CONCURRENT:
        return await execute_batch(orch, script, args, options)
    on_event = options.pop("on_event", None)
    on_output = options.pop("on_output", None)
    on_progress = options.pop("on_progress", None)
    on_start = options.pop("on_start", None)
    run_id = orch.delay(script, args, pattern=chosen, **options)
    if on_start is not None:
        on_start(run_id)
    if chosen is TaskPattern.FIRE_AND_FORGET:
        return orch.status(run_id)
    if chosen is TaskPattern.LONG_RUNNING and (on_event or on_output or on_progress):
        return await stream_until_done(orch, run_id, on_event, on_output, on_progress)
    try:
        return await orch.wait(run_id)
    except asyncio.CancelledError:
        orch.cancel(run_id)
        raise

def is_function_target(script: Any, options: dict[str, Any]) -> bool:
    if isinstance(script, RunSpec):
        return script.kind is TargetKind.FUNCTION
    if isinstance(script, (str, os.PathLike)):
        return str(options.get("kind", "")) == TargetKind.FUNCTION.value
    return is_function(script)


def _function_item(item: Any) -> tuple[list[Any], dict[str, Any]]:
    if isinstance(item, (list, tuple)):
        return list(item), {}
    if isinstance(item, dict):
        return [], dict(item)
    return [item], {}


def execute_periodic(orch: Orchestration, script: TaskTarget, args: Iterable[str] | str | None,
                     options: dict[str, Any]) -> TaskResult:
    trigger = make_trigger(interval_seconds=options.pop("interval_seconds", None), cron=options.pop("cron", None),
                           at=options.pop("at", None), timezone=options.pop("timezone", "UTC"))
    policy = {k: options.pop(k) for k in ("overlap", "misfire_grace", "catchup", "catchup_limit", "jitter", "enabled")
              if k in options}
    run_options = {k: options.pop(k) for k in ("max_retries", "retry_on", "backoff_base", "backoff_factor",
                                                "backoff_cap", "priority") if k in options}
    spec = make_spec(script, args, options)
    if options:
        raise TypeError(f"unknown option(s) for a periodic task: {', '.join(sorted(options))}")
    name = spec.name or spec.display_name
    sched = orch.scheduler.add(name, spec, trigger, **policy, **run_options)
    orch.scheduler.start()
    return batch_result(TaskPattern.PERIODIC, RunStatus.QUEUED, schedule_id=sched.id)

async def stream_until_done(orch: Orchestration, run_id: int, on_event: Any, on_output: Any, on_progress: Any) -> TaskResult:
    try:
        async for ev in orch.events(run_id):
            for cb, wanted in ((on_event, object), (on_output, OutputBatch), (on_progress, Progress)):
                if cb is not None and isinstance(ev, wanted):
                    res = cb(ev)
                    if inspect.isawaitable(res):
                        await res
        return await orch.wait(run_id)
    except asyncio.CancelledError:
        orch.cancel(run_id)
        raise

async def execute_batch(orch: Orchestration, script: TaskTarget, args: Iterable[str] | str | None,
                         options: dict[str, Any]) -> TaskResult:
    tasks = list(options.pop("tasks", None) or [])
    max_concurrent = int(options.pop("max_concurrent", orch.max_concurrent))
    fail_fast = bool(options.pop("fail_fast", False))
    if max_concurrent < 1:
        raise ValueError("max_concurrent must be at least 1")
    base_args = [] if args is None else ([args] if isinstance(args, str) else list(args))
    function = is_function_target(script, options)
    base_kwargs = dict(options.pop("kwargs", None) or {}) if function else {}
    gate = asyncio.Semaphore(max_concurrent)
    ids: list[int | None] = [None] * len(tasks)
    stop = asyncio.Event()

    async def one(index: int, item: Any) -> TaskResult:
        async with gate:
            if stop.is_set():
                return batch_result(TaskPattern.CONCURRENT, RunStatus.DONE,
                                    Outcome(OutcomeKind.CANCELLED, None, "not started: an earlier item failed (fail_fast)"))
            if isinstance(item, RunSpec):
                run_id = orch.delay(item, pattern=TaskPattern.CONCURRENT, **dict(options))
            elif function:  # a list/tuple is positional arguments, a dict keyword arguments, else one argument
                call_args, call_kwargs = _function_item(item)
                run_id = orch.delay(script, [*base_args, *call_args], pattern=TaskPattern.CONCURRENT,
                                    **{**options, "kwargs": {**base_kwargs, **call_kwargs}})
            else:
                item_args = [item] if isinstance(item, str) else [str(a) for a in item]
                run_id = orch.delay(script, [*base_args, *item_args], pattern=TaskPattern.CONCURRENT, **dict(options))
            ids[index] = run_id
            result = await orch.wait(run_id)
            if fail_fast and not result.ok and not stop.is_set():
                stop.set()
                for other in ids:
                    if other is not None and other != run_id:
                        orch.cancel(other)
            return result

    jobs = [asyncio.ensure_future(one(i, item)) for i, item in enumerate(tasks)]
    try:
        results = list(await asyncio.gather(*jobs))
    except asyncio.CancelledError:
        for run_id in ids:
            if run_id is not None:
                orch.cancel(run_id)
        raise
    failed = sum(1 for r in results if not r.ok)
    outcome = (Outcome(OutcomeKind.SUCCEEDED, 0) if not failed
               else Outcome(OutcomeKind.FAILED, None, f"{failed} of {len(results)} items did not succeed"))
    return batch_result(TaskPattern.CONCURRENT, RunStatus.DONE, outcome, results=results,
                        attempts=sum(r.attempts for r in results))
