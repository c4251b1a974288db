"""The launch panel: what to run, how, and which pattern - with the exact argv previewed.

Everything typed here is saved as a draft on every change (QSettings), so a crash or an
accidental close loses nothing; a form can be saved as a reusable task definition.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from prismq_desktop.core.models import RunSpec, TargetKind
from prismq_desktop.core.patterns import PatternAdvisor, Priority, TaskPattern
from prismq_desktop.core.process.launch import LaunchError, is_frozen, resolve
from prismq_desktop.core.secrets import MASK, looks_secret


def detect_interpreters() -> list[str]:
    """Pythons a person probably means: this one (unless frozen), PATH, pyenv, venvs nearby."""
    found: list[str] = []
    if not is_frozen():
        found.append(sys.executable)
    names = ["python3", "python"] + [f"python3.{m}" for m in range(8, 15)]
    for name in names:
        path = shutil.which(name)
        if path:
            found.append(os.path.realpath(path) if "/shims/" not in path else path)
    home = os.path.expanduser("~")
    patterns = [os.path.join(home, ".pyenv", "versions", "*", "bin", "python"),
                os.path.join(os.getcwd(), ".venv", "bin", "python"), os.path.join(os.getcwd(), "venv", "bin", "python"),
                os.path.join(os.getcwd(), ".venv", "Scripts", "python.exe")]
    for pattern in patterns:
        found.extend(sorted(glob.glob(pattern)))
    seen: set[str] = set()
    unique = []
    for path in found:
        if path not in seen and os.path.exists(path):
            seen.add(path)
            unique.append(path)
    return unique


class EnvTable(QTableWidget):
    """Key/value overrides; values whose key looks secret are masked on screen."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 2, parent)
        self.setObjectName("envTable")
        self.setHorizontalHeaderLabels(["Variable", "Value"])
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().hide()
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._secrets: dict[int, str] = {}
        self.itemChanged.connect(self._changed)
        self._updating = False

    def add_row(self, key: str = "", value: str = "") -> None:
        row = self.rowCount()
        self.insertRow(row)
        self._updating = True
        self.setItem(row, 0, QTableWidgetItem(key))
        self.setItem(row, 1, QTableWidgetItem(value))
        self._updating = False
        self._mask(row)

    def _changed(self, item: QTableWidgetItem) -> None:
        if self._updating:
            return
        row = item.row()
        if item.column() == 1 and item.text() != MASK:
            self._secrets[row] = item.text()
        self._mask(row)

    def _mask(self, row: int) -> None:
        key_item, value_item = self.item(row, 0), self.item(row, 1)
        if key_item is None or value_item is None:
            return
        value = self._secrets.get(row, value_item.text())
        self._secrets[row] = value
        shown = MASK if looks_secret(key_item.text()) and value else value
        if value_item.text() != shown:
            self._updating = True
            value_item.setText(shown)
            self._updating = False

    def remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.selectedIndexes()}, reverse=True)
        for row in rows:
            self.removeRow(row)
        values = [self.values_row(r) for r in range(self.rowCount())]
        self._secrets = {i: v for i, (_, v) in enumerate(values)}

    def values_row(self, row: int) -> tuple[str, str]:
        key_item = self.item(row, 0)
        return (key_item.text().strip() if key_item else ""), self._secrets.get(row, "")

    def env(self) -> dict[str, str]:
        out = {}
        for row in range(self.rowCount()):
            key, value = self.values_row(row)
            if key:
                out[key] = value
        return out

    def set_env(self, env: Mapping[str, object]) -> None:
        self.setRowCount(0)
        self._secrets = {}
        for key, value in env.items():
            self.add_row(key, "" if value is None else str(value))


