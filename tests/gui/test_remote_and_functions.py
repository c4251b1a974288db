"""Issues #14 and #15 in the window: the broker URL in Settings (secret store, Test connection),
the Where choice, the Workers tab, Python functions as tasks, and registry locks in one line.

Real parts only: a real redis-server with a password and real `prismq-desktop worker`
subprocesses (the fixtures of tests/core/remote, which fail loudly without redis-server),
real runs, a real registry, a real qasync loop (offscreen).
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDialogButtonBox, QLineEdit, QMessageBox, QPushButton

from prismq_desktop.core import OutcomeKind, RunSpec, RunStatus
from prismq_desktop.core.functions.payload import encode_call
from prismq_desktop.core.models import TargetKind
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.schedule.scheduler import make_trigger
from prismq_desktop.core.store.tasks import TaskStore
from prismq_desktop.gui.broker import BROKER_KEY, saved_broker_url
from prismq_desktop.gui.launch import LaunchPanel
from prismq_desktop.gui.main_window import MainWindow
from prismq_desktop.gui.settings_dialog import SettingsDialog
from prismq_desktop.gui.where import NO_BROKER
from tests.core.remote.conftest import PASSWORD, free_port, redis_url, start_worker  # noqa: F401 - fixtures
from tests.gui.test_window import close, run_qt, until, window_for
from tests.helpers import LockHolder

PY = sys.executable
SCRIPTS = Path(__file__).parent.parent / "scripts"


async def remote_window(home: Path, url: str):
    orch = TaskOrchestrator(home, max_concurrent=4, broker=url)
    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(orch, settings, broker=url)
    win.show()
    return orch, win


def cells(model, row: int) -> list[str]:
    return [model.data(model.index(row, c)) for c in range(model.columnCount())]


class Resets:
    def __init__(self, *models) -> None:
        self.count = 0
        for m in models:
            m.modelReset.connect(self._reset)

    def _reset(self) -> None:
        self.count += 1


# ---------------------------------------------------------------------------- 1. the broker URL in Settings

@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_broker_url_is_masked_kept_in_the_secret_store_and_tested_in_one_line(qapp, home, redis_url):  # noqa: F811
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    refused = f"redis://:x@127.0.0.1:{free_port()}/0"

    async def main():
        settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
        dialog = SettingsDialog(settings, str(home))
        field = dialog.findChild(QLineEdit, "brokerUrl")
        masked = field.echoMode() == QLineEdit.EchoMode.Password
        results = {}
        for name, url in (("good", redis_url), ("wrong password", redis_url.replace(PASSWORD, "nope")),
                          ("no password", f"redis://127.0.0.1:{port}/0"), ("refused", refused),
                          ("bad url", "http://example.com"), ("bad port", "redis://h:99999/0")):
            field.setText(url)
            await dialog.test_broker()
            results[name] = dialog.broker_result.text()
        field.setText(redis_url)
        dialog.findChild(QPushButton, "settingsSave").click()
        settings.sync()
        again = SettingsDialog(QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat), str(home))
        return masked, results, again.broker.text(), again.broker.echoMode()

    masked, results, reopened, echo = run_qt(qapp, main())
    assert masked and echo == QLineEdit.EchoMode.Password
    assert results["good"].startswith("✓ connected to redis://:••••••@127.0.0.1")
    assert results["wrong password"] == f"⚠ wrong password for 127.0.0.1:{port} (the broker refused it)"
    assert results["no password"].startswith(f"⚠ 127.0.0.1:{port} needs a password")
    assert results["refused"].startswith("⚠ connection refused at 127.0.0.1:")
    assert results["bad url"].startswith("⚠ unsupported broker http://example.com")
    assert results["bad port"].startswith("⚠ not a broker URL")
    assert all("\n" not in r and PASSWORD not in r for r in results.values())  # one line, never the password
    ini = (home / "settings.ini").read_text()
    assert PASSWORD not in ini and "prismq-secret:" in ini  # a reference, not the URL
    secrets = home / "secrets.json"
    assert PASSWORD in secrets.read_text() and stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert reopened == redis_url  # read back through the store


def test_a_clear_text_url_written_by_hand_is_not_used(qapp, home):
    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue(BROKER_KEY, "redis://:pw@127.0.0.1:6379/0")
    from prismq_desktop.core.secrets import SecretVault

    url, problem = saved_broker_url(settings, SecretVault(home / "secrets.json"))
    assert url is None and "not a secret-store reference" in problem


# ---------------------------------------------------------------------------- 2 + 3. Where, Workers, remote runs

def test_no_broker_disables_the_remote_choice_and_the_workers_tab_says_why(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            where = win.launch_panel.where
            item = where.place.model().item(2)
            win.tabs.setCurrentWidget(win.workers_tab)
            await until(lambda: True)
            return (item.isEnabled(), item.toolTip(), where.queue.toolTip(), win.workers_view.summary.text(),
                    win.broker_poller.polls, win.broker_poller.timer.isActive())
        finally:
            await close(orch, win)

    enabled, tip, queue_tip, summary, polls, polling = run_qt(qapp, main())
    assert not enabled and tip == NO_BROKER and queue_tip == NO_BROKER
    assert "No broker is set" in summary and polls == 0 and not polling


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_remote_run_from_the_form_shows_its_worker_and_the_workers_tab_follows_live(qapp, home, redis_url,  # noqa: F811
                                                                                    start_worker):  # noqa: F811
    worker = start_worker("guiq", "gui-box", concurrency=2)
    idle = start_worker("idleq", "idle-box")

    async def main():
        orch, win = await remote_window(home, redis_url)
        try:
            view = win.workers_view
            resets = Resets(view.workers_model, view.queues_model)
            win.tabs.setCurrentWidget(win.workers_tab)
            await until(lambda: view.workers_model.rowCount() == 2, 10)
            first = [cells(view.workers_model, r) for r in range(2)]
            queues = [cells(view.queues_model, r) for r in range(view.queues_model.rowCount())]
            panel = win.launch_panel
            await until(lambda: panel.where.queue.findText("guiq") >= 0, 5)
            panel.kind.setCurrentIndex(0)
            panel.target.setText(str(SCRIPTS / "hello.py"))
            panel.args.setText("0 from-a-worker")
            panel.where.place.setCurrentIndex(2)
            panel.where.queue.setCurrentText("guiq")
            assert panel.launch_button.isEnabled(), panel.preview.text()
            preview = panel.preview.text()
            saved_spec = panel.spec()
            panel.launch_button.click()
            await until(lambda: win.runs_model.rowCount() == 1)
            run_id = win.runs_model.run_at(0).id
            await until(lambda: orch.engine.get(run_id).status is RunStatus.DONE, 30)
            run = orch.engine.get(run_id)
            row = win.runs_model.row_of(run_id)
            runs_where = win.runs_model.data(win.runs_model.index(row, 9))
            tip = win.runs_model.data(win.runs_model.index(row, 2), Qt.ItemDataRole.ToolTipRole)
            await until(lambda: win.history_model.rowCount() >= 1)
            hist_where = win.history_model.data(win.history_model.index(0, 10))
            pane = win.panes[run_id]
            await until(lambda: "hello from-a-worker" in pane.plain_text())
            # a worker SIGKILLed: marked stale (greyed, "stale") in place after two heartbeat intervals
            idle.kill()
            await until(lambda: any(cells(view.workers_model, r)[7] == "stale" for r in range(2)), 10)
            stale_row = next(r for r in range(2) if cells(view.workers_model, r)[0] == "idle-box")
            grey = view.workers_model.data(view.workers_model.index(stale_row, 0), Qt.ItemDataRole.ForegroundRole)
            live_colour = view.workers_model.data(view.workers_model.index(1 - stale_row, 0),
                                                  Qt.ItemDataRole.ForegroundRole)
            # polled about once a second while visible, not while hidden
            polls = win.broker_poller.polls
            await asyncio_sleep(2.6)
            visible_polls = win.broker_poller.polls - polls
            win.tabs.setCurrentIndex(0)
            await asyncio_sleep(0.3)
            polls = win.broker_poller.polls
            await asyncio_sleep(2.5)
            hidden_polls = win.broker_poller.polls - polls
            return (first, queues, preview, saved_spec, run, runs_where, tip, hist_where, cells(view.workers_model, stale_row),
                    grey, live_colour, visible_polls, hidden_polls, resets.count)
        finally:
            await close(orch, win)

    (first, queues, preview, saved_spec, run, runs_where, tip, hist_where, stale, grey, live_colour, visible_polls,
     hidden_polls, resets) = run_qt(qapp, main())
    hosts = {r[0]: r for r in first}
    assert hosts["gui-box"][1:4] == ["guiq", "2", "0"] and hosts["gui-box"][7] == "live"
    assert hosts["idle-box"][1] == "idleq"
    assert ["guiq", "0", "1"] in queues and ["idleq", "0", "1"] in queues
    assert "on a worker of queue guiq" in preview and saved_spec.where == "remote:guiq"
    assert run.outcome.kind is OutcomeKind.SUCCEEDED and run.worker_host == "gui-box"
    assert runs_where == "guiq → gui-box" and hist_where == "guiq → gui-box"
    assert "ran on gui-box (queue guiq)" in tip
    assert stale[0] == "idle-box" and stale[7] == "stale" and grey is not None and live_colour is None
    assert 2 <= visible_polls <= 4 and hidden_polls == 0
    assert resets == 0  # rows updated in place, never a reset
    assert worker.proc.poll() is None


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


# ---------------------------------------------------------------------------- 4. Python functions

FUNCS = '''
def scale(x, factor=2):
    print("scaling", x)
    return {"x": x * factor}


def boom(row):
    raise ValueError(f"bad row {row}")
'''


def test_function_from_the_form_validates_json_shows_its_value_and_its_exception(qapp, home, tmp_path):
    funcs = tmp_path / "funcs.py"
    funcs.write_text(FUNCS)

    async def main():
        orch, win = await window_for(home)
        try:
            panel = win.launch_panel
            panel.kind.setCurrentIndex(3)
            panel.target.setText(str(funcs))
            panel.function.setText("scale")
            panel.interpreter.setCurrentText(PY)
            messages = {}
            for typed in ("[1, ", '{"x": 1,}', "7", '{"1": 2}', "NaN"):
                panel.args.setText(typed)
                messages[typed] = (panel.args_error.text(), panel.args_error.isVisible(), panel.launch_button.isEnabled())
            panel.args.setText('{"x": 21}')
            ok = (panel.args_error.isVisible(), panel.launch_button.isEnabled())
            panel.where.place.setCurrentIndex(1)  # the warm pool
            panel.launch_button.click()
            await until(lambda: win.runs_model.rowCount() == 1)
            good = win.runs_model.run_at(0).id
            await until(lambda: orch.engine.get(good).status is RunStatus.DONE, 30)
            pane = win.panes[good]
            await until(lambda: pane.end_text is not None)
            good_text = pane.plain_text()
            served = orch.pool.stats().runs_served if orch.pool else 0
            win.tasks_panel.store_task("scale it", panel.spec(), panel.options())
            panel.save_draft()
            panel.function.setText("boom")
            panel.args.setText("[3]")
            panel.where.place.setCurrentIndex(0)
            panel.launch_button.click()
            await until(lambda: win.runs_model.rowCount() == 2)
            bad = win.runs_model.run_at(0).id
            await until(lambda: orch.engine.get(bad).status is RunStatus.DONE, 30)
            bad_pane = win.panes[bad]
            await until(lambda: bad_pane.end_text is not None)
            tip = win.runs_model.data(win.runs_model.index(0, 2), Qt.ItemDataRole.ToolTipRole)
            good_tip = win.runs_model.data(win.runs_model.index(1, 2), Qt.ItemDataRole.ToolTipRole)
            return (messages, ok, orch.engine.get(good), pane.end_text, good_text, served, orch.engine.get(bad),
                    bad_pane.end_text, tip, good_tip)
        finally:
            await close(orch, win)

    messages, ok, good, good_end, good_text, served, bad, bad_end, tip, good_tip = run_qt(qapp, main())
    assert messages["[1, "] == ("⚠ not valid JSON at column 5: expecting value", True, False)
    assert messages['{"x": 1,}'][0].startswith("⚠ not valid JSON at column 9") and not messages['{"x": 1,}'][2]
    assert messages["7"][0] == "⚠ give a JSON list (positional arguments) or object (keyword arguments), not a number"
    assert "keyword argument names must be identifiers" in messages['{"1": 2}'][0]
    assert messages["NaN"][0] == "⚠ not valid JSON: NaN is not a JSON value"
    assert ok == (False, True)
    assert good.outcome.kind is OutcomeKind.SUCCEEDED and good.result_value == {"x": 42}
    assert good.spec.kind is TargetKind.FUNCTION and good.spec.where == "pool" and served >= 1
    assert good_end.startswith('returned {"x": 42} after ') and "scaling 21" in good_text
    assert good_end in good_text and 'returned {"x": 42}' in good_tip
    assert bad.outcome.kind is OutcomeKind.FAILED and bad.result_error["type"] == "ValueError"
    assert bad_end.startswith("raised ValueError after ") and bad_end.endswith(": bad row 3")
    assert "ValueError: bad row 3" in tip
    # the saved task and the draft keep the function, its arguments and where it runs
    spec, _options = TaskStore(home / "tasks.json").get("scale it")
    assert spec.kind is TargetKind.FUNCTION and spec.target == f"{funcs}:scale" and spec.where == "pool"
    assert json.loads(spec.payload) == {"args": [], "kwargs": {"x": 21}}


def test_the_draft_keeps_a_function_and_arguments_that_are_not_json_yet(qapp, home, tmp_path):
    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    panel = LaunchPanel(settings)
    panel.kind.setCurrentIndex(3)
    panel.target.setText("json")
    panel.function.setText("dumps")
    panel.args.setText('[{"a": 1}, ')
    panel.where.place.setCurrentIndex(1)
    panel.save_draft()
    again = LaunchPanel(QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat))
    assert again.is_function() and again.target.text() == "json" and again.function.text() == "dumps"
    assert again.args.text() == '[{"a": 1}, ' and again.args_error.text().startswith("⚠ not valid JSON")
    assert again.where.where() == "pool" and not again.launch_button.isEnabled()
    # a stored call with both positional and keyword arguments round-trips unchanged
    both = RunSpec("json:dumps", kind=TargetKind.FUNCTION, payload=encode_call([{"a": 1}], {"indent": 2}))
    again.set_spec(both)
    assert json.loads(again.spec().payload) == json.loads(both.payload)


def test_schedules_of_functions_keep_the_call_and_where_they_run(qapp, home, tmp_path):
    funcs = tmp_path / "funcs.py"
    funcs.write_text(FUNCS)

    async def main():
        orch, win = await window_for(home)
        try:
            panel = win.launch_panel
            panel.kind.setCurrentIndex(3)
            panel.target.setText(str(funcs))
            panel.function.setText("scale")
            panel.args.setText("[5]")
            panel.env.set_env({"MY_TOKEN": "s3cret-value"})
            panel.where.place.setCurrentIndex(1)
            editor = panel.schedule_button.click() or win.scheduler_view.editor
            editor.name.setText("scale every hour")
            editor.every.setValue(1)
            editor.unit.setCurrentText("hours")
            editor.buttons.button(QDialogButtonBox.StandardButton.Save).click()
            await until(lambda: win.scheduler_view.model.rowCount() == 1)
            made = orch.scheduler.all()[0]
            edit = win.scheduler_view.edit()
            edit.args.setText("[6")
            bad_args = (edit.error.text(), edit.buttons.button(QDialogButtonBox.StandardButton.Save).isEnabled())
            edit.args.setText("[6]")
            edit.name.setText("scale hourly")
            edit.buttons.button(QDialogButtonBox.StandardButton.Save).click()
            await until(lambda: orch.scheduler.all()[0].name == "scale hourly")
            return made, orch.scheduler.all()[0], bad_args
        finally:
            await close(orch, win)

    made, edited, bad_args = run_qt(qapp, main())
    for s in (made, edited):
        assert s.spec.kind is TargetKind.FUNCTION and s.spec.target == f"{funcs}:scale" and s.spec.where == "pool"
        assert s.spec.env.get("MY_TOKEN") == "s3cret-value" or s.spec.env["MY_TOKEN"].startswith("prismq-secret:")
    assert json.loads(made.spec.payload)["args"] == [5] and json.loads(edited.spec.payload)["args"] == [6]
    assert "not valid JSON" in bad_args[0] and not bad_args[1]


# ---------------------------------------------------------------------------- 5. registry locks

def test_a_locked_registry_is_one_line_for_launch_and_schedule_changes(qapp, home, monkeypatch):
    monkeypatch.setenv("PRISMQ_REGISTRY_BUSY_TIMEOUT", "0.3")
    uncaught: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda t, e, tb: uncaught.append(f"{t.__name__}: {e}"))

    async def main():
        orch, win = await window_for(home)
        holder = None
        try:
            s = orch.scheduler.add("nightly", RunSpec(PY, ("-c", "pass")), make_trigger(interval_seconds=3600))
            view = win.scheduler_view
            await until(lambda: view.model.rowCount() == 1)
            holder = LockHolder(home / "registry.sqlite3", SCRIPTS)
            run_id = win.launch(RunSpec(str(SCRIPTS / "hello.py")), {})
            boxes = [b for b in win.findChildren(QMessageBox) if b.isVisible()]
            launch_text = boxes[-1].text() if boxes else None
            toggled = view.model.setData(view.model.index(0, 4), Qt.CheckState.Unchecked, Qt.ItemDataRole.CheckStateRole)
            toggle_text = view.banner_text.text()
            view.select(s.id)
            view.delete()
            delete_text = view.banner_text.text()
            holder.release()
            holder.close()
            holder = None
            still = orch.scheduler.get(s.id)
            for box in boxes:
                box.close()
            return run_id, launch_text, toggled, toggle_text, delete_text, still, view.model.rowCount()
        finally:
            if holder is not None:
                holder.release()
                holder.close()
            await close(orch, win)

    run_id, launch_text, toggled, toggle_text, delete_text, still, rows = run_qt(qapp, main())
    assert run_id is None and launch_text is not None and "locked by another process (pid" in launch_text
    assert "\n" not in launch_text
    assert not toggled and toggle_text.startswith("nightly was not disabled: ") and "locked" in toggle_text
    assert delete_text.startswith("nightly was not deleted: ") and "locked" in delete_text
    assert still.enabled and rows == 1  # nothing changed, nothing lost
    assert uncaught == []


@pytest.fixture(autouse=True)
def _no_broker_from_the_environment(monkeypatch):
    monkeypatch.delenv("PRISMQ_BROKER_URL", raising=False)
