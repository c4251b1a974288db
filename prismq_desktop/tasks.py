"""`@task`: a module-level function registered by import path and name, run in another process.

    from prismq_desktop import task

    @task(timeout=60, max_retries=2)
    def resize(path: str, width: int) -> dict: ...

    run_id = await resize.delay("a.png", 640)      # queued; the id at once
    value = await resize.submit("a.png", width=640)  # waits; the return value (TaskFailed if it raised)

Calling `resize(...)` directly still calls the plain function in this process (that is what the
child does). The function always runs in another process: a fresh interpreter, or a warm
pool worker with `use_pool=True`. Submissions go to the orchestrator given with
`set_orchestrator()` (or `task(orchestrator=...)`), else to one created on first use in the
default data dir for the running event loop.

This module lives outside `prismq_desktop.core` and imports it only when a task is submitted:
a child that imports a module full of `@task` functions pays nothing for the decorator.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:  # a child that imports a module with `@task` functions must not load the orchestrator
    from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
    from prismq_desktop.core.orchestrator.results import TaskResult

F = TypeVar("F", bound=Callable[..., Any])

#: every `@task` of this process by name (FastWorker's named tasks look functions up here)
REGISTRY: dict[str, FunctionTask] = {}

#: options of `orchestrator.delay` a task may carry as defaults (spec options are in orchestrator.specs)
SUBMIT_OPTIONS = ("priority", "max_retries", "retry_on", "backoff_base", "backoff_factor", "backoff_cap", "jitter",
                  "idempotency_window", "mode", "on_success", "on_failure")

_default: dict[int, TaskOrchestrator] = {}  # id(loop) -> the orchestrator made for it
_chosen: list[TaskOrchestrator] = []


class TaskFailed(RuntimeError):
    """`submit()` of a function that did not return: it raised, timed out, was cancelled..."""

    def __init__(self, result: TaskResult) -> None:
        self.result = result
        error = result.error
        if error:
            what = f"{error.get('type')}: {error.get('message')}"
        else:
            what = result.outcome.describe() if result.outcome else "did not finish"
        super().__init__(f"run #{result.run_id} {what}")
        self.error_type = error.get("type") if error else None
        self.traceback = error.get("traceback") if error else None


def set_orchestrator(orchestrator: TaskOrchestrator | None) -> None:
    """Where `delay()`/`submit()` of every task without its own orchestrator go (None: the default)."""
    _chosen[:] = [orchestrator] if orchestrator is not None else []


def default_orchestrator() -> TaskOrchestrator:
    """The chosen orchestrator, else one made (default data dir) for the running loop."""
    if _chosen:
        return _chosen[0]
    loop = asyncio.get_running_loop()
    orch = _default.get(id(loop))
    if orch is None:
        from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator

        orch = _default[id(loop)] = TaskOrchestrator()
    return orch


async def close_default_orchestrator() -> None:
    """Close the orchestrator made for this loop (its runs are cancelled)."""
    orch = _default.pop(id(asyncio.get_running_loop()), None)
    if orch is not None:
        await orch.close()


class FunctionTask:
    """A registered function: call it directly, or `delay`/`submit` it to run in another process."""

    def __init__(self, func: Callable[..., Any], *, name: str | None = None,
                 orchestrator: TaskOrchestrator | None = None, use_pool: bool = False, **options: Any) -> None:
        unknown = sorted(set(options) - set(SUBMIT_OPTIONS) - {
            "cwd", "env", "interpreter", "python", "timeout", "soft_timeout", "hard_timeout", "grace_period",
            "encoding", "serializer", "where"})
        if unknown:
            raise TypeError(f"unknown task option(s): {', '.join(unknown)}")
        self.__prismq_function__ = func
        functools.update_wrapper(self, func)
        self.name: str = name or func.__name__
        qualname = getattr(func, "__qualname__", "")
        if "<locals>" in qualname or "<lambda>" in qualname:  # refused now; the rest when first submitted
            raise TypeError(f"{qualname} is defined inside a function (or is a lambda): another process cannot "
                            "import it; define it at module level")
        self._target: str | None = None
        self.orchestrator = orchestrator
        self.use_pool = use_pool
        self.options: dict[str, Any] = dict(options)
        REGISTRY[self.name] = self

    @property
    def target(self) -> str:
        """The import path a child uses ("pkg.mod:func", or "/abs/file.py:func" for __main__)."""
        if self._target is None:
            from prismq_desktop.core.functions.targets import function_target

            self._target = function_target(self.__prismq_function__)
        return self._target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__prismq_function__(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<task {self.name} ({self.target})>"

    def _orch(self) -> TaskOrchestrator:
        return self.orchestrator or default_orchestrator()

    def _submit_options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        opts = {k: v for k, v in self.options.items() if k in SUBMIT_OPTIONS}
        opts.update(overrides)
        return opts

    def delay_with(self, args: tuple[Any, ...], kwargs: dict[str, Any], **options: Any) -> int:
        """`delay` with submission options (priority=, idempotency_key=, callback=, after=...)."""
        from prismq_desktop.core.patterns import TaskPattern

        pattern = TaskPattern.POOLED if options.pop("use_pool", self.use_pool) else options.pop(
            "pattern", "fire_and_forget")
        return self._orch().delay(self, list(args), kwargs=kwargs, pattern=pattern, **self._submit_options(options))

    async def delay(self, *args: Any, **kwargs: Any) -> int:
        """Queue a call and return its run id at once."""
        return self.delay_with(args, kwargs)

    async def submit_with(self, args: tuple[Any, ...], kwargs: dict[str, Any], **options: Any) -> TaskResult:
        """Queue a call with submission options and wait for its final result (after any retries)."""
        options.setdefault("pattern", "simple")
        orch = self._orch()
        run_id = self.delay_with(args, kwargs, **options)
        try:
            return await orch.wait(run_id)
        except asyncio.CancelledError:
            orch.cancel(run_id)
            raise

    async def submit(self, *args: Any, **kwargs: Any) -> Any:
        """Run the call and return the function's value; TaskFailed when it did not return."""
        result = await self.submit_with(args, kwargs)
        if not result.ok:
            raise TaskFailed(result)
        return result.result


@overload
def task(func: F, /) -> FunctionTask: ...
@overload
def task(*, name: str | None = None, orchestrator: TaskOrchestrator | None = None, use_pool: bool = False,
         **options: Any) -> Callable[[F], FunctionTask]: ...
def task(func: Any = None, /, **options: Any) -> Any:
    """Register a function as a task: `@task` or `@task(name=..., timeout=..., use_pool=True, ...)`."""
    if func is not None:
        return FunctionTask(func, **options)
    return lambda f: FunctionTask(f, **options)


#: PacificPy's name for the same decorator
background = task


def lookup(name: str) -> FunctionTask:
    """The task registered under `name` in this process (KeyError with the known names otherwise)."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise KeyError(f"no task named {name!r} (known: {known})") from None
