"""What people read: statuses in words, signals by name, plurals, and the line a run ends with."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import psutil
import pytest

from prismq_desktop.core import RunEngine, RunSpec
from prismq_desktop.core.models import Outcome, OutcomeKind, Run, RunStatus
from prismq_desktop.core.wording import duration_text, end_line, exit_text, plural, status_text

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def done(outcome: Outcome, seconds: float = 20.6, **kw) -> Run:
    return Run(id=1, spec=RunSpec("job.py"), status=RunStatus.DONE, outcome=outcome, started_at=100.0,
               ended_at=100.0 + seconds, **kw)


@pytest.mark.parametrize(("outcome", "cell", "line"), [
    (Outcome(OutcomeKind.SUCCEEDED, 0), "succeeded", "exited with code 0 after 20.6 s"),
    (Outcome(OutcomeKind.FAILED, 1), "failed (1)", "exited with code 1 after 20.6 s"),
    (Outcome(OutcomeKind.FAILED, -15, "killed by SIGTERM"), "failed (SIGTERM)", "killed by SIGTERM after 20.6 s"),
    (Outcome(OutcomeKind.FAILED_TO_START, None, "cannot start x: No such file"), "failed to start",
     "failed to start: cannot start x: No such file"),
    (Outcome(OutcomeKind.CANCELLED, -15, "cancelled by the user (tree of 5 processes stopped)"), "cancelled",
     "cancelled after 20.6 s (tree of 5 processes stopped)"),
    (Outcome(OutcomeKind.TIMED_OUT, -15, "soft timeout of 60s reached"), "timed out", "timed out after 20.6 s"),
    (Outcome(OutcomeKind.DEPENDENCY_FAILED, None, "run #3 it depends on failed (2)"), "dependency failed",
     "dependency failed after 20.6 s: run #3 it depends on failed (2)"),
])
def test_outcomes_in_words(outcome, cell, line):
    run = done(outcome)
    assert status_text(run) == cell and "_" not in cell
    assert end_line(run) == line


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_counts_signals_and_durations():
    assert plural(1, "run") == "1 run" and plural(0, "run") == "0 runs" and plural(1204, "run") == "1,204 runs"
    assert plural(1, "process", "processes") == "1 process" and plural(5, "process", "processes") == "5 processes"
    if sys.platform != "win32":
        assert exit_text(-15) == "SIGTERM" and exit_text(-9) == "SIGKILL"
    assert exit_text(3) == "3" and exit_text(None) == ""
    assert duration_text(0.04) == "0.0 s" and duration_text(187) == "3m 07s" and duration_text(7500) == "2h 05m"
    assert duration_text(float("nan")) == "" and duration_text(float("inf")) == "" and duration_text(-3) == "0.0 s"
    assert status_text(Run(id=2, spec=RunSpec("a.py"), not_before=5.0)) == "waiting to retry"


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_a_cancelled_tree_says_how_many_processes_were_stopped(home):
    async def main():
        async with RunEngine(home) as engine:
            handle = await engine.start(RunSpec(str(SCRIPTS / "tree.py"), ("2",)))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15

            def pids() -> list[int]:
                return [int(line.split()[1]) for line in handle.stdout().splitlines() if line.startswith("pid ")]

            while len(pids()) < 4:  # 2 children, each with a grandchild
                assert loop.time() < deadline, handle.stdout()
                await asyncio.sleep(0.02)
            tree = pids()
            handle.cancel()
            run = await handle.wait()
            assert run.outcome.kind is OutcomeKind.CANCELLED
            assert end_line(run).startswith("cancelled after ")
            assert end_line(run).endswith("(tree of 5 processes stopped)")
            assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in tree)
            assert run.outcome.exit_code == -signal.SIGTERM

    asyncio.run(main())
