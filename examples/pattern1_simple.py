"""Pattern 1 - Simple: a quick task whose whole result you await (the guide's data validation).

Guide:  exit_code, stdout, stderr = await orchestrator.execute(
            script_path=Path("validate_data.py"), args=["--source", "data.csv"], pattern=TaskPattern.SIMPLE)
Here:   result = await orch.execute(script, args=["--source", "data.csv"], pattern=TaskPattern.SIMPLE)
        (one TaskResult with exit_code, stdout, stderr, outcome and run_id)

Usage:  python examples/pattern1_simple.py [DATA_DIR]     (default: a temporary directory)
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
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    good = Path(data_dir) / "data.csv"
    good.write_text("name,email\nada,ada@example.com\ngrace,grace@example.com\n")
    bad = Path(data_dir) / "broken.csv"
    bad.write_text("name,email\nlinus,not-an-address\n")

    async with TaskOrchestrator(data_dir) as orch:
        result = await orch.execute(SCRIPTS / "validate_data.py", args=["--source", str(good)],
                                    pattern=TaskPattern.SIMPLE)
        if result.exit_code == 0:
            print(f"Success: {result.stdout}")
        print(f"run #{result.run_id}: outcome={result.outcome.kind.value} exit_code={result.exit_code}")

        failed = await orch.execute(SCRIPTS / "validate_data.py", args=["--source", str(bad)])  # SIMPLE is the default
        print(f"Failure: exit_code={failed.exit_code} stdout={failed.stdout!r} stderr={failed.stderr!r}")
        return 0 if result.ok and not failed.ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(asyncio.run(main(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(asyncio.run(main(tmp)))
