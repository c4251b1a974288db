"""Scheduler, concurrency, gauges, notifications and settings views with real runs and schedules."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDialogButtonBox

from prismq_desktop.core import OutcomeKind, RunSpec
from prismq_desktop.core.schedule.scheduler import make_trigger
from tests.gui.test_window import close, run_qt, until, window_for

PY = sys.executable
SCRIPTS = Path(__file__).parent.parent / "scripts"


def test_scheduler_tab_lists_edits_runs_now_and_shows_history(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            view = win.scheduler_view
            editor = view.new()
            editor.name.setText("tick")
            editor.target.setText(PY)
            editor.args.setText("-S -c \"print('tock')\"")
            editor.kind.setCurrentIndex(1)
            editor.cron.setText("99 * * * *")
            bad_preview = editor.preview.text()
            save = editor.buttons.button(QDialogButtonBox.StandardButton.Save)
            bad_enabled = save.isEnabled()
            editor.cron.setText("*/5 * * * *")
            good_preview = editor.preview.text()
            save.click()
            await until(lambda: view.model.rowCount() == 1)
            row = [view.model.data(view.model.index(0, c)) for c in range(5)]
            view.table.selectRow(0)
            run_id = view.run_now()
            assert run_id is not None
            result = await orch.wait(run_id)
            view.refresh()
            await until(lambda: view.history.rowCount() == 1)
            # the enabled switch
            view.model.setData(view.model.index(0, 4), Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
            disabled = orch.scheduler.get("tick").enabled
            return bad_preview, bad_enabled, good_preview, row, result, disabled
        finally:
            await close(orch, win)

    bad_preview, bad_enabled, good_preview, row, result, disabled = run_qt(qapp, main())
    assert "invalid cron expression" in bad_preview and not bad_enabled
    assert "every 5 minutes" in good_preview and good_preview.count("<br>") == 5  # words + the next five fires
    assert row[0] == "tick" and row[1] == "every 5 minutes" and "(in " in row[2] and row[4] == "on"
    assert result.ok and result.stdout == "tock" and result.run.trigger == "run now"
    assert disabled is False


@pytest.mark.usefixtures("fast_intervals")
def test_skipped_fires_show_in_the_schedule_history(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            orch.scheduler.add("slow", RunSpec(PY, ("-S", "-c", "import time; time.sleep(1.0)")),
                               make_trigger(interval_seconds=0.3))
            orch.scheduler.start()
            win.scheduler_view.refresh()
            win.scheduler_view.table.selectRow(0)
            await asyncio.sleep(1.6)
            await orch.scheduler.stop()
            win.scheduler_view.refresh()
            model = win.scheduler_view.history
            states = [model.data(model.index(r, 4)) for r in range(model.rowCount())]
            return states
        finally:
            await close(orch, win)

    states = run_qt(qapp, main())
    assert "skipped" in states


def test_concurrency_view_changes_the_limit_live_and_reorders_the_queue(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            view = win.concurrency_view
            view.limit.setValue(1)
            assert orch.max_concurrent == 1
            blocker = orch.delay(RunSpec(PY, ("-S", "-c", "import time; time.sleep(30)")))
            low = orch.delay(RunSpec(PY, ("-S", "-c", "pass"), name="low"), priority="low")
            urgent = orch.delay(RunSpec(PY, ("-S", "-c", "pass"), name="urgent"), priority="low")
            await until(lambda: orch.running_count == 1)
            view.refresh()
            before = [view.queue.item(r, 1).text() for r in range(view.queue.rowCount())]
            view.queue.selectRow(1)
            view.priority.setCurrentText("critical")
            view.findChild(object, "setPriorityButton").click()
            after = [view.queue.item(r, 1).text() for r in range(view.queue.rowCount())]
            # the selection follows the run it was on, not its old row number
            selected_after = [view.queue.item(i.row(), 1).text() for i in view.queue.selectionModel().selectedRows()]
            assert selected_after == ["urgent"], selected_after
            # raising the limit starts queued runs at once
            view.limit.setValue(3)
            await until(lambda: orch.queue_length == 0)
            for rid in (low, urgent):
                await orch.wait(rid, timeout=20)  # they ran while the blocker still held its slot
            started = {rid: orch.registry.get(rid).started_at for rid in (low, urgent)}
            orch.cancel(blocker)
            await orch.wait(blocker)
            return before, after, started
        finally:
            await close(orch, win)

    before, after, started = run_qt(qapp, main())
    assert before == ["low", "urgent"] and after == ["urgent", "low"]
    assert all(started.values())


def test_gauges_and_sparklines_fill_from_real_samples(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            orch.engine.monitor.interval = 0.2
            run_id = orch.delay(RunSpec(str(SCRIPTS / "ticker.py"), interpreter=PY))
            await until(lambda: win.concurrency_view.system.samples >= 3, 10)
            win.concurrency_view.refresh()
            await until(lambda: run_id in win.concurrency_view.lines and
                        len(win.concurrency_view.lines[run_id][1].values) >= 2, 10)
            cores = len(win.concurrency_view.system.cores)
            mem = win.concurrency_view.system.mem.value()
            cpu_text = win.runs_model.data(win.runs_model.index(0, 5))
            orch.cancel(run_id)
            await orch.wait(run_id)
            return cores, mem, cpu_text
        finally:
            await close(orch, win)

    import os

    cores, mem, cpu_text = run_qt(qapp, main())
    assert cores == os.cpu_count()
    assert 0 < mem <= 100
    assert cpu_text.endswith("%")


def test_failure_notification_and_settings_persist(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            run_id = orch.delay(RunSpec(PY, ("-S", "-c", "import sys; sys.exit(4)")))
            await orch.wait(run_id)
            await until(lambda: win.last_notification is not None)
            failed_note = win.last_notification
            dialog = win.open_settings()
            dialog.max_concurrent.setValue(7)
            dialog.pane_limit.setValue(1234)
            dialog.theme.setCurrentText("dark")
            dialog.notify_ok.setChecked(True)
            dialog.save()
            ok_id = orch.delay(RunSpec(PY, ("-S", "-c", "pass")))
            await orch.wait(ok_id)
            await until(lambda: win.last_notification != failed_note)
            return failed_note, win.last_notification, orch.max_concurrent
        finally:
            await close(orch, win)

    failed_note, ok_note, limit = run_qt(qapp, main())
    assert "failed (4)" in failed_note
    assert "succeeded" in ok_note
    assert limit == 7
    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    assert int(settings.value("view/pane_line_limit")) == 1234 and settings.value("view/theme") == "dark"
    from prismq_desktop.gui.settings_dialog import apply_theme

    apply_theme("system")


def test_dead_letters_requeue_and_purge_from_the_view(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            run_id = orch.delay(RunSpec(PY, ("-S", "-c", "import sys; sys.exit(2)")), max_retries=1, backoff_base=0.05)
            result = await orch.wait(run_id)
            view = win.concurrency_view
            view.refresh()
            listed = view.dead.rowCount()
            view.dead.selectRow(0)
            view.findChild(object, "requeueButton").click()
            await until(lambda: len(orch.dead_letters()) == 1 and orch.queue_length == 0 and orch.running_count == 0, 20)
            await until(lambda: view.dead.rowCount() == 1 or (view.refresh() or False), 20)
            view.dead.selectRow(0)
            view.findChild(object, "purgeButton").click()
            return result, listed, view.dead.rowCount(), orch.dead_letters()
        finally:
            await close(orch, win)

    result, listed, rows_after, left = run_qt(qapp, main())
    assert result.outcome.kind is OutcomeKind.FAILED and result.attempts == 2
    assert listed == 1 and rows_after == 0 and left == []


def test_pool_view_shows_workers_and_resizes(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            result = await orch.execute(str(SCRIPTS / "hello.py"), ["0", "warm"], use_pool=True, interpreter=PY)
            assert result.ok and result.stdout.startswith("hello warm"), result.outcome
            view = win.pool_widget
            view.refresh()
            rows = view.workers.rowCount()
            states = {view.workers.item(r, 1).text() for r in range(rows)}
            summary = view.summary.text()
            view.size_spin.setValue(3)
            await until(lambda: (view.refresh() or True) and view.workers.rowCount() == 3, 20)
            return rows, states, summary, orch.pool.stats().size
        finally:
            await close(orch, win)

    rows, states, summary, size = run_qt(qapp, main())
    assert rows == 2 and states <= {"idle", "busy", "starting"}
    assert "1 run served" in summary
    assert size == 3
