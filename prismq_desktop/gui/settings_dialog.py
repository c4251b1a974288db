"""Settings: persisted in settings.ini in the data dir, applied at once."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QStyleFactory,
    QVBoxLayout,
    QWidget,
)

from prismq_desktop.gui.launch import detect_interpreters

DEFAULTS: dict[str, Any] = {
    "run/max_concurrent": 4,
    "run/default_interpreter": "",
    "history/keep_days": 0,
    "history/keep_runs": 0,
    "view/pane_line_limit": 5000,
    "view/theme": "system",
    "notify/failures": True,
    "notify/successes": False,
}


def value(settings: QSettings, key: str) -> Any:
    default = DEFAULTS[key]
    raw = settings.value(key, default)
    if isinstance(default, bool):
        return raw in (True, "true", "True", "1", 1)
    if isinstance(default, int):
        try:
            return int(raw or 0) if isinstance(raw, (int, float, str)) else default
        except ValueError:
            return default
    return str(raw or "")


_SYSTEM_PALETTE: list[QPalette] = []


def apply_theme(theme: str) -> None:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return
    if not _SYSTEM_PALETTE:
        _SYSTEM_PALETTE.append(app.palette())
    if theme == "system":
        app.setPalette(_SYSTEM_PALETTE[0])
        return
    app.setStyle(QStyleFactory.create("Fusion"))
    if theme == "light":
        app.setPalette(app.style().standardPalette())
        return
    dark = QPalette()
    base, text, mid = QColor(37, 37, 38), QColor(220, 220, 220), QColor(53, 53, 55)
    for role, color in ((QPalette.ColorRole.Window, mid), (QPalette.ColorRole.WindowText, text),
                        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, mid),
                        (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, mid),
                        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.ToolTipBase, base),
                        (QPalette.ColorRole.ToolTipText, text), (QPalette.ColorRole.Highlight, QColor(36, 114, 200)),
                        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
                        (QPalette.ColorRole.Link, QColor(59, 142, 234))):
        dark.setColor(role, color)
    app.setPalette(dark)


class SettingsDialog(QDialog):
    applied = Signal()

    def __init__(self, settings: QSettings, data_dir: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.settings = settings
        self.data_dir = QLabel(data_dir)
        self.data_dir.setObjectName("dataDirLabel")
        self.interpreter = QComboBox()
        self.interpreter.setObjectName("defaultInterpreter")
        self.interpreter.setEditable(True)
        self.interpreter.addItems(["", *detect_interpreters()])
        self.interpreter.setCurrentText(value(settings, "run/default_interpreter"))
        self.max_concurrent = QSpinBox()
        self.max_concurrent.setObjectName("settingsMaxConcurrent")
        self.max_concurrent.setRange(1, 256)
        self.max_concurrent.setValue(value(settings, "run/max_concurrent"))
        self.keep_days = QSpinBox()
        self.keep_days.setRange(0, 3650)
        self.keep_days.setSpecialValueText("forever")
        self.keep_days.setSuffix(" days")
        self.keep_days.setValue(value(settings, "history/keep_days"))
        self.keep_runs = QSpinBox()
        self.keep_runs.setRange(0, 10_000_000)
        self.keep_runs.setSpecialValueText("all")
        self.keep_runs.setValue(value(settings, "history/keep_runs"))
        self.pane_limit = QSpinBox()
        self.pane_limit.setObjectName("paneLineLimit")
        self.pane_limit.setRange(100, 1_000_000)
        self.pane_limit.setValue(value(settings, "view/pane_line_limit"))
        self.theme = QComboBox()
        self.theme.setObjectName("themeCombo")
        self.theme.addItems(["system", "light", "dark"])
        self.theme.setCurrentText(value(settings, "view/theme"))
        self.notify_fail = QCheckBox("when a run or schedule fails")
        self.notify_fail.setChecked(value(settings, "notify/failures"))
        self.notify_ok = QCheckBox("when a run succeeds")
        self.notify_ok.setChecked(value(settings, "notify/successes"))
        form = QFormLayout()
        form.addRow("Data folder", self.data_dir)
        form.addRow("Default interpreter", self.interpreter)
        form.addRow("Max concurrent runs", self.max_concurrent)
        form.addRow("Keep history", self.keep_days)
        form.addRow("…and at most", self.keep_runs)
        form.addRow("Log pane lines", self.pane_limit)
        form.addRow("Theme", self.theme)
        form.addRow("Notify", self.notify_fail)
        form.addRow("", self.notify_ok)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(buttons)

    def save(self) -> None:
        s = self.settings
        s.setValue("run/default_interpreter", self.interpreter.currentText().strip())
        s.setValue("run/max_concurrent", self.max_concurrent.value())
        s.setValue("history/keep_days", self.keep_days.value())
        s.setValue("history/keep_runs", self.keep_runs.value())
        s.setValue("view/pane_line_limit", self.pane_limit.value())
        s.setValue("view/theme", self.theme.currentText())
        s.setValue("notify/failures", self.notify_fail.isChecked())
        s.setValue("notify/successes", self.notify_ok.isChecked())
        s.sync()
        apply_theme(self.theme.currentText())
        self.applied.emit()
        self.accept()
