"""The pattern guide's `TaskOrchestrator.execute(script_path=..., pattern=...)` with its return shapes.

A thin layer over `prismq_desktop.core.TaskOrchestrator`: it renames arguments, turns batch items
into argv, and shapes results as the guide reads them. Every run is an ordinary PrismQ run (the
registry, logs, the window's History); the core API keeps its own `TaskResult`.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prismq_desktop.core.events import OutputBatch
from prismq_desktop.core.models import OutcomeKind, RunSpec, TargetKind
from prismq_desktop.core.orchestrator.execute import execute_periodic
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator as CoreOrchestrator
from prismq_desktop.core.orchestrator.results import TaskResult
from prismq_desktop.core.orchestrator.specs import make_spec
from prismq_desktop.core.patterns import PatternAdvisor, TaskPattern
from prismq_desktop.core.process.logfile import Stream, read_log
from prismq_desktop.core.schedule.model import ScheduleError
from prismq_desktop.core.schedule.scheduler import make_trigger

#: what the guide's shapes give for a run that has no exit code of its own (as the CLI's `run`)
EXIT_TIMED_OUT, EXIT_FAILED_TO_START, EXIT_CANCELLED = 124, 125, 130
FULL_OUTPUT_MAX = 16 * 1024 * 1024  # SIMPLE returns the whole stdout/stderr up to this, else the tail

_made: list[TaskOrchestrator] = []


def exit_code_of(result: TaskResult) -> int:
    """An int for every ending, as the CLI's `run` exits: the child's code; 124 timed out,
    125 failed to start, 130 cancelled, 128+N killed by signal N, 1 for any other failure."""
    outcome = result.outcome
    if outcome is None:
        return 1
    fixed = {OutcomeKind.TIMED_OUT: EXIT_TIMED_OUT, OutcomeKind.FAILED_TO_START: EXIT_FAILED_TO_START,
             OutcomeKind.CANCELLED: EXIT_CANCELLED}
    if outcome.kind in fixed:
        return fixed[outcome.kind]
    if outcome.exit_code is not None:
        return outcome.exit_code if outcome.exit_code >= 0 else 128 - outcome.exit_code  # killed by signal N
    return 0 if outcome.kind is OutcomeKind.SUCCEEDED else 1


class ExecutionResult(tuple[int, str, str]):
    """`exit_code, stdout, stderr = ...`: unpacks to three, and keeps the run it came from."""

    run_id: int | None
    task_result: TaskResult

    def __new__(cls, result: TaskResult, stdout: str | None = None, stderr: str | None = None) -> ExecutionResult:
        self = super().__new__(cls, (exit_code_of(result), result.stdout if stdout is None else stdout,
                                     result.stderr if stderr is None else stderr))
        self.run_id = result.run_id
        self.task_result = result
        return self

    @property
    def exit_code(self) -> int:
        return self[0]

    @property
    def stdout(self) -> str:
        return self[1]

    @property
    def stderr(self) -> str:
        return self[2]

    @property
    def ok(self) -> bool:
        return self.task_result.ok

    @property
    def result(self) -> Any:
        """A function task's return value."""
        return self.task_result.result


def _full_output(result: TaskResult) -> ExecutionResult:
    """The whole stdout/stderr from the run's log (the result's tail when the log is gone or huge)."""
    run = result.run
    path = run.log_path if run is not None else None
    if not path or not os.path.exists(path) or os.path.getsize(path) > FULL_OUTPUT_MAX:
        return ExecutionResult(result)
    out, err = bytearray(), bytearray()
    try:
        for record, _end in read_log(path, 0):
            if record.stream is Stream.STDOUT:
                out += record.data
            elif record.stream is Stream.STDERR:
                err += record.data
    except OSError:
        return ExecutionResult(result)
    encoding = run.spec.encoding if run is not None else "utf-8"
    return ExecutionResult(result, out.decode(encoding, "replace"), err.decode(encoding, "replace"))


def item_args(item: Any) -> list[str]:
    """One CONCURRENT item as argv: a list as it is, a dict as `--key value` (True: a bare `--key`,
    False/None: left out, a list: `--key a b`), anything else one argument."""
    if isinstance(item, (list, tuple)):
        return [str(a) for a in item]
    if isinstance(item, Mapping):
        argv: list[str] = []
        for key, value in item.items():
            flag = key if str(key).startswith("-") else f"--{key}"
            if value is True:
                argv.append(flag)
            elif value is False or value is None:
                continue
            elif isinstance(value, (list, tuple)):
                argv += [flag, *(str(v) for v in value)]
            else:
                argv += [flag, str(value)]
        return argv
    return [str(item)]


