"""Pattern 6 - Pooled: many short runs on warm workers. Not in this build yet.

Guide:  result = await orchestrator.execute(script_path=Path("query_db.py"), args=["--query", "SELECT * FROM users"],
            pattern=TaskPattern.POOLED, use_pool=True)
Here:   the same call raises PatternUnavailable with a clear message and creates nothing in the registry.
        This example prints that message, shows what the advisor says about the pattern, and runs the
        query as a SIMPLE run instead.

Usage:  python examples/pattern6_pooled.py [DATA_DIR]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from prismq_desktop.core.orchestrator import PatternUnavailable, TaskOrchestrator
from prismq_desktop.core.patterns import PatternAdvisor, TaskPattern

SCRIPTS = Path(__file__).resolve().parent / "scripts"


async def main(data_dir: str) -> int:
    args = ["--query", "SELECT * FROM users"]
    async with TaskOrchestrator(data_dir) as orch:
        try:
            result = await orch.execute(SCRIPTS / "query_db.py", args=args, pattern=TaskPattern.POOLED, use_pool=True)
        except PatternUnavailable as exc:
            print(f"PatternUnavailable: {exc}")
            print(f"runs in the registry: {orch.registry.count()}")
        else:
            print(f"pooled run #{result.run_id}: {result.stdout!r}")
        advice = PatternAdvisor.recommend(high_frequency=True)
        info = PatternAdvisor.explain(advice.pattern)
        print(f"advisor: {advice.pattern.value} - {advice.reason}")
        print(f"  when: {info.when_to_use}")
        print(f"  limitations: {', '.join(info.limitations)}")
        fallback = await orch.execute(SCRIPTS / "query_db.py", args=args)
        print(f"as a SIMPLE run instead: exit {fallback.exit_code}, rows: {fallback.stdout.splitlines()}")
        return 0 if fallback.ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(asyncio.run(main(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(asyncio.run(main(tmp)))
