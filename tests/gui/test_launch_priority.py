"""The launch panel's priority combo speaks Priority, whether an option holds a name or a number."""

from __future__ import annotations

import sys

from PySide6.QtCore import QSettings

from prismq_desktop.core import RunSpec
from prismq_desktop.core.patterns import Priority, TaskPattern
from prismq_desktop.gui.launch import LaunchPanel


def test_priority_from_a_name_or_a_run_record_number(qapp, tmp_path):
    panel = LaunchPanel(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    try:
        assert Priority.parse(panel.options()["priority"]) is Priority.NORMAL
        spec = RunSpec(sys.executable, ("-c", "pass"))
        panel.set_spec(spec, {"priority": int(Priority.HIGH), "pattern": TaskPattern.POOLED})  # as a rerun keeps it
        assert Priority.parse(panel.options()["priority"]) is Priority.HIGH
        assert panel.options()["pattern"] is TaskPattern.POOLED
        panel.set_spec(spec, {"priority": "critical"})
        assert Priority.parse(panel.options()["priority"]) is Priority.CRITICAL
        panel.save_draft()
        again = LaunchPanel(panel.settings)
        assert Priority.parse(again.options()["priority"]) is Priority.CRITICAL
        again.deleteLater()
    finally:
        panel.deleteLater()
