"""What to run (`RunSpec`) and what happened to it (`Run`).

Lifecycle status and outcome are separate on purpose (as in pueue's TaskStatus and
TaskResult): "is it still going?" and "how did it end?" are different questions, and
every change to either goes through `transition()` so an impossible history
(a run that finishes twice, or resumes after it ended) raises instead of being stored.
"""

from __future__ import annotations

import enum
import functools
import json
import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from prismq_desktop.core.patterns import Priority, TaskPattern


class RunStatus(enum.StrEnum):
    """Where a run is in its life. Only DONE carries an outcome."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"


class OutcomeKind(enum.StrEnum):
    """How a finished run ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # exited with a non-zero code (or was killed by a signal it got elsewhere)
    FAILED_TO_START = "failed_to_start"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"  # the process that owned it died before it finished
    DEPENDENCY_FAILED = "dependency_failed"  # a run it waited for (`after=`) did not succeed
    SKIPPED = "skipped"  # a schedule's fire not started (overlap policy forbid)
    MISSED = "missed"  # a schedule's fire that fell while no PrismQ was running (catch-up skip/coalesce)


class TargetKind(enum.StrEnum):
    """What `RunSpec.target` names."""

    AUTO = "auto"  # a `.py`/`.pyw` path is a script, anything else an executable
    SCRIPT = "script"
    MODULE = "module"
    EXECUTABLE = "executable"
    FUNCTION = "function"  # "package.module:func" or "path/to/file.py:func", called by core/functions/runner.py


class Serializer(enum.StrEnum):
    """How a function task's arguments and return value cross the process boundary.

    JSON by default. PICKLE only when the caller asks: unpickling runs code, so it is unsafe
    for data that crosses a trust boundary (a result file another user could write).
    """

    JSON = "json"
    PICKLE = "pickle"


class RunMode(enum.StrEnum):
    """How the local executor starts and watches the process."""

    AUTO = "auto"
    ASYNC = "async"
    THREADED = "threaded"
    LOCAL = "local"
    DRY_RUN = "dry-run"


@dataclass(frozen=True)
class Outcome:
    """The end of a run: a kind plus the exit code or message that explains it."""

    kind: OutcomeKind
    exit_code: int | None = None
    message: str | None = None

    @staticmethod
    def from_exit_code(code: int) -> Outcome:
        if code == 0:
            return Outcome(OutcomeKind.SUCCEEDED, 0)
        return Outcome(OutcomeKind.FAILED, code)

    def describe(self) -> str:
        """In words: "failed (3)", "failed (SIGTERM)", "failed to start: ...", "timed out: ..."."""
        if self.kind is OutcomeKind.FAILED and self.exit_code is not None:
            code = self.exit_code
            if code < 0 and sys.platform != "win32":
                try:
                    return f"failed ({signal.Signals(-code).name})"
                except ValueError:
                    return f"failed (signal {-code})"
            return f"failed ({code})"
        if self.kind is OutcomeKind.FAILED_TO_START:
            return f"failed to start: {self.message}"
        if self.message:
            return f"{self.kind.value.replace('_', ' ')}: {self.message}"
        return self.kind.value.replace("_", " ")


