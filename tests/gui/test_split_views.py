"""The views split out of the main window stand on their own: built from constructor arguments only."""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QSettings

from prismq_desktop.core import RunSpec
from prismq_desktop.core.models import absolute_spec
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.core.store.tasks import TaskStore
from prismq_desktop.gui.history_view import HistoryView
from prismq_desktop.gui.tasks_panel import TasksPanel


def test_history_view_filters_exports_and_asks_the_window_to_open_logs(qapp, home):
    reg = RunRegistry(home / "registry.sqlite3")
    try:
        for i in range(5):
            reg.create(RunSpec(f"job{i % 2}.py"))
        view = HistoryView(reg, QSettings(str(home / "s.ini"), QSettings.Format.IniFormat))
        opened, messages = [], []
        view.openLogRequested.connect(opened.append)
        view.statusMessage.connect(lambda text, _ms: messages.append(text))
        view.history_filter.setText("job1")
        view.apply_filter()
        assert view.history_model.total == 2
        assert view.export_history(str(home / "h.csv")) == 2 and messages == [f"exported 2 runs to {home / 'h.csv'}"]
        view.history_table.selectAll()
        view.findChild(object, "historyOpenButton").click()
        assert sorted(r.id for r in opened) == sorted(view.history_model.run_at(r).id for r in range(2))
        # now, not deleteLater(): the typed text's 150 ms filter timer would otherwise fire in the
        # next test's event processing, on this test's closed registry
        shiboken6.delete(view)
    finally:
        reg.close()


def test_tasks_panel_runs_a_saved_task_through_the_launch_it_was_given(qapp, home):
    store = TaskStore(home / "tasks.json")
    launched, edited = [], []
    panel = TasksPanel(store, lambda spec, opts: launched.append((spec, opts)) or 7,
                       lambda spec, opts: edited.append(spec))
    panel.store_task(" nightly ", RunSpec("job.py"), {"priority": "high"})
    assert [panel.task_list.item(i).text() for i in range(panel.task_list.count())] == ["nightly"]
    assert panel.run_task("nightly") == 7 and panel.run_task("missing") is None
    # saved with an absolute path (it runs later, from anywhere: issue #16)
    assert launched == [(absolute_spec(RunSpec("job.py")).with_changes(name="nightly"), {"priority": "high"})]
    panel.deleteLater()
