"""The Qt-free core: run model, executor, output capture, registry and engine.

Nothing under this package may import Qt (tests/core/test_no_qt.py enforces it), so a
script or the CLI can use it on a machine without PySide6.
"""

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
