"""A chain: every attempt of one submission, and the future its final result resolves.

A chain lives only while it is pending: once its final result is set, its dependents are
released and its callback has run, the orchestrator forgets it, and everything about it is
answered from the registry (`status`, `get_result`, `wait`, `after=`, idempotency).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prismq_desktop.core.engine import RunHandle
from prismq_desktop.core.models import RunMode, RunSpec
from prismq_desktop.core.orchestrator.results import TaskResult
from prismq_desktop.core.orchestrator.retry import RetryPolicy
from prismq_desktop.core.patterns import Priority, TaskPattern

ResultCallback = Callable[[TaskResult], None | Awaitable[None]]


@dataclass
class Chain:
    """All attempts of one submission; `future` resolves with the final result."""

    first_id: int
    spec: RunSpec
    policy: RetryPolicy
    pattern: TaskPattern
    priority: Priority
    mode: RunMode | str | None
    callback: ResultCallback | None
    on_success: RunSpec | None
    on_failure: RunSpec | None
    idempotency_key: str | None
    future: asyncio.Future[TaskResult]
    current: RunHandle
    attempt: int = 1
    depends_on: tuple[int, ...] = ()
    follow_ups: list[int] = field(default_factory=list)
    #: every attempt's run id, first to newest (what `events()` matches, what is forgotten at the end)
    run_ids: list[int] = field(default_factory=list)
