"""Runs and History models over a real registry and real runs: live History, peaks kept, words."""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from prismq_desktop.core import RunSpec, RunStatus
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.gui.bridge import Bridge
from prismq_desktop.gui.models import HistoryModel, RunsModel, human_bytes
from tests.gui.test_window import close, run_qt, until, window_for

PY = sys.executable
SCRIPTS = Path(__file__).parent.parent / "scripts"


def consistent(model: HistoryModel) -> None:
    """The loaded rows are exactly the first rows of the SQL result, and the total is its count."""
    reg = model.registry
    expected = reg.query(replace(model.query(), limit=max(1, len(model._runs))))
    assert [r.id for r in model._runs] == [r.id for r in expected][: len(model._runs)]
    assert [r.status for r in model._runs] == [r.status for r in expected][: len(model._runs)]
    assert model.total == reg.count(model.query())


@pytest.mark.parametrize("view", ["newest", "by_status", "succeeded_only", "by_name_paged"])
def test_history_is_live_for_real_runs(qapp, qtmodeltester, home, view, monkeypatch):
    monkeypatch.setattr(HistoryModel, "PAGE", 10)  # 30 old runs: three pages
    spec_ok = RunSpec(str(SCRIPTS / "hello.py"), ("0",), interpreter=PY)
    spec_bad = RunSpec(str(SCRIPTS / "hello.py"), ("3",), interpreter=PY)

    async def main():
        async with TaskOrchestrator(home, max_concurrent=3) as orch:
            old = [orch.delay(replace(spec_ok, name=f"old{i:03d}")) for i in range(30)]
            for run_id in old[-3:]:
                await orch.wait(run_id)
            await until(lambda: not orch.engine.active(), timeout=60)
            model = HistoryModel(orch.registry)
            if view == "by_status":
                model.sort(4, Qt.SortOrder.AscendingOrder)
            elif view == "succeeded_only":
                model.set_filter(statuses=["succeeded"])
            elif view == "by_name_paged":
                model.sort(1, Qt.SortOrder.AscendingOrder)  # new runs sort among the first page and after it
            resets = []
            model.modelAboutToBeReset.connect(lambda: resets.append(1))
            qtmodeltester.check(model, force_py=True)  # stays connected: checks every insert/move/change
            bridge = Bridge(orch)
            bridge.runChanged.connect(model.upsert)
            try:
                new = [orch.delay(replace(spec_ok if i % 2 else spec_bad, name=f"new{i}" if i % 3 else f"aaa{i}"))
                       for i in range(12)]
                for run_id in new:
                    await orch.wait(run_id)
                await until(lambda: all(not r.is_active for r in model._runs))
                consistent(model)
                while model.canFetchMore():
                    model.fetchMore()
                consistent(model)
                assert len({r.id for r in model._runs}) == len(model._runs) == model.total
                return resets, model.total, new
            finally:
                bridge.close()

    resets, total, new = run_qt(qapp, main())
    assert not resets  # live updates never reset the model
    expected = {"newest": 42, "by_status": 42, "by_name_paged": 42, "succeeded_only": 36}[view]
    assert total == expected


