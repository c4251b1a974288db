"""Pattern 3 - Concurrent: a batch of independent runs under a limit, results in input order.

Guide:  results = await orchestrator.execute(script_path=Path("process_item.py"), args=["--batch"],
            pattern=TaskPattern.CONCURRENT, concurrent_tasks=10, max_concurrent=10, tasks=[item1, item2, ...])
Here:   batch = await orch.execute(script, args=["--batch"], pattern=TaskPattern.CONCURRENT,
            tasks=[["img1.png"], ["img2.png"], ...], max_concurrent=3)
        Each item is an argument list (or a RunSpec) appended to args; batch.results has one TaskResult
        per item, in input order; one failure does not stop the rest unless fail_fast=True.

Usage:  python examples/pattern3_concurrent.py [DATA_DIR]
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
    items = ["img1.png", "img2.png", "corrupt3.png", "img4.png", "img5.png", "img6.png"]
    async with TaskOrchestrator(data_dir) as orch:
        batch = await orch.execute(SCRIPTS / "process_item.py", args=["--batch"], pattern=TaskPattern.CONCURRENT,
                                   concurrent_tasks=len(items), max_concurrent=3, tasks=[[item] for item in items])
        for item, result in zip(items, batch.results, strict=True):
            detail = result.stdout or result.stderr
            print(f"{item:14} exit={result.exit_code} {detail}")
        ok = sum(r.ok for r in batch.results)
        print(f"{ok} of {len(items)} items succeeded; batch outcome: {batch.outcome.describe()}")

        fast = await orch.execute(SCRIPTS / "process_item.py", tasks=[["corrupt0.png"], ["a.png"], ["b.png"]],
                                  max_concurrent=1, fail_fast=True)  # tasks= alone selects CONCURRENT
        print("with fail_fast:", ", ".join(r.outcome.kind.value for r in fast.results))
        return 0 if ok == len(items) - 1 else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(asyncio.run(main(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(asyncio.run(main(tmp)))
