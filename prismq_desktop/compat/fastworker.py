"""FastWorker's client API over PrismQ function tasks.

    from prismq_desktop.compat.fastworker import Client, TaskPriority, TaskStatus, task

    @task
    def process_data(data): ...          # registered under its name, as FastWorker's workers do

    client = Client()
    await client.start()
    result = await client.submit_task(task_name="process_data", args=(data,), priority=TaskPriority.HIGH)
    result.status == "success"; result.result; result.error
    task_id = await client.delay("process_data", data, priority="high")    # a str id, at once
    await client.get_task_result(task_id)                                  # None while pending
    await client.delay_with_callback("process_data", data, callback="tcp://localhost:6000",
                                     callback_data={"request_id": 123})

There are no separate workers to start: every call runs in another process under the
orchestrator's concurrency limit (`prismq_desktop.tasks.set_orchestrator` chooses which; else one
in the default data dir). A task name is one registered with `@task` in this process, or an
import path ("package.module:function").
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from prismq_desktop.compat.callbacks import CallbackUndelivered, check_address, deliver
from prismq_desktop.tasks import REGISTRY, FunctionTask, default_orchestrator
from prismq_desktop.tasks import task as _task

log = logging.getLogger(__name__)

__all__ = ["CallbackUndelivered", "Client", "TaskPriority", "TaskResult", "TaskStatus", "task"]


#: tasks registered with this module's `task`, by name: a Client looks here first, so FastWorker's
#: names are not shadowed by a PacificPy `@background` of the same name in the same process
TASKS: dict[str, FunctionTask] = {}


def task(func: Any = None, /, **options: Any) -> Any:
    """FastWorker's decorator: `@task` or `@task(name=...)`; registers the function under its name."""
    def register(f: Any) -> FunctionTask:
        made: FunctionTask = _task(f, **options)
        TASKS[made.name] = made
        return made

    return register(func) if func is not None else register


class TaskStatus(enum.StrEnum):
    """FastWorker's statuses; each equals its string ("success" == TaskStatus.SUCCESS)."""

    PENDING = "pending"
    STARTED = "started"
    SUCCESS = "success"
    FAILURE = "failure"


