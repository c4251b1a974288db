"""Pattern 4 - Fire-and-forget with tracking: returns at once, status from the registry later.

Guide:  run = await orchestrator.execute(script_path=Path("send_email.py"), args=["--to", "user@example.com"],
            pattern=TaskPattern.FIRE_AND_FORGET, wait_for_result=False)   # check run.status later
Here:   the same call (script positional); it returns a TaskResult at once with status queued/running.
        Later: orch.status(run_id) / orch.get_result(run_id) (None while pending) / await orch.wait(run_id),
        also from a new orchestrator on the same data dir after a restart.

Usage:  python examples/pattern4_fire_and_forget.py [DATA_DIR]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.patterns import TaskPattern

SCRIPTS = Path(__file__).resolve().parent / "scripts"


async def main(data_dir: str) -> int:
    async with TaskOrchestrator(data_dir) as orch:
        run = await orch.execute(SCRIPTS / "send_email.py", args=["--to", "user@example.com"],
                                 pattern=TaskPattern.FIRE_AND_FORGET, wait_for_result=False)
        print(f"returned at once: run #{run.run_id} status={run.status.value}")
        print(f"get_result while pending: {orch.get_result(run.run_id)}")
        while not orch.status(run.run_id).done:  # poll at a reasonable interval
            await asyncio.sleep(0.1)
        print(f"later: run #{run.run_id} status={orch.status(run.run_id).status.value}")
        run_id = run.run_id

    # a new orchestrator (as after an app restart) finds the run in the registry
    async with TaskOrchestrator(data_dir) as orch:
        result = orch.get_result(run_id)
        print(f"after restart: run #{run_id} {result.outcome.describe()}: {result.stdout}")
        return 0 if result.ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(asyncio.run(main(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(asyncio.run(main(tmp)))
