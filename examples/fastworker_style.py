"""FastWorker-style calls: blocking submit(), non-blocking delay(), callbacks, polling get_result().

FastWorker                                   PrismQ Desktop
  result = await client.submit_task(...)       result = await orch.submit(script, args, priority="high")
  task_id = await client.delay(...)            run_id = orch.delay(script, args)   # a plain method; the loop must run
  delay_with_callback(...)                     orch.delay(script, args, callback=fn)  # sync or async, called once
  await client.get_task_result(task_id)        orch.get_result(run_id)   # None while pending
                                               await orch.wait(run_id, timeout=...), orch.cancel(run_id)

Usage:  python examples/fastworker_style.py [DATA_DIR]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator, TaskResult
from prismq_desktop.core.patterns import Priority

SCRIPTS = Path(__file__).resolve().parent / "scripts"
EMAIL = SCRIPTS / "send_email.py"
ITEM = SCRIPTS / "process_item.py"


async def main(data_dir: str) -> int:
    async with TaskOrchestrator(data_dir, max_concurrent=4) as orch:
        # blocking: waits for the result
        result = await orch.submit(ITEM, ["report.csv"], priority=Priority.HIGH)
        print(f"submit -> {result.outcome.describe()}: {result.stdout}")

        # non-blocking: the id comes back at once, the run goes on in the background
        run_id = orch.delay(EMAIL, ["--to", "new.user@example.com"])
        print(f"delay -> run #{run_id}; get_result now: {orch.get_result(run_id)}")
        while (res := orch.get_result(run_id)) is None:  # Option 1: poll (at a reasonable interval)
            await asyncio.sleep(0.1)
        print(f"polled -> {res.stdout}")

        # Option 2: callbacks, sync or async, called exactly once with the final TaskResult
        done = asyncio.Event()
        got: list[str] = []

        def on_done(r: TaskResult) -> None:
            got.append(f"callback got run #{r.run_id}: {r.stdout}")

        async def on_done_async(r: TaskResult) -> None:
            got.append(f"async callback got run #{r.run_id}: {r.outcome.describe()}")
            done.set()

        orch.delay(EMAIL, ["--to", "a@example.com"], callback=on_done)
        orch.delay(ITEM, ["corrupt.bin"], callback=on_done_async, priority="low")
        await asyncio.wait_for(done.wait(), 30)
        while len(got) < 2:
            await asyncio.sleep(0.05)
        print("\n".join(sorted(got)))

        # batch: submit many at once, collect later
        ids = [orch.delay(ITEM, [f"item{i}"]) for i in range(8)]
        print(f"submitted {len(ids)} runs")
        while True:
            finished = sum(orch.get_result(i) is not None for i in ids)
            print(f"Progress: {finished}/{len(ids)}")
            if finished == len(ids):
                break
            await asyncio.sleep(0.25)

        # timeouts and cancellation
        slow = orch.delay(SCRIPTS / "train_model.py", ["--epochs", "50"])
        try:
            await orch.wait(slow, timeout=0.2)
        except TimeoutError:
            print(f"run #{slow} still pending after 0.2 s; cancelling: {orch.cancel(slow)}")
        print(f"run #{slow}: {(await orch.wait(slow)).outcome.describe()}")
        return 0


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(asyncio.run(main(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(asyncio.run(main(tmp)))
