"""The light-scheduling document's jobs (backend/jobs/*, backend/probe_single_provider.py), small and real."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from prismq_desktop.compat import TaskOrchestrator


def simple_cleanup_task():
    Path(os.environ["LJ_OUT"], "cleaned").write_text("yes")
    return "cleaned"


async def probe_provider_minimal(provider_id: int):
    await asyncio.sleep(0.01)
    return {"provider": provider_id, "healthy": True}


def probe_single_provider_job(provider_id: int):
    """APScheduler job for individual provider probes."""
    result = asyncio.run(probe_provider_minimal(provider_id))
    return result


def probe_all_providers_job():
    return [probe_single_provider_job(i) for i in (1, 2)]


_scheduler_orchestrator = TaskOrchestrator()


def create_scheduler():
    """backend/scheduler.py's factory: jobs are registered (once, by name) and the scheduler returned."""
    from prismq_desktop.core.orchestrator.specs import function_spec
    from prismq_desktop.core.schedule.scheduler import make_trigger

    sched = _scheduler_orchestrator.core.scheduler
    names = {s.name for s in sched.all()}
    if "probe_all_providers" not in names:
        sched.add("probe_all_providers", function_spec(probe_all_providers_job, []), make_trigger(interval_seconds=300))
    return sched