class LiveRun:
    """What FIRE_AND_FORGET returns: `.status` is read from the registry each time it is asked."""

    def __init__(self, orchestrator: CoreOrchestrator, run_id: int) -> None:
        self._orch = orchestrator
        self.run_id = run_id

    def _now(self) -> TaskResult:
        return self._orch.status(self.run_id)

    @property
    def status(self) -> str:
        """queued, running, paused; once done, how it ended (succeeded, failed, cancelled...)."""
        now = self._now()
        if now.done and now.outcome is not None:
            return now.outcome.kind.value
        return now.status.value

    @property
    def done(self) -> bool:
        return self._now().done

    @property
    def key(self) -> str | None:
        return self._orch.run_key(self.run_id)

    @property
    def exit_code(self) -> int | None:
        now = self._now()
        return exit_code_of(now) if now.done else None

    @property
    def result(self) -> Any:
        return self._now().result

    async def wait(self, timeout: float | None = None) -> ExecutionResult:
        return _full_output(await self._orch.wait(self.run_id, timeout=timeout))

    def cancel(self) -> bool:
        return self._orch.cancel(self.run_id)

    def __repr__(self) -> str:
        return f"<run #{self.run_id} {self.status}>"


class PeriodicTask:
    """What PERIODIC returns: the schedule (by name), to enable, disable or remove it."""

    def __init__(self, orchestrator: CoreOrchestrator, schedule_id: int, name: str, created: bool) -> None:
        self._orch = orchestrator
        self.schedule_id = schedule_id
        self.name = name
        self.created = created  # False when a schedule of that name was updated

    @property
    def enabled(self) -> bool:
        return self._orch.scheduler.get(self.schedule_id).enabled

    @property
    def next_fire(self) -> float | None:
        return self._orch.scheduler.get(self.schedule_id).next_fire

    def enable(self) -> None:
        self._orch.scheduler.enable(self.schedule_id)

    def disable(self) -> None:
        self._orch.scheduler.disable(self.schedule_id)

    def remove(self) -> None:
        self._orch.scheduler.remove(self.schedule_id)

    def run_now(self) -> int | None:
        return self._orch.scheduler.run_now(self.schedule_id)

    def __repr__(self) -> str:
        return f"<periodic task {self.name!r} (schedule #{self.schedule_id})>"


