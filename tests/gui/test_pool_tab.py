"""The Pool tab tells one story: warm workers are listed (or it says when they will start), and
the rows' "Runs served" add up to the total, recycled workers included. Real pooled runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from prismq_desktop.core.pool import pool_supported
from tests.gui.test_window import close, run_qt, until, window_for

# POSIX-only: the fork server (the Windows pool is tested in tests/core/process/test_windows.py)
pytestmark = [pytest.mark.posix_only, pytest.mark.skipif(not pool_supported(), reason="no fork server here")]

PY = sys.executable
SCRIPTS = Path(__file__).parent.parent / "scripts"


def rows(view) -> list[list[str]]:
    t = view.workers
    return [[t.item(r, c).text() for c in range(t.columnCount())] for r in range(t.rowCount())]


def test_the_tab_says_workers_start_with_the_first_pooled_run_and_lists_them_warm(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            view = win.pool_widget
            view.refresh()
            before = view.summary.text(), view.workers.rowCount(), not view.start_button.isHidden()
            view.start_button.click()
            assert await orch.pool.wait_ready()
            view.refresh()
            return before, view.summary.text(), rows(view), view.start_button.isHidden()
        finally:
            await close(orch, win)

    (summary0, rows0, button0), summary, listed, button_hidden = run_qt(qapp, main())
    assert summary0.startswith("2 workers start with the first pooled run") and rows0 == 0 and button0
    assert [r[1] for r in listed] == ["idle", "idle"] and all(r[0].isdigit() for r in listed)
    assert [r[2] for r in listed] == ["0", "0"]
    assert summary.startswith("0 busy · 2 idle · 0 queued · 0 runs served") and button_hidden


def test_rows_add_up_to_the_total_across_recycled_workers(qapp, home):
    n = 5

    async def main():
        orch, win = await window_for(home)
        try:
            orch.pool.resize(1)
            orch.pool.max_runs_per_worker = 2  # the worker is replaced after every second run
            view = win.pool_widget
            results = [await orch.execute(str(SCRIPTS / "hello.py"), ["0", f"run{i}"], use_pool=True, interpreter=PY)
                       for i in range(n)]
            assert all(r.ok for r in results), [r.outcome for r in results]
            await until(lambda: len(orch.pool.stats().workers) == 1)
            view.refresh()
            return orch.pool.stats(), rows(view), view.summary.text(), view.retired.text(), view.retired.isHidden()
        finally:
            await close(orch, win)

    stats, listed, summary, retired, retired_hidden = run_qt(qapp, main())
    shown_rows = sum(int(r[2]) for r in listed)
    assert stats.runs_served == n == sum(w.runs_served for w in stats.workers) + stats.retired_served
    assert shown_rows == 1 and stats.retired_served == 4 and stats.recycled == 2
    assert f"{n} runs served" in summary
    assert not retired_hidden and retired.startswith(f"4 runs of the {n} served ran in workers that are gone since")
    assert "2 recycled" in retired


def test_one_pooled_run_says_one_run(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            result = await orch.execute(str(SCRIPTS / "hello.py"), ["0", "once"], use_pool=True, interpreter=PY)
            assert result.ok
            view = win.pool_widget
            view.refresh()
            return view.summary.text(), rows(view)
        finally:
            await close(orch, win)

    summary, listed = run_qt(qapp, main())
    assert "1 run served" in summary and "1 runs" not in summary
    assert sum(int(r[2]) for r in listed) == 1
