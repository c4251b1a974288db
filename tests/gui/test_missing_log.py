"""A finished run that wrote nothing has no log file (issue #17): the window shows it as
"no output" and how it ended, never an error. Real window, orchestrator and child."""

from __future__ import annotations

import os
import shutil

from prismq_desktop.gui.logview import LogPane
from tests.gui.test_window import close, run_qt, window_for

TRUE = shutil.which("true") or "/bin/true"


def test_opening_the_log_of_a_silent_finished_run_shows_its_end_only(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            result = await orch.wait(orch.delay(TRUE), timeout=30)
            run = orch.registry.get(result.run_id)
            assert result.ok and run.log_path and not os.path.exists(run.log_path)
            win.open_run_log(run)  # History → Open log
            pane = win.runs_view.log_tabs.panes[run.id]
            assert win.runs_view.log_tabs.current_run_id() == run.id
            assert pane.end_text is not None  # how it ended, as its only line
            text = pane.plain_text()
            assert pane.end_text in text and "Traceback" not in text
            loose = LogPane(run.id, run.log_path)
            loose.load_from_log(run.log_path)  # the pane's own reader: no file is no output
            assert loose.plain_text().strip() == ""
            loose.deleteLater()
        finally:
            await close(orch, win)

    run_qt(qapp, main())
