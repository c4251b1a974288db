"""The Scheduler tab tells the truth, live: fires, skips, misses and finishes update the schedule
row and its history in place (from events, no reload), "Run now" says why it skipped, and the
editor's messages follow the fields. Real runs, a real registry, a real qasync loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from prismq_desktop.core import RunSpec
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.schedule.scheduler import FireAction, Scheduler, make_trigger
from prismq_desktop.core.services.watch import RegistryWatcher
from prismq_desktop.gui.scheduler_view import SchedulerView
from tests.core.test_cli import clean_env
from tests.gui.test_window import close, run_qt, until, window_for

PY = sys.executable


def sleeper(seconds: float, name: str | None = None) -> RunSpec:
    return RunSpec(PY, ("-S", "-c", f"import time; time.sleep({seconds})"), name=name)


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def cells(model, row: int) -> list[str]:
    return [model.data(model.index(row, c)) for c in range(model.columnCount())]


def history_states(view) -> list[str]:
    m = view.history
    return [m.data(m.index(r, m.STATUS_COLUMN)) for r in range(m.rowCount())]


class Resets:
    """Counts whole-model reloads (a reset), which the live path must never need."""

    def __init__(self, *models) -> None:
        self.count = 0
        for m in models:
            m.modelReset.connect(self._reset)

    def _reset(self) -> None:
        self.count += 1


def test_fires_misses_and_finishes_update_the_tab_in_place(qapp, home):
    """On the scheduler's own clock: a fire, then downtime (coalesced catch-up and misses)."""

    async def main():
        clock = FakeClock()
        orch = TaskOrchestrator(home, max_concurrent=4)
        sch = Scheduler(orch, clock=clock)
        view = SchedulerView(sch, orch.registry)
        try:
            s = sch.add("tick", RunSpec(PY, ("-S", "-c", "print('tock')")), make_trigger(interval_seconds=60, now=clock.now))
            await until(lambda: view.model.rowCount() == 1)  # from its ScheduleChanged
            view.table.selectRow(0)
            before = cells(view.model, 0)
            resets = Resets(view.model, view.history)
            sch.start()
            clock.now += 60  # the first fire falls due on the scheduler's clock
            sch.resume_all()  # wakes the loop
            await until(lambda: view.history.rowCount() == 1)
            await until(lambda: history_states(view) == ["succeeded"])
            await until(lambda: view.model.data(view.model.index(0, 3)).startswith("succeeded"))
            after_fire = cells(view.model, 0)
            label = view.history_label.text()
            clock.now += 60 * 5 + 1  # five more due while "nobody was scheduling": coalesced into ONE record
            sch.resume_all()
            await until(lambda: view.history.rowCount() == 2)
            await until(lambda: history_states(view)[0] == "succeeded")
            states = history_states(view)
            last = view.model.data(view.model.index(0, 3))
            runs = sch.history(s.id)
            await sch.stop()
            return before, after_fire, label, states, last, runs, resets.count, view.table.currentIndex().row()
        finally:
            await sch.stop()
            view.deleteLater()
            await orch.close()

    before, after_fire, label, states, last, runs, resets, selected = run_qt(qapp, main())
    assert before[3] == "—" and "(in 1m 00s)" in before[2]
    assert after_fire[3] == f"succeeded (#{runs[-1].id})" and "(in 1m 00s)" in after_fire[2]  # next fire moved on
    assert "1 run," in label and "1 runs" not in label
    assert states == ["succeeded", "succeeded"]  # the catch-up is one row, not one per missed fire
    assert last == f"succeeded (#{runs[0].id})" and runs[0].trigger.startswith("catch-up: 5 missed fires coalesced")
    assert resets == 0 and selected == 0  # all in place, selection kept


