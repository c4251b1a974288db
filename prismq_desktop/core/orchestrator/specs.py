"""What a caller passes (a script path and options, or a RunSpec) turned into a RunSpec."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prismq_desktop.core.models import RunSpec, TargetKind


def make_spec(script: str | os.PathLike[str] | RunSpec, args: Iterable[str] | str | None,
              options: dict[str, Any]) -> RunSpec:
    """Build the spec; the spec options it understands are popped from `options`."""
    if isinstance(script, RunSpec):
        spec = script
        if args is not None:
            spec = spec.with_changes(args=args if isinstance(args, str) else tuple(args))
        return spec
    kind = TargetKind.MODULE if options.pop("module", False) else TargetKind(options.pop("kind", TargetKind.AUTO))
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
    )


def as_spec(value: RunSpec | str | os.PathLike[str] | None) -> RunSpec | None:
    if value is None or isinstance(value, RunSpec):
        return value
    return RunSpec(os.fspath(value))