@dataclass(frozen=True)
class RunSpec:
    """A serialisable description of what to run, independent of how it is run.

    `args` may be a list or a single string typed by a person; a string is split with
    shell-like quoting when the run starts, and a quoting error fails that run cleanly.
    `env` values of None remove the variable from the child's environment.

    Bad input is never refused here (a spec read back from an old registry must still
    load): it is refused when the run starts, which then ends ``failed_to_start`` with a
    one-line message and starts nothing. That covers a NaN, infinite, negative or zero
    `soft_timeout`/`hard_timeout`, a NaN, infinite or negative `grace_period`, an `env`
    name that is empty or holds ``=`` or NUL, a NUL in any value, target, cwd or argument,
    and everything else `core.process.launch.resolve()` checks (missing script, bad cwd...).
    """

    target: str
    args: tuple[str, ...] | str = ()
    kind: TargetKind = TargetKind.AUTO
    cwd: str | None = None
    env: Mapping[str, str | None] = field(default_factory=dict)
    interpreter: str | None = None
    soft_timeout: float | None = None
    hard_timeout: float | None = None
    grace_period: float = 5.0
    encoding: str = "utf-8"
    name: str | None = None
    #: a FUNCTION's call, encoded by `core.functions.payload.encode_call` (JSON text, or base64
    #: pickle when `serializer` is PICKLE); None for every other kind
    payload: str | None = None
    serializer: Serializer = Serializer.JSON
    #: Where it runs: None on this machine (the local executor or the warm pool, by pattern),
    #: ``"remote:QUEUE"`` on a Celery worker listening to QUEUE (see core/remote/).
    where: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.args, str):
            object.__setattr__(self, "args", tuple(str(a) for a in self.args))
        object.__setattr__(self, "kind", TargetKind(self.kind))
        object.__setattr__(self, "env", dict(self.env))
        object.__setattr__(self, "serializer", Serializer(self.serializer or Serializer.JSON))

    @property
    def remote_queue(self) -> str | None:
        """The Celery queue of a remote spec (``where="remote:QUEUE"``), else None."""
        where = self.where or ""
        if where.startswith(REMOTE_PREFIX):
            return where[len(REMOTE_PREFIX):] or None
        return None

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        if self.kind is TargetKind.FUNCTION:  # "pkg.mod:func" / "dir/file.py:func" -> "func"
            return self.target.rsplit(":", 1)[-1] or self.target
        base = self.target.replace("\\", "/").rsplit("/", 1)[-1]
        return base or self.target

    @functools.cached_property
    def json(self) -> str:
        """The spec as stored in the registry (computed once per spec: it is on the submit path)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def with_changes(self, **changes: Any) -> RunSpec:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "target": self.target,
            "args": self.args if isinstance(self.args, str) else list(self.args),
            "kind": self.kind.value,
            "cwd": self.cwd,
            "env": dict(self.env),
            "interpreter": self.interpreter,
            "soft_timeout": self.soft_timeout,
            "hard_timeout": self.hard_timeout,
            "grace_period": self.grace_period,
            "encoding": self.encoding,
            "name": self.name,
            # only for functions, so the stored JSON of every other spec is what it always was
            **({"payload": self.payload, "serializer": self.serializer.value}
               if self.kind is TargetKind.FUNCTION or self.payload is not None else {}),
        }
        if self.where is not None:  # only when set: a local spec's stored JSON is what it always was
            data["where"] = self.where
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        args = data.get("args", ())
        return cls(
            target=str(data["target"]),
            args=args if isinstance(args, str) else tuple(args),
            kind=TargetKind(data.get("kind", "auto")),
            cwd=data.get("cwd"),
            env=dict(data.get("env") or {}),
            interpreter=data.get("interpreter"),
            soft_timeout=data.get("soft_timeout"),
            hard_timeout=data.get("hard_timeout"),
            grace_period=float(data.get("grace_period", 5.0)),
            encoding=str(data.get("encoding", "utf-8")),
            name=data.get("name"),
            payload=data.get("payload"),
            serializer=Serializer(data.get("serializer") or "json"),
            where=data.get("where") or None,
        )


REMOTE_PREFIX = "remote:"


def where_problem(where: str | None) -> str | None:
    """Why `where` is not a place a run can go (None when it is): None/"local", "pool" or "remote:QUEUE"."""
    if where in (None, "local", "pool"):
        return None
    if isinstance(where, str) and where.startswith(REMOTE_PREFIX):
        queue = where[len(REMOTE_PREFIX):]
        if queue and queue.strip() == queue and all(c.isalnum() or c in "._-:" for c in queue) and len(queue) <= 200:
            return None
        return f"not a queue name: {queue!r} (letters, digits and . _ - : only)"
    return f"unknown place to run {where!r} (choose local, pool or remote:QUEUE)"
class InvalidRunKey(ValueError):
    """A caller-chosen run id that cannot be one (its one-line message says why)."""


RUN_KEY_MAX = 128
_RUN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")


def check_run_key(key: object) -> str:
    """`key` if it can name a run (`run_id="training_job_123"`), else InvalidRunKey.

    It must start with a letter or `_` (so it is never read as a numeric id or an option) and
    use only letters, digits and `_ . : -` (safe in a shell, a URL, a file name), at most 128.
    """
    if not isinstance(key, str):
        raise InvalidRunKey(f"a run id must be text, not {type(key).__name__}")
    shown = key if len(key) <= 40 else key[:40] + "..."
    if not key:
        raise InvalidRunKey("a run id cannot be empty")
    if len(key) > RUN_KEY_MAX:
        raise InvalidRunKey(f"run id {shown!r} is {len(key)} characters long; at most {RUN_KEY_MAX}")
    if not _RUN_KEY.fullmatch(key):
        why = ("must start with a letter or '_'" if not (key[0].isascii() and (key[0].isalpha() or key[0] == "_"))
               else "may hold only letters, digits and _ . : -")
        raise InvalidRunKey(f"run id {shown!r} {why}")
    return key


class IllegalTransition(RuntimeError):
    """A status change that the run state diagram does not allow."""


# The run state diagram (docs/architecture.md draws it).
_ALLOWED: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.DONE}),
    RunStatus.RUNNING: frozenset({RunStatus.PAUSED, RunStatus.DONE}),
    RunStatus.PAUSED: frozenset({RunStatus.RUNNING, RunStatus.DONE}),
    RunStatus.DONE: frozenset(),
}


@dataclass(frozen=True)
class Run:
    """One attempt at a RunSpec, as stored in the registry: an immutable snapshot.

    Only the engine makes new snapshots (`transition()` for status/outcome, `with_changes()`
    for the rest) and it persists each before announcing it, so a snapshot held by a view,
    a result or a callback never changes under it and never contradicts itself.
    """

    id: int
    spec: RunSpec
    status: RunStatus = RunStatus.QUEUED
    outcome: Outcome | None = None
    mode: RunMode = RunMode.AUTO
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    pid: int | None = None
    pid_create_time: float | None = None
    argv: tuple[str, ...] = ()
    cwd: str | None = None
    log_path: str | None = None
    dry_run: bool = False
    owner_pid: int | None = None
    owner_create_time: float | None = None
    # orchestration (issue 3): where the run sits in the queue and how it relates to others
    priority: Priority = Priority.NORMAL
    pattern: TaskPattern = TaskPattern.SIMPLE
    attempt: int = 1
    parent_id: int | None = None  # the first attempt of a retried run
    idempotency_key: str | None = None
    not_before: float | None = None  # a retry waits until then
    depends_on: tuple[int, ...] = ()
    progress: float | None = None
    progress_message: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    # scheduling (issue 4): which schedule fired it and why ("schedule", "run now", "catch-up", ...)
    schedule_id: int | None = None
    trigger: str | None = None
    # resource usage of the whole tree, saved when the run ends
    peak_cpu: float | None = None
    mean_cpu: float | None = None
    peak_rss: int | None = None
    mean_rss: int | None = None
    # function tasks (issue 15): the runner's report, as stored (see `core.functions.payload`):
    # '{"value": ...}' when the function returned, '{"error": {type, message, traceback}}' when it raised
    result: str | None = None
    # remote runs (issue 14): the worker that ran it and the id of its Redis stream
    worker_host: str | None = None
    remote_id: str | None = None
    # a caller-chosen id (`run_id="training_job_123"`, checked by `check_run_key`), unique in the
    # registry; it names the chain's first attempt and resolves wherever a numeric id does
    key: str | None = None

    def __post_init__(self) -> None:
        # stored values come back as plain strings/ints: the snapshot always carries the enums
        object.__setattr__(self, "status", RunStatus(self.status))
        object.__setattr__(self, "mode", RunMode(self.mode or RunMode.AUTO))
        object.__setattr__(self, "priority", Priority.parse(self.priority))
        object.__setattr__(self, "pattern", TaskPattern.parse(self.pattern or TaskPattern.SIMPLE))
        object.__setattr__(self, "depends_on", tuple(self.depends_on))
        object.__setattr__(self, "argv", tuple(self.argv))

    def with_changes(self, **changes: Any) -> Run:
        """A new snapshot with other field values (status and outcome change only via `transition`)."""
        if "status" in changes or "outcome" in changes:
            raise IllegalTransition("status and outcome change only through transition()")
        return _next_run(self, changes)

    @property
    def name(self) -> str:
        return self.spec.display_name

    @property
    def exit_code(self) -> int | None:
        return self.outcome.exit_code if self.outcome else None

    @property
    def error(self) -> str | None:
        return self.outcome.message if self.outcome else None

    @property
    def is_active(self) -> bool:
        return self.status is not RunStatus.DONE

    @property
    def result_value(self) -> Any:
        """A function task's return value (None while running, for scripts, or when it raised).

        A pickled value is loaded only for a run whose spec opted in to pickle."""
        from prismq_desktop.core.functions.payload import report_value

        return report_value(self.result, self.spec.serializer.value)

    @property
    def result_error(self) -> dict[str, str] | None:
        """{type, message, traceback} of the exception a function task raised, else None."""
        from prismq_desktop.core.functions.payload import report_error

        return report_error(self.result)

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at if self.ended_at is not None else time.time()
        return max(0.0, end - self.started_at)


def transition(
    run: Run, status: RunStatus, outcome: Outcome | None = None, *, now: float | None = None, **changes: Any
) -> Run:
    """The one place a run's status or outcome changes: returns the next snapshot.

    Raises IllegalTransition for moves the state diagram forbids, for DONE without an
    outcome, and for an outcome on any other status. `changes` set other fields in the
    same step (the pid when it starts, usage when it ends).
    """
    status = RunStatus(status)  # a plain "done" must obey the same rules as RunStatus.DONE
    if status not in _ALLOWED[run.status]:
        raise IllegalTransition(f"run {run.id}: {run.status.value} -> {status.value} is not allowed")
    if (status is RunStatus.DONE) != (outcome is not None):
        raise IllegalTransition(
            f"run {run.id}: an outcome is required exactly when the run becomes done"
        )
    stamp = time.time() if now is None else now
    if status is RunStatus.RUNNING and run.started_at is None:
        changes["started_at"] = stamp
    if status is RunStatus.DONE:
        changes["ended_at"] = stamp
    changes["status"] = status
    changes["outcome"] = outcome
    return _next_run(run, changes)


_RUN_FIELDS: frozenset[str] = frozenset()


def _next_run(run: Run, changes: dict[str, Any]) -> Run:
    """`dataclasses.replace(run, **changes)` without rebuilding ~40 fields through __init__ (it
    is on every run's start and end): the fields are copied, the changed ones set, and
    __post_init__ normalises them as __init__ would. Run has no init=False or cached fields."""
    global _RUN_FIELDS
    if not _RUN_FIELDS:
        _RUN_FIELDS = frozenset(f.name for f in fields(Run))
    unknown = changes.keys() - _RUN_FIELDS
    if unknown:
        raise TypeError(f"Run has no field(s) {', '.join(sorted(unknown))}")
    new: Run = object.__new__(Run)
    state = new.__dict__
    state.update(run.__dict__)
    state.update(changes)
    new.__post_init__()
    return new


def allowed_next(status: RunStatus) -> frozenset[RunStatus]:
    return _ALLOWED[status]


def absolute_spec(spec: RunSpec, base: str | None = None) -> RunSpec:
    """`spec` with a relative script/file target and cwd made absolute against `base` (default:
    this process's cwd), for a spec that is saved to run later from anywhere (a schedule, a
    saved task, a dead letter). A bare command or module name stays as it is (looked up when
    it runs), so does a remote spec (its paths are the worker's) and a cwd left empty."""
    if spec.remote_queue is not None or spec.where:
        return spec
    root = os.path.abspath(os.path.expanduser(base)) if base else os.getcwd()
    cwd = spec.cwd
    if cwd:
        cwd = os.path.normpath(os.path.join(root, os.path.expanduser(cwd)))
    here = cwd or root
    target = spec.target
    stripped = target.strip()
    kind = spec.kind
    if not stripped or kind is TargetKind.MODULE:
        pass
    elif kind is TargetKind.FUNCTION or (kind is TargetKind.AUTO and ":" in stripped and
                                         stripped.rpartition(":")[0].lower().endswith((".py", ".pyw"))):
        module, sep, attr = stripped.rpartition(":")
        if sep and module.lower().endswith((".py", ".pyw")) and not os.path.isabs(os.path.expanduser(module)):
            target = f"{os.path.normpath(os.path.join(here, os.path.expanduser(module)))}:{attr}"
    else:
        expanded = os.path.expanduser(stripped)
        is_script = kind is TargetKind.SCRIPT or (kind is TargetKind.AUTO and expanded.lower().endswith((".py", ".pyw")))
        has_dir = os.sep in expanded or "/" in expanded
        if (is_script or has_dir) and not os.path.isabs(expanded):
            target = os.path.normpath(os.path.join(here, expanded))
    if target == spec.target and cwd == spec.cwd:
        return spec
    return replace(spec, target=target, cwd=cwd)

