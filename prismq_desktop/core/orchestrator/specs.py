"""What a caller passes (a script path and options, a function, or a RunSpec) turned into a RunSpec."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

from prismq_desktop.core.functions import payload as function_payload
from prismq_desktop.core.functions.targets import function_target, import_root, is_function
from prismq_desktop.core.models import RunSpec, Serializer, TargetKind

#: What every submission takes: a script path or command, a RunSpec, or a function
TaskTarget: TypeAlias = "str | os.PathLike[str] | RunSpec | Callable[..., Any]"

#: submission options a `@task` wrapper may carry as its defaults
SPEC_OPTIONS = ("cwd", "env", "interpreter", "python", "timeout", "soft_timeout", "hard_timeout", "grace_period",
                "encoding", "task_name", "name", "serializer", "where")


def function_spec(func: Any, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None, *,
                  serializer: Serializer | str = Serializer.JSON, **options: Any) -> RunSpec:
    """A spec that calls `func` (a function, a `@task` wrapper, or "pkg.mod:func") with these arguments.

    Raises TypeError for a function another process cannot import and PayloadError (a
    ValueError) for arguments that are not JSON (unless `serializer="pickle"`)."""
    defaults = dict(getattr(func, "options", {}) or {}) if hasattr(func, "__prismq_function__") else {}
    merged = {k: v for k, v in defaults.items() if k in SPEC_OPTIONS}
    merged.update(options)
    ser = Serializer(merged.pop("serializer", serializer) or Serializer.JSON)
    target = func if isinstance(func, str) else function_target(func)
    env = dict(merged.pop("env", None) or {})
    if not isinstance(func, str):
        root = import_root(func)
        cwd = merged.get("cwd")
        if root and os.path.abspath(os.path.expanduser(cwd or os.getcwd())) != root:
            env.setdefault(function_payload.PATH_VAR, root)
    name = merged.pop("task_name", merged.pop("name", None))
    if name is None and hasattr(func, "__prismq_function__"):
        name = getattr(func, "name", None)
    return RunSpec(
        target=target,
        kind=TargetKind.FUNCTION,
        payload=function_payload.encode_call(list(args), dict(kwargs or {}), ser.value),
        serializer=ser,
        cwd=merged.pop("cwd", None),
        env=env,
        interpreter=merged.pop("interpreter", merged.pop("python", None)),
        soft_timeout=merged.pop("timeout", merged.pop("soft_timeout", None)),
        hard_timeout=merged.pop("hard_timeout", None),
        grace_period=merged.pop("grace_period", 5.0),
        encoding=merged.pop("encoding", "utf-8"),
        name=name,
        where=merged.pop("where", None),
    )


SPEC_CACHE_SIZE = 256
_spec_cache: dict[tuple[Any, ...], RunSpec] = {}


def make_spec(script: Any, args: Iterable[Any] | str | None, options: dict[str, Any]) -> RunSpec:
    """Build the spec (the same one again for the same plain command: a spec is immutable, and
    its stored JSON and resolution are then computed once, not per run); the spec options it
    understands are popped from `options`."""
    key: tuple[Any, ...] | None = None
    if type(script) is str and not options and (args is None or type(args) in (str, tuple, list)):
        arg_key = args if args is None or type(args) is str else tuple(args)
        if arg_key is None or type(arg_key) is str or all(type(a) is str for a in arg_key):
            key = (script, arg_key)
            cached = _spec_cache.get(key)
            if cached is not None:
                return cached
    spec = _make_spec(script, args, options)
    if key is not None and spec.kind is not TargetKind.FUNCTION:
        if len(_spec_cache) >= SPEC_CACHE_SIZE:
            _spec_cache.clear()
        _spec_cache[key] = spec
    return spec


def _make_spec(script: Any, args: Iterable[Any] | str | None, options: dict[str, Any]) -> RunSpec:
    """Build the spec; the spec options it understands are popped from `options`.

    `script` may be a path or command, a RunSpec, or a function (a plain module-level function,
    a `@task` wrapper, or "pkg.mod:func" with kind="function"); a function's `args` are JSON
    values and its keyword arguments come in `kwargs=`."""
    if isinstance(script, RunSpec):
        spec = script
        if args is not None:
            if spec.kind is TargetKind.FUNCTION:
                spec = spec.with_changes(payload=function_payload.encode_call(
                    [args] if isinstance(args, str) else list(args), options.pop("kwargs", None) or {},
                    spec.serializer.value))
            else:
                spec = spec.with_changes(args=args if isinstance(args, str) else tuple(args))
        return spec
    kind_opt = options.pop("kind", TargetKind.AUTO)
    if not isinstance(script, (str, os.PathLike)) and is_function(script) or (
            isinstance(script, str) and TargetKind(kind_opt) is TargetKind.FUNCTION):
        fn_options = {k: options.pop(k) for k in SPEC_OPTIONS if k in options}
        kwargs = options.pop("kwargs", None)
        call_args = [] if args is None else ([args] if isinstance(args, str) else list(args))
        return function_spec(script, call_args, kwargs, **fn_options)
    kind = TargetKind.MODULE if options.pop("module", False) else TargetKind(kind_opt)
    return RunSpec(
        target=str(script),
        args=(args if isinstance(args, str) else tuple(str(a) for a in args)) if args is not None else (),
        kind=kind,
        cwd=options.pop("cwd", None),
        env=options.pop("env", None) or {},
        interpreter=options.pop("interpreter", options.pop("python", None)),
        soft_timeout=options.pop("timeout", options.pop("soft_timeout", None)),
        hard_timeout=options.pop("hard_timeout", None),
        grace_period=options.pop("grace_period", 5.0),
        encoding=options.pop("encoding", "utf-8"),
        name=options.pop("task_name", options.pop("name", None)),
        where=options.pop("where", None),
    )


def with_parent_result(follow: RunSpec, parent_report: str | None, spill_path: str,
                       parent_serializer: str = "json") -> RunSpec:
    """The follow-up of a succeeded function run, handed the parent's return value.

    A function follow-up gets it as its first positional argument; a script (module, command)
    gets it as JSON text in $PRISMQ_PARENT_RESULT, or, when that is longer than 32 KiB, the
    path of a 0600 file holding it in $PRISMQ_PARENT_RESULT_FILE (`spill_path`)."""
    if not parent_report or function_payload.report_error(parent_report) is not None:
        return follow
    value = function_payload.report_value(parent_report, parent_serializer)
    if follow.kind is TargetKind.FUNCTION:
        args, kwargs = function_payload.decode_call(follow.payload, follow.serializer.value)
        return follow.with_changes(payload=function_payload.encode_call([value, *args], kwargs, follow.serializer.value))
    text = function_payload.value_json(value)
    env = dict(follow.env)
    if len(text) <= function_payload.PARENT_RESULT_MAX_ENV:
        env[function_payload.PARENT_RESULT_VAR] = text
    else:
        from prismq_desktop.core.store.atomic import atomic_write_text

        atomic_write_text(spill_path, text)
        env[function_payload.PARENT_RESULT_FILE_VAR] = spill_path
    return follow.with_changes(env=env)


def as_spec(value: Any) -> RunSpec | None:
    """A follow-up (`on_success=` / `on_failure=`): a spec, a script path, or a function (no arguments:
    an `on_success` function receives the parent's result as its first argument)."""
    if value is None or isinstance(value, RunSpec):
        return value
    if not isinstance(value, (str, os.PathLike)) and is_function(value):
        return function_spec(value)
    return RunSpec(os.fspath(value))
