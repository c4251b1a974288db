"""The History tab and saved tasks over the shared services: real runs, real logs, a real qasync loop."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from prismq_desktop.core import RunSpec, RunStatus
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.gui.app import apply_saved_retention
from tests.gui.test_window import close, run_qt, until, window_for

PY = sys.executable


async def finished(orch, win, n: int) -> list[int]:
    ids = [orch.delay(RunSpec(PY, ("-S", "-c", f"print('run {i}')"), name=f"h{i}")) for i in range(n)]
    await until(lambda: all((r := orch.engine.get(i)) is not None and r.status is RunStatus.DONE
                            and r.log_path and Path(r.log_path).is_file() for i in ids), 30)
    win.history_model.refresh()
    return ids


def test_delete_from_history_removes_rows_and_logs_but_not_active_runs(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            ids = await finished(orch, win, 2)
            sleeper = orch.delay(RunSpec(PY, ("-S", "-c", "import time; time.sleep(60)")))
            await until(lambda: orch.engine.get(sleeper).status is RunStatus.RUNNING)
            win.history_model.refresh()
            logs = [orch.engine.get(i).log_path for i in ids]
            win.history_table.selectAll()
            win.findChild(object, "historyDeleteButton").click()
            box = win.findChild(QMessageBox, "deleteHistoryDialog")
            assert box is not None and box.isVisible()
            assert "Delete 2 runs and their log files?" in box.text() and "1 active run" in box.text()
            assert orch.registry.get(ids[0]) is not None  # nothing deleted before the answer
            [yes] = [b for b in box.buttons() if b.text() == "Delete 2 runs"]
            yes.click()
            rows = {win.history_model.run_at(r).id for r in range(win.history_model.rowCount())}
            kept = orch.registry.get(sleeper)
            orch.cancel(sleeper)
            await until(lambda: orch.engine.get(sleeper).status is RunStatus.DONE)
            return ids, logs, rows, kept, [orch.registry.get(i) for i in ids]
        finally:
            await close(orch, win)

    ids, logs, rows, kept, gone = run_qt(qapp, main())
    assert gone == [None, None] and not any(Path(p).exists() for p in logs)
    assert kept is not None and kept.status is RunStatus.RUNNING and kept.id in rows and not set(ids) & rows


def test_apply_retention_says_how_many_before_deleting(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            ids = await finished(orch, win, 3)
            logs = {i: orch.engine.get(i).log_path for i in ids}
            win.keep_runs.setValue(1)
            box = win.confirm_retention()
            text = box.text()
            still_there = [orch.registry.get(i) is not None for i in ids]
            box.button(QMessageBox.StandardButton.Ok).click()
            after = [orch.registry.get(i) is not None for i in ids]
            count_text = win.history_count.text()
            nothing_left = win.confirm_retention()  # nothing beyond the policy: no question, applied at once
            saved = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat).value("history/keep_runs")
            return text, still_there, after, [Path(logs[i]).exists() for i in ids], count_text, nothing_left, saved
        finally:
            await close(orch, win)

    text, before, after, log_exists, count_text, nothing_left, saved = run_qt(qapp, main())
    assert "deletes 2 finished runs" in text
    assert before == [True, True, True] and after == [False, False, True] and log_exists == [False, False, True]
    assert "removed 2 runs and 2 log files" in count_text
    assert nothing_left is None and saved == 1


def test_saved_retention_is_applied_at_start_and_bad_values_are_skipped(qapp, home, caplog):
    async def main():
        orch, win = await window_for(home)
        try:
            return await finished(orch, win, 3)
        finally:
            await close(orch, win)

    ids = run_qt(qapp, main())
    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    with RunRegistry(home / "registry.sqlite3") as reg:
        settings.setValue("history/keep_runs", "soon")
        with caplog.at_level(logging.WARNING, logger="prismq_desktop"):
            assert apply_saved_retention(reg, settings) == 0
        assert "retention not applied: setting history/keep_runs is not a whole number: 'soon'" in caplog.text
        settings.setValue("history/keep_runs", "")
        settings.setValue("history/keep_days", 0)
        assert apply_saved_retention(reg, settings) == 0  # 0 / empty: keep everything
        settings.setValue("history/keep_runs", 2)
        logs = [reg.get(i).log_path for i in ids]
        assert apply_saved_retention(reg, settings) == 1
        assert reg.get(ids[0]) is None and not Path(logs[0]).exists() and reg.get(ids[2]) is not None


def test_an_unreadable_tasks_file_is_kept_aside_and_reported(qapp, home):
    (home / "tasks.json").write_text("{ broken")

    async def main():
        orch, win = await window_for(home)
        try:
            return win.tasks.names(), win.statusBar().currentMessage()
        finally:
            await close(orch, win)

    names, message = run_qt(qapp, main())
    assert names == [] and "tasks.json.corrupt" in message
    assert (home / "tasks.json.corrupt").read_text() == "{ broken"


def test_saved_tasks_from_the_window_live_in_the_store(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            win._store_task("  nightly ", RunSpec(PY, ("-c", "pass")), {"priority": "high"})
            win._duplicate_task("nightly")
            listed = [win.task_list.item(i).text() for i in range(win.task_list.count())]
            win._change_tasks(lambda: win.tasks.remove("nightly"))
            return listed, [win.task_list.item(i).text() for i in range(win.task_list.count())]
        finally:
            await close(orch, win)

    listed, after = run_qt(qapp, main())
    assert listed == ["nightly", "nightly (copy)"] and after == ["nightly (copy)"]
    from prismq_desktop.core.store.tasks import TaskStore

    assert TaskStore(home / "tasks.json").get("nightly (copy)") == (RunSpec(PY, ("-c", "pass")), {"priority": "high"})


def test_the_history_tab_indexes_noted_runs_while_idle_and_filters_them_the_same(qapp, home):
    import sqlite3

    from prismq_desktop.core import RunSpec as _Spec
    from prismq_desktop.core.store.query import RunQuery as _Query
    from tests.gui.test_window import close as _close
    from tests.gui.test_window import run_qt as _run_qt
    from tests.gui.test_window import until as _until
    from tests.gui.test_window import window_for as _window_for

    def noted() -> int:
        con = sqlite3.connect(str(home / "registry.sqlite3"))
        try:
            return int(con.execute("SELECT COUNT(*) FROM runs_fts_pending").fetchone()[0])
        finally:
            con.close()

    async def main():
        orch, win = await _window_for(home)
        try:
            reg = orch.registry
            reg.insert([reg.new_run(_Spec("/w/x.py", name=f"Idle Indexed {i}")) for i in range(4500)])
            before = (noted(), reg.count(_Query(text="idle indexed 44")))
            win.history_view.history_model.set_filter("indexed 44")
            shown_before = win.history_view.history_model.total
            await _until(lambda: noted() == 0, timeout=60)  # batches of INDEX_BATCH, while idle
            win.history_view.history_model.set_filter("indexed 44")
            return before, shown_before, win.history_view.history_model.total, reg.count(_Query(text="idle indexed 44"))
        finally:
            await _close(orch, win)

    before, shown_before, shown_after, after = _run_qt(qapp, main())
    assert before[0] >= 4500 and before[1] == 111 == after  # 44, 440-449, 4400-4499
    assert shown_before == shown_after == 111
