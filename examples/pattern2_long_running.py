"""Pattern 2 - Long-running: live output and progress, cancellable, still returns the result.

Guide:  exit_code = await orchestrator.execute(script_path=Path("train_model.py"), args=["--epochs", "100"],
            pattern=TaskPattern.LONG_RUNNING, streaming=True, run_id="training_job_123")
Here:   result = await orch.execute(script, args=["--epochs", "5"], streaming=True, task_name="training_job_123",
            on_output=..., on_progress=...)      # streaming=True selects LONG_RUNNING
        The run id is assigned by the registry (result.run_id); a name goes in task_name=.
        Or: run_id = orch.delay(..., pattern=TaskPattern.LONG_RUNNING); async for ev in orch.events(run_id): ...
        Cancel with orch.cancel(run_id) from anywhere, or by cancelling the task that awaits execute().

Usage:  python examples/pattern2_long_running.py [DATA_DIR]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from prismq_desktop.core.events import OutputBatch, Progress, RunChanged
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.patterns import TaskPattern

SCRIPTS = Path(__file__).resolve().parent / "scripts"
TRAIN = SCRIPTS / "train_model.py"


async def main(data_dir: str) -> int:
    async with TaskOrchestrator(data_dir) as orch:
        # 1. callbacks: output lines and progress as they happen
        def on_output(batch: OutputBatch) -> None:
            for chunk in batch.chunks:
                for line in chunk.text.splitlines():
                    if line.strip() and not line.startswith("PRISMQ:PROGRESS"):
                        print(f"  [output] {line}")

        def on_progress(ev: Progress) -> None:
            print(f"  [progress] {ev.fraction:.0%} {ev.message or ''}")

        result = await orch.execute(TRAIN, args=["--epochs", "5"], streaming=True, task_name="training_job_123",
                                    on_output=on_output, on_progress=on_progress)
        print(f"training finished: pattern={result.pattern.value} exit code {result.exit_code}, "
              f"progress {result.progress:.0%}, run #{result.run_id}")

        # 2. the same with an event iterator
        run_id = orch.delay(TRAIN, ["--epochs", "3"], pattern=TaskPattern.LONG_RUNNING)
        async for ev in orch.events(run_id):
            if isinstance(ev, RunChanged):
                print(f"  [event] run #{ev.run.id} {ev.kind}")
        print(f"second run: {(await orch.wait(run_id)).outcome.describe()}")

        # 3. cancel from another task while it runs
        seen: list[Progress] = []
        slow = asyncio.ensure_future(orch.execute(TRAIN, ["--epochs", "100", "--seconds-per-epoch", "0.05"],
                                                  streaming=True, on_progress=seen.append))
        while len(seen) < 3:  # a few epochs in
            await asyncio.sleep(0.05)
        print(f"cancelling run #{seen[-1].run_id} at {seen[-1].fraction:.0%}")
        orch.cancel(seen[-1].run_id)
        cancelled = await slow
        print(f"cancelled run #{cancelled.run_id}: {cancelled.outcome.describe()}")
        return 0 if result.ok and cancelled.outcome.kind.value == "cancelled" else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(asyncio.run(main(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(asyncio.run(main(tmp)))
