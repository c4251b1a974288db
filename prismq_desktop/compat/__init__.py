"""The reference documents' APIs as written, over PrismQ's own (a thin, documented layer).

    from prismq_desktop.compat import TaskOrchestrator, TaskPattern, PatternAdvisor, execute_module

    orchestrator = TaskOrchestrator()
    exit_code, stdout, stderr = await orchestrator.execute(
        script_path=Path("validate_data.py"), args=["--source", "data.csv"], pattern=TaskPattern.SIMPLE)

`prismq_desktop.compat.fastworker` has FastWorker's `Client`/`task`/`TaskStatus`/`TaskPriority`,
`prismq_desktop.compat.pacificpy` PacificPy's `background`/`configure_background_tasks`/
`get_local_executor`. The README's "Coming from PrismQ / FastWorker / PacificPy" maps every
example of the reference documents to how it runs here. Everything underneath is the core
(`prismq_desktop.core`), whose own API and result types stay as they are.
"""

from __future__ import annotations

from typing import Any

from prismq_desktop.compat.orchestrator import (
    ExecutionResult,
    LiveRun,
    PeriodicTask,
    TaskOrchestrator,
    execute_module,
    exit_code_of,
    item_args,
    shutdown,
)
from prismq_desktop.core.models import RunMode
from prismq_desktop.core.patterns import PatternAdvisor, Priority, Recommendation, TaskPattern
from prismq_desktop.core.process import SubprocessWrapper

__all__ = ["BackgroundTasks", "ExecutionResult", "LiveRun", "PatternAdvisor", "PeriodicTask", "Priority",
           "Recommendation", "RunMode", "SubprocessWrapper", "TaskOrchestrator", "TaskPattern", "exit_code_of",
           "execute_module", "item_args", "shutdown"]


class BackgroundTasks:
    """FastAPI's `BackgroundTasks.add_task(func, *args, **kwargs)`, run as PrismQ function tasks.

    Each added call is queued at once (a fire-and-forget run in another process, recorded in the
    registry), not after the response as in FastAPI; `run_ids` lists them."""

    def __init__(self, orchestrator: Any = None) -> None:
        self._orch = getattr(orchestrator, "core", orchestrator)
        self.run_ids: list[int] = []

    def add_task(self, func: Any, *args: Any, **kwargs: Any) -> None:
        from prismq_desktop.tasks import FunctionTask, default_orchestrator

        orch = self._orch or default_orchestrator()
        if isinstance(func, FunctionTask):
            self.run_ids.append(func.delay_with(args, kwargs) if self._orch is None else
                                orch.delay(func, list(args), kwargs=kwargs))
        else:
            self.run_ids.append(orch.delay(func, list(args), kwargs=kwargs))