def test_run_now_says_when_overlap_forbid_skipped_it(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            view = win.scheduler_view
            messages: list[str] = []
            view.message.connect(messages.append)
            orch.scheduler.add("nightly", sleeper(30), make_trigger(interval_seconds=3600))
            await until(lambda: view.model.rowCount() == 1)
            view.table.selectRow(0)
            first = view.run_now()
            await until(lambda: history_states(view) == ["running"])
            running_last = view.model.data(view.model.index(0, 3))
            view.findChild(object, "runNowButton").click()
            banner = view.banner_text.text(), not view.banner.isHidden(), view.last_fire
            await until(lambda: history_states(view) == ["skipped", "running"])
            skipped_tip = view.history.data(view.history.index(0, 4), Qt.ItemDataRole.ToolTipRole)
            skipped_last = view.model.data(view.model.index(0, 3))
            orch.cancel(first)
            await orch.wait(first)
            await until(lambda: history_states(view) == ["skipped", "cancelled"])
            await until(lambda: view.model.data(view.model.index(0, 3)).startswith("cancelled"))
            return (first, running_last, banner, messages, skipped_tip,
                    (skipped_last, view.model.data(view.model.index(0, 3)), fire_record(view)))
        finally:
            await close(orch, win)

    first, running_last, (text, shown, fire), messages, tip, (skipped_last, last, record) = run_qt(qapp, main())
    expected = f"nightly is still running (run #{first}); overlap policy 'forbid' skipped this fire"
    assert running_last == f"running (#{first})"
    assert shown and text == expected and fire.action is FireAction.SKIPPED
    assert messages == [f"nightly: started run #{first}", expected]
    assert "still running" in tip
    # the row says both: how the run is (then: how it ended) and that the latest fire was skipped
    assert skipped_last == f"running (#{first}) · last fire skipped (#{record})"
    assert last == f"cancelled (#{first}) · last fire skipped (#{record})"


def fire_record(view) -> int:
    return view.last_fire.record_id


def test_runs_of_another_process_update_the_tab(qapp, home):
    """`schedule run-now` in a real second process; its runs arrive as externalRunChanged."""

    async def main():
        orch, win = await window_for(home)
        watcher = RegistryWatcher(orch.registry, orch.bus.publish, interval=0.05)
        try:
            view = win.scheduler_view
            orch.scheduler.add("elsewhere", RunSpec(PY, ("-S", "-c", "print('hi')")), make_trigger(interval_seconds=3600))
            await until(lambda: view.model.rowCount() == 1)
            view.table.selectRow(0)
            watcher.start()
            proc = await asyncio.create_subprocess_exec(
                PY, "-m", "prismq_desktop", "--data-dir", str(home), "schedule", "run-now", "elsewhere",
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(None))
            out, err = await proc.communicate()
            assert proc.returncode == 0, err
            await until(lambda: history_states(view) == ["succeeded"])
            return view.model.data(view.model.index(0, 3)), view.history_label.text()
        finally:
            await watcher.stop()
            await close(orch, win)

    last, label = run_qt(qapp, main())
    assert last.startswith("succeeded (#")
    assert "1 run," in label


def test_editor_messages_follow_the_fields(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            view = win.scheduler_view
            orch.scheduler.add("taken", sleeper(0), make_trigger(interval_seconds=3600))
            editor = view.new()
            save = editor.buttons.button(QDialogButtonBox.StandardButton.Save)
            seen = {"fresh": (editor.error.text(), save.isEnabled())}
            save.click()  # nothing filled in: say what is missing
            seen["attempt"] = (editor.error.text(), save.isEnabled())
            editor.name.setText("nightly")
            seen["named"] = (editor.error.text(), save.isEnabled())
            editor.target.setText(PY)
            seen["complete"] = (editor.error.text(), save.isEnabled(), editor.error.isHidden())
            editor.name.setText("taken")
            seen["duplicate"] = (editor.error.text(), save.isEnabled())
            editor.name.setText("nightly")
            editor.kind.setCurrentIndex(1)
            editor.cron.setText("99 * * * *")
            seen["bad cron"] = (editor.error.text(), save.isEnabled())
            editor.cron.setText("*/5 * * * *")
            seen["fixed"] = (editor.error.text(), save.isEnabled(), editor.error.isHidden())
            save.click()
            await until(lambda: view.model.rowCount() == 2)
            return seen, [s.name for s in view.model.rows], view.selected().name
        finally:
            await close(orch, win)

    seen, names, selected = run_qt(qapp, main())
    assert seen["fresh"] == ("", True)  # an empty new form is not scolded before anything happened
    text, enabled = seen["attempt"]
    assert "a schedule needs a name" in text and "say what to run" in text and not enabled
    text, enabled = seen["named"]
    assert "a schedule needs a name" not in text and "say what to run" in text and not enabled
    assert seen["complete"] == ("", True, True)
    assert "already a schedule named 'taken'" in seen["duplicate"][0] and not seen["duplicate"][1]
    assert "invalid cron expression" in seen["bad cron"][0] and not seen["bad cron"][1]
    assert seen["fixed"] == ("", True, True)
    assert names == ["nightly", "taken"] and selected == "nightly"


def test_export_writes_what_the_cli_writes_and_says_what_it_could_not(qapp, home, tmp_path):
    """Export… on the selected schedule: the three formats parsed back, and systemd's refusal of
    overlap 'allow' is one line in the banner with nothing written."""
    import xml.etree.ElementTree as ET

    import yaml
    from PySide6.QtWidgets import QFileDialog

    async def main():
        orch, win = await window_for(home)
        try:
            view = win.scheduler_view
            nightly = orch.scheduler.add("nightly", sleeper(1), make_trigger(cron="30 2 * * *"))
            loose = orch.scheduler.add("loose", sleeper(1), make_trigger(interval_seconds=600), overlap="allow")
            await until(lambda: view.model.rowCount() == 2)
            view.select(nightly.id)
            view.findChild(object, "exportScheduleButton").click()
            dialog = view.findChild(QFileDialog, "exportScheduleDialog")
            opened = dialog is not None and dialog.isVisible()
            if dialog is not None:
                dialog.reject()
            k8s = view.export_to(nightly.id, "k8s", str(tmp_path / "nightly"))
            k8s_banner = view.banner_text.text()
            units = view.export_to(nightly.id, "systemd", str(tmp_path / "nightly.service"))
            xml = view.export_to(nightly.id, "windows", str(tmp_path / "nightly.xml"))
            refused = view.export_to(loose.id, "systemd", str(tmp_path / "loose.service"))
            return opened, k8s, k8s_banner, units, xml, refused, view.banner_text.text()
        finally:
            await close(orch, win)

    opened, k8s, k8s_banner, units, xml, refused, refused_banner = run_qt(qapp, main())
    assert opened
    assert k8s == [tmp_path / "nightly.yaml"] and str(tmp_path / "nightly.yaml") in k8s_banner
    job = yaml.safe_load(k8s[0].read_text())
    assert job["kind"] == "CronJob" and job["spec"]["schedule"] == "30 2 * * *"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert sorted(p.name for p in units) == ["nightly.service", "nightly.timer"]
    assert "OnCalendar=" in (tmp_path / "nightly.timer").read_text()
    root = ET.fromstring(xml[0].read_bytes())
    assert root.tag.endswith("Task") and b"IgnoreNew" in xml[0].read_bytes()
    assert refused == [] and not (tmp_path / "loose.service").exists() and not (tmp_path / "loose.timer").exists()
    assert refused_banner.startswith("a systemd service + timer cannot express 'loose'") and "\n" not in refused_banner
