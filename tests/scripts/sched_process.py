"""Run a scheduler on DATA_DIR for SECONDS, then stop (two of these must never double-fire)."""
import asyncio
import sys

from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.schedule import triggers

triggers.MIN_INTERVAL_SECONDS = 0.05  # the test's schedule fires every 0.25 s (people get a 1 s floor)


async def main(home: str, seconds: float) -> None:
    async with TaskOrchestrator(home, max_concurrent=4) as orch:
        orch.scheduler.start()
        print("ready", flush=True)
        await asyncio.sleep(seconds)
        await orch.scheduler.stop()
        # let runs started here finish so none is cut off
        while orch.engine.active():
            await asyncio.sleep(0.05)


asyncio.run(main(sys.argv[1], float(sys.argv[2])))
