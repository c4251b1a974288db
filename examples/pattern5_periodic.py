"""Pattern 5 - Periodic: a task on a schedule (interval or cron), fired through the same queue.

Guide:  task = await orchestrator.execute(script_path=Path("cleanup.py"), args=[], pattern=TaskPattern.PERIODIC,
            interval_seconds=3600, task_name="cleanup_temp_files")
Here:   the same call (script positional); it returns a TaskResult with schedule_id and no run yet.
        This example uses a 0.5 s interval so it can show two fires, then removes the schedule.
        In a build without the scheduler it prints the PatternUnavailable message instead.

Usage:  python examples/pattern5_periodic.py [DATA_DIR]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from prismq_desktop.core.orchestrator.orchestrator import PatternUnavailable, TaskOrchestrator
from prismq_desktop.core.patterns import TaskPattern
from prismq_desktop.core.store import RunQuery

SCRIPTS = Path(__file__).resolve().parent / "scripts"


async def main(data_dir: str) -> int:
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    temp = Path(data_dir) / "scratch"
    temp.mkdir()
    for i in range(3):
        (temp / f"junk{i}.tmp").write_text("x")
    async with TaskOrchestrator(data_dir) as orch:
        try:
            task = await orch.execute(SCRIPTS / "cleanup.py", args=["--dir", str(temp)], pattern=TaskPattern.PERIODIC,
                                      interval_seconds=1, task_name="cleanup_temp_files")
        except PatternUnavailable as exc:
            print(f"PatternUnavailable: {exc}")
            return 0
        schedule = orch.scheduler.get(task.schedule_id)
        print(f"schedule #{schedule.id} {schedule.name!r}: {schedule.describe()}")

        def fired():
            runs = orch.registry.query(RunQuery.of("succeeded", schedule_id=schedule.id))
            return runs

        while len(fired()) < 2:
            await asyncio.sleep(0.05)
        for run in sorted(fired(), key=lambda r: r.id):
            print(f"fired run #{run.id} ({run.trigger}): {orch.get_result(run.id).stdout}")
        orch.scheduler.remove(schedule.id)
        print("schedule removed")
        return 0


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(asyncio.run(main(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(asyncio.run(main(tmp)))
