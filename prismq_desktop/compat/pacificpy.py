"""PacificPy's background-task API over PrismQ function tasks.

    from prismq_desktop.compat.pacificpy import background, configure_background_tasks, get_local_executor

    configure_background_tasks(get_local_executor(max_workers=4))

    @background
    def send_email(to: str, subject: str, body: str): ...

    await send_email.delay("a@example.com", "hi", "...")   # queued; the run id

Each call runs in another process (never in the app's), under the configured executor's limit.
`delay()` also works *without* `await` and without a running event loop - inside a running task,
as PacificPy's chaining example calls `step_two.delay(result)`: there it submits the call to an
orchestrator of its own on the same data dir (`$PRISMQ_DESKTOP_HOME`, which children inherit) and
returns once that run has ended, so the chain's steps run one after another, each in its own
process, each recorded.

Production, PacificPy's "Celery (Production)" backend: `CeleryBackgroundBackend(celery_app=...)`
sends every call as a remote run (core/remote) to the broker of that Celery app, on its default
queue (`task_default_queue`, "celery" unless set); `prismq-desktop worker --queue celery` processes
run them (not `celery -A myapp worker`: the task they run is PrismQ's, which streams output,
CPU/RSS and the function's result back). The ARQ backend is not part of this build.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Generator
from typing import Any, TypeVar, overload

from prismq_desktop.tasks import FunctionTask, set_orchestrator

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["BackgroundTask", "CeleryBackgroundBackend", "LocalExecutor", "TaskMonitor", "background",
           "configure_background_tasks",
           "configure_task_monitor", "get_local_executor", "record_task_start", "update_task_status"]


class QueuedRun(int):
    """What `delay()` returns: the run id, which may also be awaited (`await f.delay(...)`)."""

    def __await__(self) -> Generator[Any, None, int]:
        if False:  # pragma: no cover - makes this a generator
            yield
        return int(self)


class BackgroundTask(FunctionTask):
    """A `@background` function: `delay()` works awaited, un-awaited, and with no event loop."""

    def delay(self, *args: Any, **kwargs: Any) -> QueuedRun:  # type: ignore[override]
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return QueuedRun(_submit_blocking(self, args, kwargs))
        return QueuedRun(self.delay_with(args, kwargs))


def _submit_blocking(fn: BackgroundTask, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """No loop (a sync caller, e.g. a task chaining the next step): run the call to its end
    through an orchestrator of its own (default data dir), and return its run id."""
    from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator

    previous = fn.orchestrator

    async def main() -> int:
        async with TaskOrchestrator(max_concurrent=1) as orch:
            fn.orchestrator = orch
            try:
                run_id = fn.delay_with(args, kwargs, pattern="simple")
            finally:
                fn.orchestrator = previous
            await orch.wait(run_id)
            return run_id

    return asyncio.run(main())


@overload
def background(func: F, /) -> BackgroundTask: ...
@overload
def background(*, name: str | None = None, **options: Any) -> Callable[[F], BackgroundTask]: ...
def background(func: Any = None, /, **options: Any) -> Any:
    """PacificPy's decorator: `@background` or `@background(timeout=..., max_retries=...)`."""
    if func is not None:
        return BackgroundTask(func, **options)
    return lambda f: BackgroundTask(f, **options)


class LocalExecutor:
    """PacificPy's local executor: a PrismQ orchestrator running at most `max_workers` calls at once."""

    def __init__(self, max_workers: int = 4, home: str | os.PathLike[str] | None = None) -> None:
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be a whole number of at least 1, not {max_workers!r}")
        self.max_workers = max_workers
        self._home = home
        self._orch: Any = None

    @property
    def orchestrator(self) -> Any:
        if self._orch is None:
            from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator

            self._orch = TaskOrchestrator(self._home, max_concurrent=self.max_workers)
        return self._orch

    async def shutdown(self) -> None:
        """Close the orchestrator (runs still going are cancelled)."""
        if self._orch is not None:
            await self._orch.close()
            self._orch = None


class _Routed:
    """An orchestrator whose submissions default to one remote queue (everything else passes through)."""

    def __init__(self, orchestrator: Any, where: str) -> None:
        self._orch = orchestrator
        self.where = where

    def delay(self, script: Any, args: Any = None, **options: Any) -> int:
        from prismq_desktop.core.models import RunSpec

        if isinstance(script, RunSpec):
            if script.where is None:
                script = script.with_changes(where=self.where)
        else:
            options.setdefault("where", self.where)
        return int(self._orch.delay(script, args, **options))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._orch, name)


