"""What the scheduler needs from its host (the TaskOrchestrator), and nothing more.

`Scheduler` talks to the orchestrator only through `SchedulerHost`: submit a fired run,
record a fire that never starts (skipped, missed), ask whether a run is live here, cancel
one, and reach the schedule store and the event stream. `TaskOrchestrator` satisfies it
structurally; mypy checks that where the orchestrator creates its scheduler.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from prismq_desktop.core.events import Event
from prismq_desktop.core.models import Outcome, Run, RunSpec
from prismq_desktop.core.patterns import TaskPattern
from prismq_desktop.core.store.query import RunQuery


class ScheduleStore(Protocol):
    """The registry's schedule table, its fire claims, and its runs by schedule."""

    def list_schedules(self) -> builtins.list[dict[str, Any]]: ...

    def get_schedule(self, key: int | str) -> dict[str, Any] | None: ...

    def add_schedule(self, values: dict[str, Any]) -> int: ...

    def update_schedule(self, schedule_id: int, values: dict[str, Any]) -> None: ...

    def delete_schedule(self, schedule_id: int) -> bool: ...

    def claim_fires(self, schedule_id: int, expected_next: float | None, dues: Sequence[float],
                    next_fire: float | None, last_fire: float | None) -> bool: ...

    def query(self, query: RunQuery = ...) -> builtins.list[Run]: ...


class EventChannel(Protocol):
    """The event bus: the scheduler announces schedule changes and watches runs end."""

    def publish(self, event: Event) -> None: ...

    def subscribe_sync(self, callback: Callable[[Event], None]) -> Callable[[], None]: ...


class SchedulerHost(Protocol):
    """The orchestrator as the scheduler sees it."""

    @property
    def registry(self) -> ScheduleStore: ...

    @property
    def bus(self) -> EventChannel: ...

    def delay(self, script: RunSpec, *, pattern: TaskPattern, schedule_id: int, trigger: str, **options: Any) -> int:
        """Queue a fired run (with the schedule's run options: retries, priority) and return its id."""
        ...

    def record_unstarted(self, spec: RunSpec, outcome: Outcome, *, schedule_id: int, trigger: str) -> int:
        """Store a fire that never starts (skipped, missed) as a DONE run with `outcome`; its id."""
        ...

    def owns(self, run_id: int) -> bool:
        """The run is live in this process (started or queued here and not finished)."""
        ...

    def cancel(self, run_id: int) -> bool: ...
