"""Quitting ends cleanly (no "Event loop stopped before Future completed"), with a way back
when runs stay alive; keyboard shortcuts work from every tab."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMessageBox

from prismq_desktop.gui import tray as tray_ui
from tests.gui.test_window import close, run_qt, window_for

PY = sys.executable
SCRIPTS = Path(__file__).parent.parent / "scripts"


def test_quit_from_the_tray_menu_ends_the_app_cleanly_with_a_run_alive(tmp_path):
    """The real app (app.main) in its own process: a run is alive, Quit is chosen; the process
    must end by itself with status 0, stop the run's tree, and log no loop error."""
    home = tmp_path / "home"
    gate = tmp_path / "gate"
    code = textwrap.dedent(f"""
        import sys
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        from prismq_desktop.core import RunSpec
        from prismq_desktop.gui import app as gui_app
        from prismq_desktop.gui.main_window import MainWindow

        def drive():
            wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
            if not wins:
                QTimer.singleShot(100, drive)
                return
            win = wins[0]
            run_id = win.launch(RunSpec({str(SCRIPTS / 'cli_gate.py')!r}, ({str(gate)!r},)), {{}})
            print("launched", run_id, flush=True)
            QTimer.singleShot(1500, win.quit_now)   # the tray menu's Quit

        QApplication.instance() or QApplication(sys.argv[:1])
        QTimer.singleShot(300, drive)
        sys.exit(gui_app.main({str(home)!r}))
    """)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    logs = out.stderr + ((home / "logs" / "app.log").read_text() if (home / "logs" / "app.log").exists() else "")
    assert out.returncode == 0, logs
    assert "launched" in out.stdout
    assert "Event loop stopped before Future completed" not in logs and "RuntimeError" not in logs, logs


def test_without_a_tray_keep_running_means_minimised_not_vanished(qapp):
    parent = None
    box = tray_ui.ask_before_quit(parent, 1, cancel_and_quit=lambda: None, keep_running=lambda: None, has_tray=False)
    try:
        texts = [b.text() for b in box.buttons()]
        assert "Keep running in the tray" not in texts and "Keep running (minimise)" in texts
        assert "no system tray" in box.text() and "1 run is still running" in box.text()
    finally:
        box.close()
    box = tray_ui.ask_before_quit(parent, 3, cancel_and_quit=lambda: None, keep_running=lambda: None, has_tray=True)
    try:
        assert "Keep running in the tray" in [b.text() for b in box.buttons()] and "3 runs are" in box.text()
    finally:
        box.close()


def test_ctrl_comma_opens_settings_and_run_shortcuts_work_from_every_tab(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            settings_act = win.findChild(type(win.act_cancel), "settingsAction")
            assert QKeySequence("Ctrl+,") in settings_act.shortcuts()
            assert settings_act in win.actions()
            for act in (win.act_cancel, win.runs_view.act_rerun, win.runs_view.act_pause):
                assert act in win.actions()  # window-wide: the Runs toolbar need not be visible
                assert act.shortcut().toString() in act.toolTip()
            win.tabs.setCurrentIndex(1)  # History in front
            settings_act.trigger()
            dialog = win.settings_dialog
            assert dialog.isVisible()
            dialog.close()
            assert win.windowTitle().count("PrismQ") == 0  # Qt adds the app name once, after it
            assert win.launch_panel.pattern.currentText() == "long running"
            assert "long-running" in win.launch_panel.advice.text().lower()
        finally:
            await close(orch, win)

    run_qt(qapp, main())


def test_quit_dialog_offers_minimise_where_there_is_no_tray(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            box = win.ask_before_quit(2)
            assert isinstance(box, QMessageBox)
            expected = "Keep running in the tray" if win.tray is not None else "Keep running (minimise)"
            assert expected in [b.text() for b in box.buttons()]
            box.close()
        finally:
            await close(orch, win)

    run_qt(qapp, main())