class LaunchPanel(QWidget):
    """Builds a RunSpec plus orchestration options; emits `launch(spec, options)`."""

    launchRequested = Signal(object, dict)
    saveRequested = Signal(object, dict)

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.kind = QComboBox()
        self.kind.setObjectName("kindCombo")
        self.kind.addItems(["Python script", "Module (-m)", "Command"])
        self.target = QLineEdit()
        self.target.setObjectName("targetEdit")
        self.target.setPlaceholderText("path/to/script.py, a module name, or a command")
        browse = QToolButton()
        browse.setText("…")
        browse.setAccessibleName("Browse for a script")
        browse.setToolTip("Browse for a script")
        browse.clicked.connect(self._browse)
        self.args = QLineEdit()
        self.args.setObjectName("argsEdit")
        self.args.setPlaceholderText("arguments, quoted as in a shell")
        self.preview = QLabel()
        self.preview.setObjectName("argvPreview")
        self.preview.setWordWrap(True)
        self.preview.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.cwd = QLineEdit()
        self.cwd.setObjectName("cwdEdit")
        self.cwd.setPlaceholderText("working directory (default: the script's folder)")
        self.interpreter = QComboBox()
        self.interpreter.setObjectName("interpreterCombo")
        self.interpreter.setEditable(True)
        self.interpreter.addItems(detect_interpreters())
        self.env = EnvTable()
        self.env.setMaximumHeight(110)
        add_env, del_env = QToolButton(), QToolButton()
        add_env.setText("+")
        add_env.setAccessibleName("Add variable")
        del_env.setText("−")
        del_env.setAccessibleName("Remove variable")
        add_env.clicked.connect(lambda: self.env.add_row())
        del_env.clicked.connect(self.env.remove_selected)
        self.soft_timeout = QDoubleSpinBox()
        self.soft_timeout.setObjectName("softTimeout")
        self.soft_timeout.setRange(0, 7 * 86400)
        self.soft_timeout.setSpecialValueText("none")
        self.soft_timeout.setSuffix(" s")
        self.hard_timeout = QDoubleSpinBox()
        self.hard_timeout.setObjectName("hardTimeout")
        self.hard_timeout.setRange(0, 7 * 86400)
        self.hard_timeout.setSpecialValueText("none")
        self.hard_timeout.setSuffix(" s")
        self.retries = QSpinBox()
        self.retries.setObjectName("retriesSpin")
        self.retries.setRange(0, 100)
        self.priority = QComboBox()
        self.priority.setObjectName("priorityCombo")
        self.priority.addItems([p.name.lower() for p in Priority])
        self.priority.setCurrentText(Priority.NORMAL.name.lower())
        self.pattern = QComboBox()
        self.pattern.setObjectName("patternCombo")
        self.pattern.addItems([p.value.replace("_", " ") for p in (TaskPattern.LONG_RUNNING, TaskPattern.SIMPLE,
                                                                   TaskPattern.FIRE_AND_FORGET, TaskPattern.POOLED)])
        self._pattern_chosen = False  # set once a person picks a pattern: then the advisor only advises
        self.pattern.activated.connect(self._pattern_picked)
        self.advice = QLabel()
        self.advice.setObjectName("patternAdvice")
        self.advice.setWordWrap(True)
        self.expected = QDoubleSpinBox()
        self.expected.setRange(0, 86400 * 7)
        self.expected.setSuffix(" s expected")
        self.expected.setValue(30)
        self.launch_button = QPushButton("Launch")
        self.launch_button.setObjectName("launchButton")
        self.launch_button.setDefault(True)
        self.launch_button.clicked.connect(self.request_launch)
        self.save_button = QPushButton("Save as task…")
        self.save_button.setObjectName("saveTaskButton")
        self.save_button.clicked.connect(self._save)

        target_row = QHBoxLayout()
        target_row.addWidget(self.kind)
        target_row.addWidget(self.target, 1)
        target_row.addWidget(browse)
        env_row = QHBoxLayout()
        env_row.addWidget(self.env, 1)
        env_buttons = QVBoxLayout()
        env_buttons.addWidget(add_env)
        env_buttons.addWidget(del_env)
        env_buttons.addStretch(1)
        env_row.addLayout(env_buttons)
        self.env.setFixedHeight(96)
        limits = QHBoxLayout()
        limits.addWidget(QLabel("soft"))
        limits.addWidget(self.soft_timeout, 1)
        limits.addWidget(QLabel("hard"))
        limits.addWidget(self.hard_timeout, 1)
        retry_row = QHBoxLayout()
        retry_row.addWidget(self.retries)
        retry_row.addWidget(QLabel("priority"))
        retry_row.addWidget(self.priority, 1)
        pattern_row = QHBoxLayout()
        pattern_row.addWidget(self.pattern, 1)
        pattern_row.addWidget(self.expected, 1)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Run", target_row)
        form.addRow("Arguments", self.args)
        form.addRow("", self.preview)
        form.addRow("Working dir", self.cwd)
        form.addRow("Interpreter", self.interpreter)
        form.addRow("Environment", env_row)
        form.addRow("Timeouts", limits)
        form.addRow("Retries", retry_row)
        form.addRow("Pattern", pattern_row)
        form.addRow("", self.advice)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.launch_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addStretch(1)
        for w in (self.target, self.args, self.cwd, self.interpreter):
            w.setMinimumWidth(120)
        self.interpreter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.interpreter.setMinimumContentsLength(18)

        self._draft_timer = QTimer(self)
        self._draft_timer.setSingleShot(True)
        self._draft_timer.timeout.connect(self.save_draft)
        for sig in (self.target.textChanged, self.args.textChanged, self.cwd.textChanged,
                    self.interpreter.currentTextChanged, self.kind.currentIndexChanged, self.env.itemChanged,
                    self.pattern.currentIndexChanged, self.expected.valueChanged, self.retries.valueChanged):
            sig.connect(self._changed)
        self.setAcceptDrops(True)
        self.load_draft()
        self._changed()

    # ------------------------------------------------------------------ spec
    def spec(self) -> RunSpec:
        kind = [TargetKind.SCRIPT, TargetKind.MODULE, TargetKind.EXECUTABLE][self.kind.currentIndex()]
        target = self.target.text().strip()
        cwd = self.cwd.text().strip() or None
        if cwd is None and kind is TargetKind.SCRIPT and target:
            cwd = os.path.dirname(os.path.abspath(os.path.expanduser(target))) or None
        return RunSpec(
            target=target, args=self.args.text(), kind=kind, cwd=cwd, env=self.env.env(),
            interpreter=self.interpreter.currentText().strip() or None,
            soft_timeout=self.soft_timeout.value() or None, hard_timeout=self.hard_timeout.value() or None,
        )

    def options(self) -> dict[str, Any]:
        return {"pattern": TaskPattern.parse(self.pattern.currentText()), "max_retries": self.retries.value(),
                "priority": self.priority.currentText()}

    def set_spec(self, spec: RunSpec, options: dict[str, Any] | None = None) -> None:
        self.kind.setCurrentIndex({TargetKind.MODULE: 1, TargetKind.EXECUTABLE: 2}.get(spec.kind, 0))
        self.target.setText(spec.target)
        self.args.setText(spec.args if isinstance(spec.args, str) else shlex.join(spec.args))
        self.cwd.setText(spec.cwd or "")
        if spec.interpreter:
            self.interpreter.setCurrentText(spec.interpreter)
        self.env.set_env(dict(spec.env))
        self.soft_timeout.setValue(spec.soft_timeout or 0)
        self.hard_timeout.setValue(spec.hard_timeout or 0)
        options = options or {}
        self.retries.setValue(int(options.get("max_retries", 0)))
        if options.get("pattern"):
            self._pattern_chosen = True  # a saved task or a rerun names its pattern: keep it
            self.pattern.setCurrentText(TaskPattern.parse(options["pattern"]).value.replace("_", " "))
        if options.get("priority") is not None:
            try:  # a name ("high") from a form, or the number a run record keeps
                self.priority.setCurrentText(Priority.parse(options["priority"]).name.lower())
            except ValueError:
                pass

    # ------------------------------------------------------------------ feedback
    def _changed(self, *_: object) -> None:
        self._update_preview()
        self._update_advice()
        self._draft_timer.start(300)

    def _update_preview(self) -> None:
        spec = self.spec()
        if not spec.target:
            self.preview.setText("<i>choose a script, module or command</i>")
            self.launch_button.setEnabled(False)
            return
        try:
            launch = resolve(spec)
        except LaunchError as exc:
            self.preview.setText(f"<span style='color:#cd3131'>⚠ {_html(str(exc))}</span>")
            self.launch_button.setEnabled(False)
            return
        self.launch_button.setEnabled(True)
        self.preview.setText(f"<code>{_html(shlex.join(launch.argv))}</code><br><small>in {_html(launch.cwd)}</small>")

    def _update_advice(self) -> None:
        # the window follows every run's output in a pane: that is streaming, so say so
        rec = PatternAdvisor.recommend(expected_duration_seconds=self.expected.value(),
                                       requires_streaming=True, needs_result=True)
        info = PatternAdvisor.explain(rec.pattern)
        self.advice.setText(f"Advisor: <b>{info.name}</b> — {_html(rec.reason)}")
        label = rec.pattern.value.replace("_", " ")
        if not self._pattern_chosen and self.pattern.findText(label) >= 0 and self.pattern.currentText() != label:
            self.pattern.setCurrentText(label)  # the default agrees with the advice until a person picks one

    def _pattern_picked(self, _index: int) -> None:
        self._pattern_chosen = True

    def _browse(self) -> None:
        dialog = QFileDialog(self, "Choose a Python script", os.path.dirname(self.target.text()) or os.getcwd(),
                             "Python scripts (*.py *.pyw);;All files (*)")
        dialog.fileSelected.connect(self.set_script)
        dialog.open()  # never exec(): the event loop keeps running

    def set_script(self, path: str) -> None:
        self.kind.setCurrentIndex(0 if path.lower().endswith((".py", ".pyw")) else 2)
        self.target.setText(path)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.set_script(url.toLocalFile())
                event.acceptProposedAction()
                return

    def request_launch(self) -> None:
        """Ask for a launch of what the form shows (Launch button, Ctrl+Return): emits launchRequested."""
        self.save_draft()
        if self.interpreter.currentText():
            self.settings.setValue("launch/last_interpreter", self.interpreter.currentText())
        self.launchRequested.emit(self.spec(), self.options())

    def _save(self) -> None:
        self.saveRequested.emit(self.spec(), self.options())

    # ------------------------------------------------------------------ draft (nothing typed is lost)
    def save_draft(self) -> None:
        spec = self.spec()
        data = spec.to_dict()
        data["cwd"] = self.cwd.text().strip() or None  # what was typed, not the default shown in the preview
        data["options"] = {k: (v.value if hasattr(v, "value") else v) for k, v in self.options().items()}
        import json

        self.settings.setValue("launch/draft", json.dumps(data))
        self.settings.sync()

    def load_draft(self) -> None:
        import json

        raw = self.settings.value("launch/draft")
        last = self.settings.value("launch/last_interpreter")
        if last:
            self.interpreter.setCurrentText(str(last))
        if not raw:
            return
        try:
            data = json.loads(str(raw))
            options = data.pop("options", {})
            self.set_spec(RunSpec.from_dict(data), options)
        except (ValueError, KeyError, TypeError):
            pass


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
