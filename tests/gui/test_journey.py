"""A person's session, end to end, in the real window with real scripts and a real registry:

launch → watch → cancel a tree → a failing script → History (a run started by a separate CLI
process appears) → a schedule fires and is disabled → Settings saved unchanged → restart.
After every step, every visible model (Runs, History, Scheduler, Concurrency, Pool) must agree
with the registry.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import QSettings

from prismq_desktop.core import OutcomeKind, RunSpec, RunStatus
from prismq_desktop.core.schedule.scheduler import make_trigger
from prismq_desktop.core.store import RunQuery
from prismq_desktop.core.wording import status_text
from prismq_desktop.gui.app import apply_saved_retention
from tests.gui.test_window import close, launch_from_form, run_qt, until, window_for

PY = sys.executable
SCRIPTS = Path(__file__).parent.parent / "scripts"


def runs_view_agrees(win, orch) -> bool:
    model = win.runs_model
    for row in range(model.rowCount()):
        shown = model.run_at(row)
        stored = orch.registry.get(shown.id)
        if stored is None or (shown.status, shown.outcome) != (stored.status, stored.outcome):
            return False
    return True


def history_agrees(win, orch) -> bool:
    model = win.history_model
    stored = orch.registry.query(model.query())
    shown = [model.run_at(r) for r in range(min(model.rowCount(), len(stored)))]
    return ([(r.id, r.status, r.outcome) for r in shown] == [(r.id, r.status, r.outcome) for r in stored[:len(shown)]]
            and model.total == orch.registry.count(model.query()))


def scheduler_agrees(win, orch) -> bool:
    model = win.scheduler_view.model
    for row in range(model.rowCount()):
        sched = model.schedule_at(row)
        runs = [r for r in orch.registry.query(RunQuery(schedule_id=sched.id, limit=50))
                if r.outcome is None or r.outcome.kind not in (OutcomeKind.SKIPPED, OutcomeKind.MISSED)]
        last, _record = model.last_and_record(sched.id)
        if runs and (last is None or (last.id, last.status, last.outcome) != (runs[0].id, runs[0].status, runs[0].outcome)):
            return False
        if runs and status_text(runs[0]) not in model.last_text(sched.id):
            return False
    return True


def concurrency_agrees(win, orch) -> bool:
    view = win.concurrency_view
    view.refresh()
    queue_ids = [int(view.queue.item(r, 0).text()) for r in range(view.queue.rowCount())]
    return (view.slots_label.text() == f"{orch.running_count}/{orch.max_concurrent}"
            and queue_ids == [r.id for r in orch.queued_runs()])


def pool_agrees(win, orch) -> bool:
    view = win.pool_widget
    view.refresh()
    st = orch.pool.stats()
    rows = sum(int(view.workers.item(r, 2).text()) for r in range(view.workers.rowCount()))
    if not st.started:  # workers start with the first pooled run, and the tab says so
        return view.workers.rowCount() == 0 and "start with the first pooled run" in view.summary.text()
    served = f"{st.runs_served:,} run{'' if st.runs_served == 1 else 's'} served"
    return rows + st.retired_served == st.runs_served and served in view.summary.text()


async def all_agree(win, orch, step: str) -> None:
    for name, check in (("Runs", runs_view_agrees), ("History", history_agrees), ("Scheduler", scheduler_agrees),
                        ("Concurrency", concurrency_agrees), ("Pool", pool_agrees)):
        try:
            await until(lambda check=check: check(win, orch), timeout=10)
        except AssertionError:
            raise AssertionError(f"after {step}: the {name} view disagrees with the registry") from None


@pytest.mark.usefixtures("fast_intervals")
def test_a_day_in_the_window_every_view_tells_the_truth(qapp, home):

    async def session():
        orch, win = await window_for(home)
        try:
            await all_agree(win, orch, "start")
            # 1. launch a script and watch it
            launch_from_form(win, str(SCRIPTS / "progress.py"))
            await until(lambda: win.runs_model.rowCount() == 1 and not win.runs_model.run_at(0).is_active)
            first = win.runs_model.run_at(0)
            assert first.outcome.kind is OutcomeKind.SUCCEEDED and "done" in win.panes[first.id].plain_text()
            assert "exited with code 0" in win.panes[first.id].plain_text()
            await all_agree(win, orch, "a finished run")
            # 2. cancel a tree
            launch_from_form(win, str(SCRIPTS / "tree.py"), "2")
            await until(lambda: win.runs_model.rowCount() == 2)
            tree_run = win.runs_model.run_at(0)
            pane = win.panes[tree_run.id]
            await until(lambda: pane.plain_text().count("pid ") >= 4)
            pids = [int(line.split()[1]) for line in pane.plain_text().splitlines() if line.startswith("pid ")]
            await all_agree(win, orch, "a running tree")
            assert win.runs_view.selected_run().id == tree_run.id
            win.act_cancel.trigger()
            await until(lambda: orch.registry.get(tree_run.id).status is RunStatus.DONE)
            assert orch.registry.get(tree_run.id).outcome.kind is OutcomeKind.CANCELLED
            for pid in pids:
                assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            await until(lambda: "(tree of 5 processes stopped)" in pane.plain_text())
            await all_agree(win, orch, "cancelling a tree")
            # 3. a failing script
            launch_from_form(win, str(SCRIPTS / "hello.py"), "3")
            await until(lambda: win.runs_model.rowCount() == 3 and not win.runs_model.run_at(0).is_active)
            assert win.runs_model.run_at(0).outcome.exit_code == 3
            await all_agree(win, orch, "a failing run")
            # 3b. a pooled run: served counts in the Pool tab match
            pooled = orch.delay(RunSpec(str(SCRIPTS / "hello.py"), ("0",)), pattern="pooled")
            assert (await orch.wait(pooled, timeout=30)).ok
            await all_agree(win, orch, "a pooled run")
            # 4. a run started by a separate CLI process appears in History
            out = subprocess.run([PY, "-m", "prismq_desktop", "--data-dir", str(home), "run", "--name", "from-the-cli",
                                  str(SCRIPTS / "hello.py"), "--", "0"], capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            win.tabs.setCurrentIndex(1)
            await until(lambda: any(win.history_model.run_at(r).name == "from-the-cli"
                                    for r in range(win.history_model.rowCount())), timeout=5)
            await all_agree(win, orch, "a CLI run")
            # 5. a schedule fires, then is disabled
            sched = orch.scheduler.add("every-half-second", RunSpec(str(SCRIPTS / "hello.py"), ("0",)),
                                       make_trigger(interval_seconds=0.5))
            orch.scheduler.start()  # as app.py does at start-up
            await until(lambda: any(r.outcome and r.outcome.kind is OutcomeKind.SUCCEEDED
                                    for r in orch.registry.query(RunQuery(schedule_id=sched.id))), timeout=15)
            await all_agree(win, orch, "a schedule fired")
            orch.scheduler.disable(sched.id)
            await until(lambda: not orch.engine.active(), timeout=15)
            fired = orch.registry.count(RunQuery(schedule_id=sched.id))
            await asyncio.sleep(1.2)  # two intervals: a disabled schedule fires nothing
            assert orch.registry.count(RunQuery(schedule_id=sched.id)) == fired
            await all_agree(win, orch, "disabling the schedule")
            # 6. Settings saved unchanged
            dialog = win.open_settings()
            dialog.save()
            await all_agree(win, orch, "saving Settings")
            return [r.id for r in orch.registry.query(RunQuery(limit=1000))], [
                r.log_path for r in orch.registry.query(RunQuery(limit=1000)) if r.log_path and Path(r.log_path).exists()]
        finally:
            await close(orch, win)

    ids, logs = run_qt(qapp, session())
    assert len(ids) >= 6 and logs

    async def restart():
        settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
        orch, win = await window_for(home)
        try:
            assert apply_saved_retention(orch.registry, settings) == 0  # an unchanged save deletes nothing
            win.history_model.refresh()
            await all_agree(win, orch, "a restart")
            return [r.id for r in orch.registry.query(RunQuery(limit=1000))]
        finally:
            await close(orch, win)

    again = run_qt(qapp, restart())
    assert sorted(again) == sorted(ids)
    assert all(Path(p).exists() for p in logs)