class TaskPriority(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


@dataclass(frozen=True)
class TaskResult:
    """FastWorker's result: `.status`, `.result` (the return value), `.error` ("Type: message")."""

    task_id: str
    task_name: str
    status: TaskStatus
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    started_at: float | None = None
    completed_at: float | None = None
    callback_data: Any = None
    run: Any = field(default=None, repr=False, compare=False)  # the core TaskResult

    def to_dict(self) -> dict[str, Any]:
        """What a callback address receives."""
        return {"task_id": self.task_id, "task_name": self.task_name, "status": self.status.value,
                "result": self.result, "error": self.error, "started_at": self.started_at,
                "completed_at": self.completed_at, "callback_data": self.callback_data}


def _status(core: Any) -> TaskStatus:
    if not core.done:
        return TaskStatus.STARTED if core.status.value in ("running", "paused") else TaskStatus.PENDING
    return TaskStatus.SUCCESS if core.ok else TaskStatus.FAILURE


def _convert(core: Any, name: str, callback_data: Any = None) -> TaskResult:
    error = core.error
    if core.done and not core.ok:
        message = f"{error.get('type')}: {error.get('message')}" if error else (
            core.outcome.describe() if core.outcome else "did not finish")
    else:
        message = None
    run = core.run
    return TaskResult(str(core.run_id), name, _status(core), core.result if core.ok else None, message,
                      error.get("traceback") if error else None, run.started_at if run else None,
                      run.ended_at if run else None, callback_data, core)


def _task_id(task_id: str | int) -> int | str:
    text = str(task_id)
    return int(text) if text.isdigit() else text  # a number, or a caller-chosen run id


class Client:
    """FastWorker's `Client`: submits named tasks; results come from the run registry."""

    def __init__(self, orchestrator: Any = None, **_ignored: Any) -> None:
        # FastWorker's discovery/broker options (discovery_address=, timeout=...) have no meaning here
        self._orch = getattr(orchestrator, "core", orchestrator)
        self._names: dict[int, str] = {}
        #: (task id, reason) of callbacks that could not be delivered
        self.callback_errors: deque[tuple[str, str]] = deque(maxlen=100)

    @property
    def orchestrator(self) -> Any:
        if self._orch is None:
            self._orch = default_orchestrator()
        return self._orch

    async def start(self) -> None:
        """Connect: here, make sure the orchestrator exists (every other call also does)."""
        _ = self.orchestrator

    async def stop(self) -> None:
        """Nothing to disconnect; runs keep going under their orchestrator."""

    close = stop

    def _task(self, name: str) -> FunctionTask | str:
        if name in TASKS:
            return TASKS[name]
        if name in REGISTRY:
            return REGISTRY[name]
        if ":" in name:
            return name  # "package.module:function"
        known = ", ".join(sorted(set(REGISTRY) | set(TASKS))) or "none"
        raise KeyError(f"no task named {name!r} (known: {known}; or give 'package.module:function')")

    def _delay(self, task_name: str, args: tuple[Any, ...], kwargs: dict[str, Any], priority: Any,
               **options: Any) -> int:
        target = self._task(task_name)
        prio = getattr(priority, "value", priority)
        if isinstance(target, FunctionTask):
            options = {**target._submit_options({}), **options}
            if target.use_pool:
                options["pattern"] = "pooled"
        else:
            options["kind"] = "function"
        run_id = self.orchestrator.delay(target, list(args), kwargs=kwargs, priority=prio, **options)
        self._names[run_id] = task_name
        return int(run_id)

    async def submit_task(self, task_name: str, *args: Any, priority: TaskPriority | str = TaskPriority.NORMAL,
                          **kwargs: Any) -> TaskResult:
        """Run `task_name` and wait for its result. Arguments: positional after the name, or
        FastWorker's `args=(...)` / `kwargs={...}`."""
        call_args = tuple(kwargs.pop("args", ())) + args
        call_kwargs = dict(kwargs.pop("kwargs", None) or {}, **kwargs)
        run_id = self._delay(task_name, call_args, call_kwargs, priority, pattern="simple")
        core = await self.orchestrator.wait(run_id)
        return _convert(core, task_name)

    async def delay(self, task_name: str, *args: Any, priority: TaskPriority | str = TaskPriority.NORMAL,
                    **kwargs: Any) -> str:
        """Queue `task_name` and return its task id at once."""
        return str(self._delay(task_name, args, kwargs, priority))

    async def get_task_result(self, task_id: str | int) -> TaskResult | None:
        """The final result, or None while the task is pending or running."""
        core = self.orchestrator.get_result(_task_id(task_id))
        if core is None:
            return None
        run_id = int(core.run_id)
        name = self._names.pop(run_id, None) or (core.run.spec.display_name if core.run else str(task_id))
        return _convert(core, name)

    async def delay_with_callback(self, task_name: str, *args: Any, callback: Any = None,
                                  callback_address: str | None = None, callback_data: Any = None,
                                  priority: TaskPriority | str = TaskPriority.NORMAL, **kwargs: Any) -> str:
        """Queue `task_name`; when it ends, its result goes once to `callback`: a callable (sync or
        async, given the TaskResult) or an address, `tcp://host:port` (one JSON line) or an http://
        URL (a JSON POST), retried with backoff until delivered."""
        target = callback if callback is not None else callback_address
        if target is None:
            raise TypeError("delay_with_callback() needs callback= (a callable or an address)")
        if isinstance(target, str):
            check_address(target)
        elif not callable(target):
            raise TypeError(f"callback must be callable or an address, not {type(target).__name__}")

        async def on_done(core: Any) -> None:
            result = _convert(core, task_name, callback_data)
            if isinstance(target, str):
                try:
                    await deliver(target, result.to_dict())
                except CallbackUndelivered as exc:
                    self.callback_errors.append((result.task_id, str(exc)))
                    raise  # the orchestrator logs it, writes it to the run's log and announces it
                return
            res = target(result)
            if inspect.isawaitable(res):
                await res

        return str(self._delay(task_name, args, kwargs, priority, callback=on_done))

    async def wait_for(self, task_id: str | int, timeout: float | None = None) -> TaskResult:
        """Wait for a task's final result (PrismQ's addition: no polling needed)."""
        core = await self.orchestrator.wait(_task_id(task_id), timeout=timeout)
        return _convert(core, self._names.get(int(core.run_id), str(task_id)))
