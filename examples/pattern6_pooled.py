"""Pattern 6 - Pooled: many short runs on warm workers (a fork server with modules preloaded).

Guide:  result = await orchestrator.execute(script_path=Path("query_db.py"), args=["--query", "SELECT * FROM users"],
            pattern=TaskPattern.POOLED, use_pool=True)
Here:   the same call; the run is an ordinary run in the registry (output, cancel, history) that started
        in a warm worker. The example runs it ten times and prints the pool's figures.

Usage:  python examples/pattern6_pooled.py [DATA_DIR]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from prismq_desktop.core.orchestrator.orchestrator import PatternUnavailable, TaskOrchestrator
from prismq_desktop.core.patterns import PatternAdvisor, TaskPattern

SCRIPTS = Path(__file__).resolve().parent / "scripts"


async def main(data_dir: str) -> int:
    args = ["--query", "SELECT * FROM users"]
    async with TaskOrchestrator(data_dir) as orch:
        try:
            result = await orch.execute(SCRIPTS / "query_db.py", args=args, pattern=TaskPattern.POOLED, use_pool=True)
        except PatternUnavailable as exc:
            print(f"PatternUnavailable: {exc}")
            return 1
        print(f"pooled run #{result.run_id}: {result.outcome.describe()}, rows: {result.stdout.splitlines()}")
        for _ in range(9):
            again = await orch.execute(SCRIPTS / "query_db.py", args=args, use_pool=True)
            assert again.ok, again.outcome
        stats = orch.pool.stats() if orch.pool else None
        if stats is not None:
            print(f"pool: {stats.runs_served} runs served by {len(stats.workers)} warm worker(s), "
                  f"mean start latency {stats.start_latency_mean_ms or 0:.1f} ms")
        print(f"runs in the registry: {orch.registry.count()}")
        advice = PatternAdvisor.recommend(high_frequency=True)
        info = PatternAdvisor.explain(advice.pattern)
        print(f"advisor: {advice.pattern.value} - {advice.reason}")
        print(f"  when: {info.when_to_use}")
        print(f"  limitations: {', '.join(info.limitations)}")
        return 0 if result.ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(asyncio.run(main(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(asyncio.run(main(tmp)))