def test_history_upsert_stays_cheap_with_100000_runs(qtmodeltester, home):
    reg = RunRegistry(home / "registry.sqlite3")
    try:
        batch = [reg.new_run(RunSpec(f"job{i % 97}.py")) for i in range(100_000)]
        reg.insert(batch)
        model = HistoryModel(reg)
        assert model.total == 100_000 and model.rowCount() == HistoryModel.PAGE
        resets = []
        model.modelAboutToBeReset.connect(lambda: resets.append(1))
        inserted = []
        model.rowsInserted.connect(lambda _p, first, last: inserted.append((first, last)))
        fresh = [reg.create(RunSpec("fresh.py")) for _ in range(1000)]
        started = time.perf_counter()
        for run in fresh:
            model.upsert(run)
        for run in fresh:  # and every one changes (queued -> done): rows updated in place
            model.upsert(run.with_changes(progress=0.5))
        per_upsert = (time.perf_counter() - started) / 2000
        assert per_upsert < 0.001, f"{per_upsert * 1e6:.0f} µs per upsert"
        assert not resets
        assert inserted == [(0, 0)] * 1000  # newest first: each new run on top
        assert model.total == 101_000 and model.rowCount() == HistoryModel.PAGE + 1000
        model.fetchMore()  # paging goes on where the loaded rows end
        assert model.rowCount() == 2 * HistoryModel.PAGE + 1000
        assert len({r.id for r in model._runs}) == model.rowCount()
        model.sort(0, Qt.SortOrder.AscendingOrder)  # oldest first: new runs belong to the last page
        late = reg.create(RunSpec("late.py"))
        model.upsert(late)
        assert model.total == 101_001 and model.rowCount() == HistoryModel.PAGE  # counted, fetched with its page
        qtmodeltester.check(model, force_py=True)
        consistent(model)
    finally:
        reg.close()


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_runs_table_keeps_peaks_and_both_tables_speak_words(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            busy = orch.delay(RunSpec(PY, ("-S", "-c", "import time\nt=time.time()\nx=bytearray(30_000_000)\n"
                                                         "while time.time()-t<2.2: pass")))
            killed = orch.delay(RunSpec(PY, ("-S", "-c", f"import os; os.kill(os.getpid(), {int(signal.SIGTERM)})")))
            missing = orch.delay(RunSpec(str(home / "no_such_script.py"), interpreter=PY))
            for run_id in (busy, killed, missing):
                await orch.wait(run_id)
            await until(lambda: all(not win.runs_model.run_at(r).is_active for r in range(3)))
            m = win.runs_model
            rows = {m.run_at(r).id: r for r in range(m.rowCount())}
            busy_run = m.run_at(rows[busy])
            cells = {rid: [m.data(m.index(row, c)) for c in range(len(m.COLUMNS))] for rid, row in rows.items()}
            h = win.history_model
            hist = {h.run_at(r).id: [h.data(h.index(r, c)) for c in range(len(h.COLUMNS))] for r in range(h.rowCount())}
            return busy_run, cells, hist, h.count_text()
        finally:
            await close(orch, win)

    busy_run, cells, hist, count_text = run_qt(qapp, main())
    busy_id = busy_run.id
    assert busy_run.peak_rss is not None and busy_run.peak_cpu is not None
    assert cells[busy_id][6] == human_bytes(busy_run.peak_rss)  # RSS kept after the end (the peak)
    assert cells[busy_id][5] == f"{busy_run.peak_cpu:.0f}%"
    assert hist[busy_id][9] == human_bytes(busy_run.peak_rss) and hist[busy_id][8] == f"{busy_run.peak_cpu:.0f}%"
    statuses = sorted(row[2] for row in cells.values())
    assert statuses == ["failed (SIGTERM)", "failed to start", "succeeded"]
    assert sorted(row[4] for row in hist.values()) == statuses
    killed_row = [row for row in hist.values() if row[4] == "failed (SIGTERM)"][0]
    assert killed_row[7] == "SIGTERM"
    assert count_text == "3 runs"


def test_status_words_for_a_run_that_failed_to_start():
    from prismq_desktop.core.models import Outcome, OutcomeKind, Run, transition

    model = RunsModel()
    run = Run(id=1, spec=RunSpec("x.py"), created_at=time.time())
    model.upsert(run)
    done = transition(run, RunStatus.DONE, Outcome(OutcomeKind.FAILED_TO_START, None, "no such file: x.py"))
    model.upsert(done)
    assert model.data(model.index(0, 2)) == "failed to start"
    assert model.data(model.index(0, 2), Qt.ItemDataRole.ToolTipRole) == "no such file: x.py"
