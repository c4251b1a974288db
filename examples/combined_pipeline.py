"""The guide's "Combining patterns" example: periodic cleanup, a concurrent batch, a notification.

Guide:  await orchestrator.execute(script_path=Path("cleanup.py"), pattern=TaskPattern.PERIODIC, interval_seconds=3600)
        results = await orchestrator.execute(script_path=Path("process_videos.py"), pattern=TaskPattern.CONCURRENT,
                                             concurrent_tasks=5, tasks=video_list)
        await orchestrator.execute(script_path=Path("notify.py"), pattern=TaskPattern.FIRE_AND_FORGET,
                                   wait_for_result=False)
Here:   the same three calls on one orchestrator: one queue and one concurrency limit for all of them.

Usage:  python examples/combined_pipeline.py [DATA_DIR]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from prismq_desktop.core.orchestrator.orchestrator import PatternUnavailable, TaskOrchestrator
from prismq_desktop.core.patterns import TaskPattern

SCRIPTS = Path(__file__).resolve().parent / "scripts"


async def main(data_dir: str) -> int:
    videos = [f"video{i}.mp4" for i in range(5)]
    async with TaskOrchestrator(data_dir, max_concurrent=3) as orch:
        # 1. periodic cleanup (hourly: it will not fire while this example runs)
        try:
            cleanup = await orch.execute(SCRIPTS / "cleanup.py", pattern=TaskPattern.PERIODIC, interval_seconds=3600)
            print(f"1. cleanup scheduled as schedule #{cleanup.schedule_id}")
        except PatternUnavailable as exc:
            print(f"1. PatternUnavailable: {exc}")
        # 2. concurrent batch
        batch = await orch.execute(SCRIPTS / "process_item.py", pattern=TaskPattern.CONCURRENT, concurrent_tasks=5,
                                   tasks=[[v] for v in videos])
        print(f"2. processed {sum(r.ok for r in batch.results)}/{len(videos)} videos")
        # 3. notification, not awaited
        note = await orch.execute(SCRIPTS / "send_email.py", args=["--to", "team@example.com", "--subject", "videos done"],
                                  pattern=TaskPattern.FIRE_AND_FORGET, wait_for_result=False)
        print(f"3. notification run #{note.run_id} is {note.status.value}")
        final = await orch.wait(note.run_id, timeout=30)
        print(f"   later: {final.stdout}")
        return 0 if batch.ok and final.ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(asyncio.run(main(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(asyncio.run(main(tmp)))
