"""A dead letter is requeued once, even when two processes requeue it at the same instant.

Real registry files, real second connections and real CLI processes; the requeue's mark on the
dead letter is made first inside the run's own transaction, so the second claimant stores nothing.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prismq_desktop.core import RunSpec
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.core.store.schema import RequeueTaken

PY = sys.executable
REPO = Path(__file__).resolve().parents[3]
FAILS = RunSpec(PY, ("-S", "-c", "raise SystemExit(3)"), name="doomed")


def a_dead_letter(home: Path) -> int:
    async def main() -> int:
        async with TaskOrchestrator(home) as orch:
            await orch.submit(FAILS, max_retries=1, backoff_base=0.01)
            [entry] = orch.dead_letters()
            return entry.id
    return asyncio.run(main())


def test_the_second_claim_on_one_dead_letter_stores_nothing(home: Path) -> None:
    dl = a_dead_letter(home)
    first, second = RunRegistry(home / "registry.sqlite3"), RunRegistry(home / "registry.sqlite3")
    try:
        before = first.count()
        a = first.new_run(FAILS, options={"requeue_of": dl})
        b = second.new_run(FAILS, options={"requeue_of": dl})  # both checked "not requeued yet"
        first.insert([a])
        with pytest.raises(RequeueTaken, match=f"dead letter #{dl} was already requeued as run #{a.id}"):
            second.insert([b])
        assert second.count() == before + 1 and second.dead_letter(dl).requeued_run_id == a.id
    finally:
        first.close()
        second.close()


def test_two_cli_processes_requeueing_at_once_start_one_run(home: Path) -> None:
    dl = a_dead_letter(home)
    with RunRegistry(home / "registry.sqlite3") as reg:
        before = reg.count()
    at = time.time() + 2.0
    starter = ("import sys, time, runpy; at = float(sys.argv.pop(1)); time.sleep(max(0.0, at - time.time())); "
               "sys.argv[0] = 'prismq-desktop'; runpy.run_module('prismq_desktop', run_name='__main__')")
    procs = [subprocess.Popen([PY, "-c", starter, str(at), "--data-dir", str(home), "dead-letters", "--requeue", str(dl)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    with RunRegistry(home / "registry.sqlite3") as reg:
        assert reg.count() == before + 2, outs  # one new chain: its two attempts, not four
        assert reg.dead_letter(dl).requeued_run_id is not None
    loser = [o for o, p in zip(outs, procs, strict=True) if "already requeued" in o[1]]
    assert len(loser) == 1, outs
    assert "Traceback" not in loser[0][1] and len(loser[0][1].strip().splitlines()) == 1, loser
    assert codes[0] != 0 or codes[1] != 0  # the loser exits non-zero (the winner with the run's code 3)