class CeleryBackgroundBackend:
    """PacificPy's Celery backend: calls run on PrismQ workers over the Celery app's Redis broker.

    `celery_app` gives the broker URL (``conf.broker_url``) and the queue (``conf.task_default_queue``);
    `queue=` and `broker=` override them. Only Redis brokers (redis://, rediss://) are supported."""

    def __init__(self, celery_app: Any = None, *, broker: str | None = None, queue: str | None = None,
                 max_concurrent: int = 16, home: str | os.PathLike[str] | None = None) -> None:
        from prismq_desktop.core.models import where_problem
        from prismq_desktop.core.remote.config import check_broker_url

        conf = getattr(celery_app, "conf", None)
        url = broker or (getattr(conf, "broker_url", None) if conf is not None else None)
        if not url:
            raise ValueError("CeleryBackgroundBackend needs a Celery app with a broker (Celery('app', broker='redis://...'))")
        self.broker = check_broker_url(str(url))
        self.queue = queue or (getattr(conf, "task_default_queue", None) if conf is not None else None) or "celery"
        problem = where_problem(f"remote:{self.queue}")
        if problem:
            raise ValueError(problem)
        self.max_concurrent = max_concurrent
        self._home = home
        self._orch: Any = None

    @property
    def orchestrator(self) -> Any:
        if self._orch is None:
            from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator

            self._orch = _Routed(TaskOrchestrator(self._home, broker=self.broker, max_concurrent=self.max_concurrent),
                                 f"remote:{self.queue}")
        return self._orch

    async def shutdown(self) -> None:
        """Close the orchestrator (runs it follows are cancelled on their workers)."""
        if self._orch is not None:
            await self._orch.close()
            self._orch = None


def get_local_executor(max_workers: int = 4, home: str | os.PathLike[str] | None = None) -> LocalExecutor:
    return LocalExecutor(max_workers, home)


def configure_background_tasks(backend: Any) -> None:
    """Send every `@background` (and `@task`) call to `backend`: a LocalExecutor or an orchestrator."""
    orch = getattr(backend, "orchestrator", None) or getattr(backend, "core", None) or backend
    if not hasattr(orch, "delay") or not hasattr(orch, "wait"):
        raise TypeError(f"configure_background_tasks() needs an executor or orchestrator, not {type(backend).__name__}")
    set_orchestrator(orch)


# -- monitoring: inside a task, these write one line each to the run's output (and so its log)
MONITOR_PREFIX = "PRISMQ:TASK "


def record_task_start(task_id: str, name: str) -> None:
    """Note in the run's log that task `task_id` (`name`) started."""
    _note({"task_id": str(task_id), "name": name, "status": "started", "at": time.time()})


def update_task_status(task_id: str, status: str, detail: Any = None) -> None:
    """Note in the run's log a task's new status ("completed", "failed"...) with a detail."""
    _note({"task_id": str(task_id), "status": status, "detail": detail, "at": time.time()})


def _note(entry: dict[str, Any]) -> None:
    sys.stdout.write(MONITOR_PREFIX + json.dumps(entry, default=repr) + "\n")
    sys.stdout.flush()


class TaskMonitor:
    """Counts, success rate and durations of background tasks (from the run registry)."""

    def __init__(self, orchestrator: Any = None) -> None:
        self._orch = orchestrator

    @property
    def orchestrator(self) -> Any:
        from prismq_desktop.tasks import default_orchestrator

        return self._orch or default_orchestrator()

    def metrics(self, name: str) -> Any:
        """TaskMetrics of the task `name`: count, success rate, p50/p95 duration, queued, running."""
        return self.orchestrator.metrics(name)

    def notes(self, run_id: int) -> list[dict[str, Any]]:
        """The record_task_start/update_task_status lines a run wrote, in order."""
        result = self.orchestrator.status(run_id)
        return [json.loads(line[len(MONITOR_PREFIX):]) for line in result.stdout.splitlines()
                if line.startswith(MONITOR_PREFIX)]


def configure_task_monitor(orchestrator: Any = None) -> TaskMonitor:
    return TaskMonitor(orchestrator)


_ABSENT = {
    "ARQBackgroundBackend": "an ARQ integration",
}


def __getattr__(name: str) -> Any:
    if name in _ABSENT:
        raise ImportError(f"{name} is not available: it needs {_ABSENT[name]}, which is not part of this build; "
                          "use get_local_executor() (calls run in local processes)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
