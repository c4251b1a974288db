"""Actions hit what the user is looking at: the run whose pane is in front, selected by run id."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
from PySide6.QtWidgets import QMessageBox, QPushButton

from prismq_desktop.core import OutcomeKind, RunStatus
from tests.gui.test_window import close, launch_from_form, run_qt, until, window_for

PY = sys.executable
SCRIPTS = Path(__file__).parent.parent / "scripts"


def test_cancel_right_after_launch_cancels_the_new_run(qapp, home, tmp_path):
    async def main():
        orch, win = await window_for(home)
        try:
            launch_from_form(win, str(SCRIPTS / "hello.py"), "0 first")
            await until(lambda: win.runs_model.rowCount() == 1 and not win.runs_model.run_at(0).is_active)
            first = win.runs_model.run_at(0)
            launch_from_form(win, str(SCRIPTS / "cli_gate.py"), str(tmp_path / "never"))
            await until(lambda: win.runs_model.rowCount() == 2)
            new = win.runs_model.run_at(0)
            assert new.id != first.id
            view = win.runs_view
            assert view.selected_run().id == new.id  # the pane in front and the selected row: the new run
            assert win.runs_table.currentIndex().row() == win.runs_model.row_of(new.id)
            await until(lambda: orch.engine.get(new.id).status is RunStatus.RUNNING)
            assert view.act_cancel.isEnabled()
            view.act_cancel.trigger()  # Ctrl+. right after Launch
            await until(lambda: not orch.engine.get(new.id) or not orch.engine.get(new.id).is_active)
            assert orch.registry.get(new.id).outcome.kind is OutcomeKind.CANCELLED
            assert orch.registry.get(first.id).outcome.kind is OutcomeKind.SUCCEEDED
        finally:
            await close(orch, win)

    run_qt(qapp, main())


def test_after_open_log_the_run_actions_target_that_run(qapp, home, tmp_path):
    async def main():
        orch, win = await window_for(home)
        try:
            launch_from_form(win, str(SCRIPTS / "hello.py"), "3 old")
            await until(lambda: win.runs_model.rowCount() == 1 and not win.runs_model.run_at(0).is_active)
            old = win.runs_model.run_at(0)
            launch_from_form(win, str(SCRIPTS / "cli_gate.py"), str(tmp_path / "gate"))
            await until(lambda: win.runs_model.rowCount() == 2)
            live = win.runs_model.run_at(0)
            win.open_run_log(orch.registry.get(old.id))  # History → Open log
            view = win.runs_view
            assert view.log_tabs.current_run_id() == old.id
            assert view.selected_run().id == old.id
            assert not view.act_cancel.isEnabled()  # the run shown is finished: nothing to cancel
            before = orch.registry.count()
            view.act_rerun.trigger()
            await until(lambda: orch.registry.count() == before + 1)
            rerun = max((r for r in orch.registry.query()), key=lambda r: r.id)
            assert rerun.spec == old.spec and rerun.id not in (old.id, live.id)
            (tmp_path / "gate").touch()
            await until(lambda: not orch.engine.active())
        finally:
            await close(orch, win)

    run_qt(qapp, main())


def test_cancel_all_asks_with_what_and_how_many(qapp, home, tmp_path):
    async def main():
        orch, win = await window_for(home)
        try:
            orch.set_max_concurrent(1)
            for i in range(3):
                launch_from_form(win, str(SCRIPTS / "cli_gate.py"), str(tmp_path / f"gate{i}"))
            await until(lambda: orch.running_count == 1 and orch.queue_length == 2)
            box = win.runs_view.cancel_all()
            assert isinstance(box, QMessageBox) and box.isVisible()
            assert "Cancel 3 runs?" in box.text() and "1 running run" in box.text() and "2 queued runs" in box.text()
            keep = [b for b in box.buttons() if b.text() == "Keep them"][0]
            keep.click()
            await until(lambda: not box.isVisible())
            assert orch.running_count == 1 and orch.queue_length == 2  # nothing was cancelled
            box = win.runs_view.cancel_all()
            yes = [b for b in box.buttons() if isinstance(b, QPushButton) and b.text() == "Cancel 3 runs"][0]
            yes.click()
            await until(lambda: not orch.engine.active())
            kinds = {r.outcome.kind for r in orch.registry.query()}
            assert kinds == {OutcomeKind.CANCELLED}
            assert not any(p.status() != psutil.STATUS_ZOMBIE for p in psutil.Process().children(recursive=True)
                           if "cli_gate" in " ".join(p.cmdline()))
        finally:
            await close(orch, win)

    run_qt(qapp, main())


def test_deleting_a_saved_task_asks_first_and_names_it(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            from prismq_desktop.core import RunSpec

            win.tasks.put("nightly backup", RunSpec(str(SCRIPTS / "hello.py")), {})
            panel = win.tasks_panel
            panel.refresh()
            box = panel.confirm_delete("nightly backup")
            assert "Delete the saved task 'nightly backup'?" in box.text()
            [keep] = [b for b in box.buttons() if b.text() == "Keep"]
            keep.click()
            assert "nightly backup" in win.tasks.names()
            box = panel.confirm_delete("nightly backup")
            [yes] = [b for b in box.buttons() if b.text() == "Delete task"]
            yes.click()
            assert "nightly backup" not in win.tasks.names()
        finally:
            await close(orch, win)

    run_qt(qapp, main())
