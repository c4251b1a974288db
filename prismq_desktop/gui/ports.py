"""What the views call on the core, as Protocols: the GUI's side of the core boundary.

`TaskOrchestrator` satisfies `OrchestratorPort` (and so `BusOwner`) structurally; the views
type their `orch` with these instead of `Any`, so a renamed or removed core method shows up
in mypy rather than as an AttributeError in a click handler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from prismq_desktop.core.engine import RunHandle
    from prismq_desktop.core.events import EventBus
    from prismq_desktop.core.models import Run, RunSpec
    from prismq_desktop.core.patterns import Priority, TaskPattern
    from prismq_desktop.core.pool.pool import PoolStats
    from prismq_desktop.core.store.registry import DeadLetter


class BusOwner(Protocol):
    """Anything with the core's event bus (the Bridge needs no more)."""

    @property
    def bus(self) -> EventBus: ...


class EnginePort(Protocol):
    """The run engine as the concurrency view reads it: the live runs."""

    def active(self) -> list[RunHandle]: ...


class PoolPort(Protocol):
    """The warm worker pool as the Pool tab drives it."""

    def stats(self) -> PoolStats: ...

    def resize(self, size: int) -> None: ...

    async def start(self) -> None:
        """Start the workers now (they otherwise start with the first pooled run)."""
        ...


class OrchestratorPort(BusOwner, Protocol):
    """The orchestrator as the Concurrency and Pool tabs use it."""

    @property
    def engine(self) -> EnginePort: ...

    @property
    def pool(self) -> PoolPort | None: ...

    @property
    def max_concurrent(self) -> int: ...

    @property
    def running_count(self) -> int: ...

    def set_max_concurrent(self, limit: int) -> None: ...

    def queued_runs(self) -> list[Run]: ...

    def cancel(self, run_id: int) -> bool: ...

    def reprioritize(self, run_id: int, priority: Priority | str | int) -> bool: ...

    def dead_letters(self) -> list[DeadLetter]: ...

    def requeue_dead_letter(self, dead_letter_id: int) -> int: ...

    def purge_dead_letters(self, ids: Sequence[int] | None = None) -> int: ...


class RunReader(Protocol):
    """The run engine as the log panes read it: a run's newest snapshot."""

    def get(self, run_id: int) -> Run | None: ...


class RunControlPort(Protocol):
    """The orchestrator as the Runs tab drives it: launch, cancel, pause, resume."""

    @property
    def engine(self) -> RunReader: ...

    def delay(self, script: RunSpec, *, pattern: TaskPattern | str = ..., **options: Any) -> int: ...

    def cancel(self, run_id: int) -> bool: ...

    def cancel_all(self) -> int: ...

    def pause(self, run_id: int) -> bool: ...

    def resume(self, run_id: int) -> bool: ...

    @property
    def queue_length(self) -> int: ...

    @property
    def running_count(self) -> int: ...


class SchedulerState(Protocol):
    """The periodic scheduler as the status bar shows it."""

    @property
    def running(self) -> bool: ...

    @property
    def paused(self) -> bool: ...


if TYPE_CHECKING:
    from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
    from prismq_desktop.core.schedule.scheduler import Scheduler

    def _orchestrator_fits(orch: TaskOrchestrator) -> OrchestratorPort:
        return orch  # mypy checks here that the real orchestrator satisfies the port

    def _orchestrator_runs(orch: TaskOrchestrator) -> RunControlPort:
        return orch  # ... and the Runs tab's port

    def _scheduler_fits(sched: Scheduler) -> SchedulerState:
        return sched
