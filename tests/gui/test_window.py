"""The window over a real orchestrator, on a real qasync loop, with real scripts (offscreen)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import psutil
import pytest
import qasync
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QPushButton, QTableView

from prismq_desktop.core import OutcomeKind, RunSpec, RunStatus
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.gui.ansi import legible
from prismq_desktop.gui.main_window import MainWindow
from prismq_desktop.gui.models import HistoryModel
from tests.helpers import pid_gone

PY = sys.executable
SCRIPTS = Path(__file__).parent.parent / "scripts"


def run_qt(qapp, coro):
    qapp.setQuitOnLastWindowClosed(False)  # closing a test's window must not stop the loop
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(qapp)) as runner:
        return runner.run(coro)


async def until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def window_for(home: Path):
    orch = TaskOrchestrator(home, max_concurrent=4)
    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(orch, settings)
    win.show()
    return orch, win


async def close(orch, win):
    win._quitting = True
    win.close()
    win.bridge.close()
    await orch.close()
    win.deleteLater()


def launch_from_form(win, target: str, args: str = "", env: dict | None = None) -> None:
    panel = win.launch_panel
    panel.kind.setCurrentIndex(0 if target.endswith(".py") else 2)
    panel.target.setText(target)
    panel.args.setText(args)
    panel.interpreter.setCurrentText(PY)
    if env:
        panel.env.set_env(env)
    button = win.findChild(QPushButton, "launchButton")
    assert button is not None and button.isEnabled()
    button.click()


def test_launch_from_the_ui_shows_output(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            launch_from_form(win, str(SCRIPTS / "hello.py"), "0 from-the-ui")
            table = win.findChild(QTableView, "runsTable")
            await until(lambda: table.model().rowCount() == 1)
            run = table.model().run_at(0)
            pane = win.panes[run.id]
            await until(lambda: "hello from-the-ui" in pane.plain_text())
            await until(lambda: win.runs_model.run_at(0).status is RunStatus.DONE)
            return pane.plain_text(), win.runs_model.run_at(0)
        finally:
            await close(orch, win)

    text, run = run_qt(qapp, main())
    assert "to stderr" in text and run.outcome.kind is OutcomeKind.SUCCEEDED


def test_cancel_from_the_ui_kills_the_whole_tree(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            launch_from_form(win, str(SCRIPTS / "tree.py"), "2")
            await until(lambda: win.runs_model.rowCount() == 1)
            run_id = win.runs_model.run_at(0).id
            pane = await until(lambda: win.panes.get(run_id))
            await until(lambda: pane.plain_text().count("pid ") >= 4)
            pids = [int(line.split()[1]) for line in pane.plain_text().splitlines() if line.startswith("pid ")]
            pids.append(orch.engine.get(run_id).pid)
            assert all(psutil.pid_exists(p) for p in pids)
            win.runs_table.selectRow(0)
            win.findChild(QTableView, "runsTable").setCurrentIndex(win.runs_model.index(0, 0))
            assert win.act_cancel.isEnabled()
            win.act_cancel.trigger()
            await until(lambda: win.runs_model.run_at(0).status is RunStatus.DONE)
            return pids, win.runs_model.run_at(0)
        finally:
            await close(orch, win)

    pids, run = run_qt(qapp, main())
    assert run.outcome.kind is OutcomeKind.CANCELLED
    assert all(pid_gone(p) for p in pids)


def test_progress_bar_is_one_updating_line_and_ansi_is_rendered(qapp, home, tmp_path):
    script = tmp_path / "colours.py"
    script.write_text(
        "import sys\n"
        "print('\\x1b[31mred\\x1b[0m and \\x1b[1;32mbold green\\x1b[0m')\n"
        "sys.stdout.write('\\x1b]0;title\\x07')\n"
        "for i in range(0, 101, 20):\n"
        "    sys.stdout.write(f'\\r{i:3d}%|' + '#' * (i // 10)); sys.stdout.flush()\n"
        "print()\n"
    )

    async def main():
        orch, win = await window_for(home)
        try:
            launch_from_form(win, str(script))
            await until(lambda: win.runs_model.rowCount() == 1 and win.runs_model.run_at(0).status is RunStatus.DONE)
            pane = win.panes[win.runs_model.run_at(0).id]
            await asyncio.sleep(0.1)
            doc = pane.text.document()
            first = doc.firstBlock()
            colours = set()
            it = first.begin()
            while not it.atEnd():
                frag = it.fragment()
                colours.add((frag.text(), frag.charFormat().foreground().color().name()))
                it += 1
            return pane.plain_text(), colours, win.runs_model.run_at(0), pane._background()
        finally:
            await close(orch, win)

    text, colours, run, background = run_qt(qapp, main())
    assert "\x1b" not in text and "[31m" not in text
    *output, end = text.splitlines()
    assert output == ["red and bold green", "100%|##########"]
    assert end.startswith("— exited with code 0 after ")  # how the run ended, in words, as its last line
    # ANSI colours, made legible on the pane's background (4.5:1) as VS Code's terminal does
    assert ("red", legible("#cd3131", background)) in colours
    assert ("bold green", legible("#0dbc79", background)) in colours
    assert run.progress == pytest.approx(1.0)


def test_secret_env_values_never_shown_or_stored(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            launch_from_form(win, str(SCRIPTS / "hello.py"), "0", env={"API_TOKEN": "s3cr3t-value", "MODE": "fast"})
            shown = [win.launch_panel.env.item(r, 1).text() for r in range(win.launch_panel.env.rowCount())]
            await until(lambda: win.runs_model.rowCount() == 1 and win.runs_model.run_at(0).status is RunStatus.DONE)
            run = win.runs_model.run_at(0)
            out = home / "history.json"
            win.export_history(str(out))
            visible = []
            for model in (win.runs_model, win.history_model):
                for row in range(model.rowCount()):
                    for col in range(model.columnCount()):
                        visible.append(str(model.data(model.index(row, col))))
            log_bytes = Path(run.log_path).read_bytes()
            return shown, out.read_text(), visible, log_bytes, win.launch_panel.spec().env
        finally:
            await close(orch, win)

    shown, exported, visible, log_bytes, real_env = run_qt(qapp, main())
    assert shown == ["••••••", "fast"]
    assert real_env["API_TOKEN"] == "s3cr3t-value"  # the run itself gets the real value
    assert "s3cr3t-value" not in exported and "API_TOKEN" in exported
    assert not any("s3cr3t-value" in v for v in visible)
    assert b"s3cr3t-value" not in log_bytes


def test_history_model_passes_qtmodeltester(qtmodeltester, home):
    from prismq_desktop.core.store.registry import RunRegistry

    reg = RunRegistry(home / "registry.sqlite3")
    for i in range(450):
        reg.create(RunSpec(f"job{i % 7}.py"))
    model = HistoryModel(reg)
    assert model.rowCount() == HistoryModel.PAGE and model.canFetchMore()  # one page on first paint
    model.fetchMore()
    assert model.rowCount() == 2 * HistoryModel.PAGE
    model.fetchMore()
    assert model.rowCount() == 450 and not model.canFetchMore()
    qtmodeltester.check(model, force_py=True)
    model.set_filter("job3")
    assert model.total == len([i for i in range(450) if i % 7 == 3])
    model.sort(1, Qt.SortOrder.AscendingOrder)
    qtmodeltester.check(model, force_py=True)
    reg.close()


def test_closing_with_active_runs_asks_first(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            orch.delay(RunSpec(PY, ("-c", "import time; time.sleep(30)")))
            await until(lambda: orch.engine.active() and orch.running_count == 1)
            win.close()
            await asyncio.sleep(0.1)
            box = win.findChild(object, "quitDialog")
            still_visible = win.isVisible()
            buttons = [b.text() for b in box.buttons()] if box else []
            if box:
                box.close()
            return still_visible, buttons, win.tray is not None
        finally:
            await close(orch, win)

    visible, buttons, has_tray = run_qt(qapp, main())
    assert visible
    keep = "Keep running in the tray" if has_tray else "Keep running (minimise)"  # no tray: never vanish
    assert buttons and set(buttons) == {"Cancel it and quit", keep, "Don't quit"}


def test_object_names_for_tests_and_accessibility(qapp, home):
    """Every tab's view is built when its tab is first shown (issue 17: not at start-up)."""
    async def main():
        orch, win = await window_for(home)
        try:
            before = {w.objectName() for w in win.findChildren(object)}
            for index in range(win.tabs.count()):
                win.tabs.setCurrentIndex(index)
            await asyncio.sleep(0)
            return before, {w.objectName() for w in win.findChildren(object)}
        finally:
            await close(orch, win)

    before, names = run_qt(qapp, main())
    for name in ("launchButton", "cancelButton", "runsTable", "schedulerTab", "poolView", "historyTab"):
        assert name in before
    for name in ("historyTable", "schedulesTable", "concurrencyView", "workersView", "queueTable"):
        assert name not in before and name in names, name
    for name in ("launchButton", "cancelButton", "runsTable", "historyTable", "schedulerTab", "poolView"):
        assert name in names
