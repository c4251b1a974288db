"""The Qt-free core: run model, executor, output capture, registry and engine.

Nothing under this package may import Qt (tests/core/test_no_qt.py enforces it), so a
script or the CLI can use it on a machine without PySide6.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prismq_desktop.core.engine import RunEngine, RunHandle
    from prismq_desktop.core.events import EventBus, Notice, OutputBatch, RunChanged, Subscription
    from prismq_desktop.core.models import (
        IllegalTransition,
        Outcome,
        OutcomeKind,
        Run,
        RunMode,
        RunSpec,
        RunStatus,
        TargetKind,
        transition,
    )
    from prismq_desktop.core.monitor import ResourceMonitor, RunSample, RunUsage, SystemSample
    from prismq_desktop.core.orchestrator.orchestrator import PatternUnavailable, RetryPolicy, TaskOrchestrator, TaskResult
    from prismq_desktop.core.patterns import PatternAdvisor, Priority, TaskPattern
    from prismq_desktop.core.process import (
        Launch,
        LaunchError,
        LineAssembler,
        LogWriter,
        OutputCapture,
        Stream,
        SubprocessWrapper,
        choose_mode,
        read_log,
        resolve,
    )
    from prismq_desktop.core.store.registry import RunRegistry

#: public name -> the module that defines it, imported on first use (PEP 562): the window's
#: start-up, a script or the CLI pays only for the parts it touches (issue 17)
_LAZY = {
    "EventBus": "prismq_desktop.core.events",
    "IllegalTransition": "prismq_desktop.core.models",
    "Launch": "prismq_desktop.core.process",
    "LaunchError": "prismq_desktop.core.process",
    "LineAssembler": "prismq_desktop.core.process",
    "LogWriter": "prismq_desktop.core.process",
    "Notice": "prismq_desktop.core.events",
    "Outcome": "prismq_desktop.core.models",
    "OutcomeKind": "prismq_desktop.core.models",
    "OutputBatch": "prismq_desktop.core.events",
    "OutputCapture": "prismq_desktop.core.process",
    "PatternAdvisor": "prismq_desktop.core.patterns",
    "PatternUnavailable": "prismq_desktop.core.orchestrator.orchestrator",
    "Priority": "prismq_desktop.core.patterns",
    "ResourceMonitor": "prismq_desktop.core.monitor",
    "RetryPolicy": "prismq_desktop.core.orchestrator.orchestrator",
    "Run": "prismq_desktop.core.models",
    "RunChanged": "prismq_desktop.core.events",
    "RunEngine": "prismq_desktop.core.engine",
    "RunHandle": "prismq_desktop.core.engine",
    "RunMode": "prismq_desktop.core.models",
    "RunRegistry": "prismq_desktop.core.store.registry",
    "RunSample": "prismq_desktop.core.monitor",
    "RunSpec": "prismq_desktop.core.models",
    "RunStatus": "prismq_desktop.core.models",
    "RunUsage": "prismq_desktop.core.monitor",
    "Stream": "prismq_desktop.core.process",
    "SubprocessWrapper": "prismq_desktop.core.process",
    "Subscription": "prismq_desktop.core.events",
    "SystemSample": "prismq_desktop.core.monitor",
    "TargetKind": "prismq_desktop.core.models",
    "TaskOrchestrator": "prismq_desktop.core.orchestrator.orchestrator",
    "TaskPattern": "prismq_desktop.core.patterns",
    "TaskResult": "prismq_desktop.core.orchestrator.orchestrator",
    "choose_mode": "prismq_desktop.core.process",
    "read_log": "prismq_desktop.core.process",
    "resolve": "prismq_desktop.core.process",
    "transition": "prismq_desktop.core.models",
}

__all__ = [
    "EventBus",
    "IllegalTransition",
    "Launch",
    "LaunchError",
    "LineAssembler",
    "LogWriter",
    "Notice",
    "Outcome",
    "PatternAdvisor",
    "PatternUnavailable",
    "Priority",
    "RetryPolicy",
    "TaskOrchestrator",
    "TaskPattern",
    "TaskResult",
    "OutcomeKind",
    "OutputBatch",
    "OutputCapture",
    "Run",
    "ResourceMonitor",
    "RunChanged",
    "RunSample",
    "RunUsage",
    "SystemSample",
    "RunEngine",
    "RunHandle",
    "RunMode",
    "RunRegistry",
    "RunSpec",
    "RunStatus",
    "Stream",
    "SubprocessWrapper",
    "Subscription",
    "TargetKind",
    "choose_mode",
    "read_log",
    "resolve",
    "transition",
]


def __getattr__(name: str) -> Any:
    """`from prismq_desktop.core import X` imports X's module on first use, then caches X here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'prismq_desktop.core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