class TaskOrchestrator:
    """The guide's orchestrator: `execute(script_path=..., args=[...], pattern=...)`.

    Made with no arguments it uses the default data dir (`$PRISMQ_DESKTOP_HOME`, else the
    platform's), as the window and the CLI do; `home=`/`max_concurrent=` go to the core. Built
    lazily, so it can be made at import time, outside any event loop.
    """

    def __init__(self, home: str | os.PathLike[str] | None = None, *, orchestrator: CoreOrchestrator | None = None,
                 **options: Any) -> None:
        self._home = home
        self._options = options
        self._core = orchestrator
        _made.append(self)

    @property
    def core(self) -> CoreOrchestrator:
        """The core orchestrator doing the work (made on first use)."""
        if self._core is None:
            self._core = CoreOrchestrator(self._home, **self._options)
        return self._core

    async def close(self) -> None:
        if self._core is not None:
            await self._core.close()
            self._core = None

    async def __aenter__(self) -> TaskOrchestrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:  # status, get_result, cancel, wait, metrics... of the core
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.core, name)

    async def execute(self, script_path: Any = None, args: Iterable[Any] | str | None = None,
                      pattern: TaskPattern | str | Any = None, *, script: Any = None, run_id: str | None = None,
                      cwd: str | os.PathLike[str] | None = None, **options: Any) -> Any:
        """Run with one of the six patterns (chosen from the options when `pattern` is not given).

        SIMPLE/POOLED -> (exit_code, stdout, stderr); LONG_RUNNING -> the exit code (output shown
        live with `streaming=True`, or given to `on_output=`); CONCURRENT -> one (exit_code, stdout,
        stderr) per item of `tasks=`, in order; FIRE_AND_FORGET -> a LiveRun; PERIODIC -> a
        PeriodicTask (an existing `task_name` is updated, not refused). `run_id=` is the run's own id.
        """
        target = script if script is not None else script_path
        if target is None:
            raise TypeError("execute() needs script_path= (or a function)")
        if cwd is not None:
            options["cwd"] = os.fspath(cwd)
        if options.get("concurrent_tasks") is not None and options.get("max_concurrent") is None \
                and options.get("tasks") is not None:
            options["max_concurrent"] = int(options["concurrent_tasks"])  # the guide's other name for the limit
        chosen = TaskPattern.parse(pattern) if pattern is not None else PatternAdvisor.select(options)
        streaming = bool(options.pop("streaming", False))
        options.pop("wait_for_result", None)
        options.pop("concurrent_tasks", None)
        options.pop("use_pool", None)
        core = self.core
        if chosen is TaskPattern.PERIODIC:
            if run_id is not None:
                raise TypeError("run_id= names one run; a periodic task fires many (it is known by task_name=)")
            return self._periodic(target, args, options)
        if chosen is TaskPattern.CONCURRENT:
            if run_id is not None:
                raise TypeError("run_id= names one run; a CONCURRENT batch has one run per item")
            return await self._concurrent(target, args, options)
        if run_id is not None:
            options["run_key"] = run_id
        if chosen is TaskPattern.FIRE_AND_FORGET:
            return LiveRun(core, core.delay(target, args, pattern=chosen, **options))
        if chosen is TaskPattern.LONG_RUNNING:
            return await self._long_running(target, args, streaming, options)
        return _full_output(await core.execute(target, args, pattern=chosen, **options))

    async def _long_running(self, target: Any, args: Any, streaming: bool, options: dict[str, Any]) -> int:
        core = self.core
        on_output = options.pop("on_output", None)
        on_progress = options.pop("on_progress", None)
        run_id = core.delay(target, args, pattern=TaskPattern.LONG_RUNNING, **options)
        try:
            if streaming or on_output is not None or on_progress is not None:
                async for ev in core.events(run_id):
                    if isinstance(ev, OutputBatch):
                        if on_output is not None:
                            await _call(on_output, ev)
                        else:
                            _echo(ev)
                    elif on_progress is not None and type(ev).__name__ == "Progress":
                        await _call(on_progress, ev)
            return exit_code_of(await core.wait(run_id))
        except asyncio.CancelledError:
            core.cancel(run_id)
            raise

    async def _concurrent(self, target: Any, args: Any, options: dict[str, Any]) -> list[ExecutionResult]:
        items = list(options.pop("tasks", None) or [])
        function = isinstance(target, RunSpec) and target.kind is TargetKind.FUNCTION or callable(target) \
            or options.get("kind") == "function"
        if not function:
            items = [i if isinstance(i, RunSpec) else item_args(i) for i in items]
        batch = await self.core.execute(target, args, pattern=TaskPattern.CONCURRENT, tasks=items, **options)
        return [_full_output(r) if r.run is not None else ExecutionResult(r) for r in batch.results]

    def _periodic(self, target: Any, args: Any, options: dict[str, Any]) -> PeriodicTask:
        """Add the schedule, or update the one of that name (so this can run at every app start)."""
        core = self.core
        probe = dict(options)
        for key in ("interval_seconds", "cron", "at", "timezone", "overlap", "misfire_grace", "catchup",
                    "catchup_limit", "jitter", "enabled", "max_retries", "retry_on", "backoff_base",
                    "backoff_factor", "backoff_cap", "priority"):
            probe.pop(key, None)
        spec = make_spec(target, args, probe)
        if probe:
            raise TypeError(f"unknown option(s) for a periodic task: {', '.join(sorted(probe))}")
        name = (spec.name or spec.display_name).strip()
        try:
            existing = core.scheduler.get(name)
        except ScheduleError:
            existing = None
        if existing is None:
            made = execute_periodic(core, target, args, options)
            assert made.schedule_id is not None
            return PeriodicTask(core, made.schedule_id, name, created=True)
        trigger = make_trigger(interval_seconds=options.pop("interval_seconds", None), cron=options.pop("cron", None),
                               at=options.pop("at", None), timezone=options.pop("timezone", "UTC"))
        changes = {k: options.pop(k) for k in ("overlap", "misfire_grace", "catchup", "catchup_limit", "jitter",
                                               "enabled", "max_retries", "retry_on", "backoff_base", "backoff_factor",
                                               "backoff_cap", "priority") if k in options}
        if trigger.to_dict() == existing.trigger.to_dict() and spec.to_dict() == existing.spec.to_dict() and not changes:
            sched = existing  # the same registration at every start: nothing to change (the next fire is kept)
        else:
            sched = core.scheduler.update(existing.id, spec=spec, trigger=trigger, **changes)
        core.scheduler.start()
        return PeriodicTask(core, sched.id, name, created=False)


def _echo(ev: OutputBatch) -> None:
    """streaming=True with no on_output: the child's output goes to ours as it comes."""
    for chunk in ev.chunks:
        stream = sys.stdout if chunk.stream is Stream.STDOUT else sys.stderr
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            buffer.write(chunk.data)
        else:
            stream.write(chunk.data.decode("utf-8", "replace"))
        stream.flush()


async def _call(callback: Any, ev: Any) -> None:
    res = callback(ev)
    if inspect.isawaitable(res):
        await res


async def execute_module(script_path: str | os.PathLike[str], args: Iterable[Any] | None = None,
                         cwd: str | os.PathLike[str] | None = None, **options: Any) -> ExecutionResult:
    """The guide's pattern 1 helper: run a script (or, for a dotted name that is not a file, a
    module as `python -m`) and return (exit_code, stdout, stderr). Uses the default orchestrator
    (`prismq_desktop.tasks.set_orchestrator`, else one for this loop in the default data dir)."""
    from prismq_desktop.tasks import default_orchestrator

    target = os.fspath(script_path)
    if "kind" not in options and not target.endswith((".py", ".pyw")) and "." in target \
            and not Path(target).exists() and all(part.isidentifier() for part in target.split(".")):
        options["kind"] = "module"
    if cwd is not None:
        options["cwd"] = os.fspath(cwd)
    orch = default_orchestrator()
    return _full_output(await orch.execute(target, None if args is None else list(args),
                                           pattern=TaskPattern.SIMPLE, **options))


async def shutdown() -> None:
    """Close every orchestrator this layer made (and the default one of this loop); their runs are cancelled."""
    from prismq_desktop.tasks import close_default_orchestrator

    made, _made[:] = list(_made), []
    for orch in made:
        await orch.close()
    await close_default_orchestrator()
