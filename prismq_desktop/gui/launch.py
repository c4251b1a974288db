"""The launch panel: what to run, how, and which pattern - with the exact argv previewed.

Everything typed here is saved as a draft on every change (QSettings), so a crash or an
accidental close loses nothing; a form can be saved as a reusable task definition.
"""

from __future__ import annotations

import glob
import json
import os
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

from prismq_desktop.core.functions.payload import PayloadError, decode_call, encode_call
from prismq_desktop.core.models import RunSpec, TargetKind
from prismq_desktop.core.patterns import PatternAdvisor, Priority, TaskPattern
from prismq_desktop.core.process import cmdline, interp
from prismq_desktop.core.process.launch import LaunchError, check_spec, is_frozen, resolve
from prismq_desktop.core.secrets import MASK, looks_secret
from prismq_desktop.gui.where import WhereChoice

KINDS = [TargetKind.SCRIPT, TargetKind.MODULE, TargetKind.EXECUTABLE, TargetKind.FUNCTION]
FUNCTION_INDEX = 3


def _no_constant(value: str) -> Any:
    raise ValueError(f"{value} is not a JSON value")


def parse_json_arguments(text: str) -> tuple[list[Any], dict[str, Any]]:
    """A function's arguments as typed: a JSON list (positional) or object (keyword), empty for none.

    ValueError with one line for a person ("not valid JSON at column 5: expecting value")."""
    if not text.strip():
        return [], {}
    try:
        value = json.loads(text, parse_constant=_no_constant)  # columns count from what was typed
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno}, column {exc.colno}" if "\n" in text else f"column {exc.colno}"
        raise ValueError(f"not valid JSON at {at}: {exc.msg[:1].lower()}{exc.msg[1:]}") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if isinstance(value, list):
        args, kwargs = value, {}
    elif isinstance(value, dict):
        args, kwargs = [], value
    else:
        what = {bool: "true/false", int: "a number", float: "a number", str: "a string"}.get(type(value), "null")
        raise ValueError(f"give a JSON list (positional arguments) or object (keyword arguments), not {what}")
    try:
        encode_call(args, kwargs)  # names must be identifiers
    except PayloadError as exc:
        raise ValueError(str(exc)) from None
    return args, kwargs


def arguments_text(payload: str | None) -> str:
    """A stored call as the JSON the form shows: a list, an object, or both as {"args", "kwargs"}."""
    try:
        args, kwargs = decode_call(payload)
    except (ValueError, TypeError):
        return payload or ""
    if args and kwargs:
        return json.dumps({"args": args, "kwargs": kwargs})
    return json.dumps(kwargs) if kwargs else (json.dumps(args) if args else "")


def detect_interpreters() -> list[str]:
    """Pythons a person probably means: this one (unless frozen), PATH, pyenv, venvs nearby."""
    found: list[str] = []
    if not is_frozen():
        found.append(sys.executable)
    names = ["python3", "python"] + [f"python3.{m}" for m in range(8, 15)]
    for name in names:
        path = shutil.which(name)
        if path and interp.is_store_alias(path):
            path = interp.probe(path)  # Windows: the Store's alias is listed only if it runs a Python
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
    scheduleRequested = Signal(object, dict)

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.kind = QComboBox()
        self.kind.setObjectName("kindCombo")
        self.kind.addItems(["Python script", "Module (-m)", "Command", "Python function"])
        self.target = QLineEdit()
        self.target.setObjectName("targetEdit")
        self.target.setPlaceholderText("path/to/script.py, a module name, or a command")
        browse = QToolButton()
        browse.setText("…")
        browse.setAccessibleName("Browse for a script")
        browse.setToolTip("Browse for a script")
        browse.clicked.connect(self._browse)
        self.function = QLineEdit()
        self.function.setObjectName("functionEdit")
        self.function.setPlaceholderText("function")
        self.function.setToolTip("The module-level function to call (a name, or Class.method)")
        self.args_error = QLabel()
        self.args_error.setObjectName("argsError")
        self.args_error.setWordWrap(True)
        self.args_error.hide()
        self.where = WhereChoice()
        self.where.setObjectName("whereChoice")
        self._both_args: tuple[list[Any], dict[str, Any]] | None = None  # a stored call with both kinds
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
        self.schedule_button = QPushButton("Schedule…")
        self.schedule_button.setObjectName("scheduleFormButton")
        self.schedule_button.setToolTip("A new schedule that runs what this form shows")
        self.schedule_button.clicked.connect(lambda: self.scheduleRequested.emit(self.spec(), self.options()))

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
        form.addRow("Function", self.function)
        form.addRow("Arguments", self.args)
        form.addRow("", self.args_error)
        form.addRow("", self.preview)
        form.addRow("Working dir", self.cwd)
        form.addRow("Interpreter", self.interpreter)
        form.addRow("Where", self.where)
        form.addRow("Environment", env_row)
        form.addRow("Timeouts", limits)
        form.addRow("Retries", retry_row)
        form.addRow("Pattern", pattern_row)
        form.addRow("", self.advice)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.schedule_button)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.launch_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addStretch(1)
        for w in (self.target, self.args, self.cwd, self.interpreter):
            w.setMinimumWidth(120)
        self.function.setMinimumWidth(70)
        self._form = form
        self.interpreter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.interpreter.setMinimumContentsLength(18)

        self._draft_timer = QTimer(self)
        self._draft_timer.setSingleShot(True)
        self._draft_timer.timeout.connect(self.save_draft)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        for sig in (self.target.textChanged, self.args.textChanged, self.cwd.textChanged, self.function.textChanged,
                    self.where.changed,
                    self.interpreter.currentTextChanged, self.kind.currentIndexChanged, self.env.itemChanged,
                    self.pattern.currentIndexChanged, self.expected.valueChanged, self.retries.valueChanged):
            sig.connect(self._changed)
        self.setAcceptDrops(True)
        self._kind_changed()
        self.load_draft()
        self._changed()

    # ------------------------------------------------------------------ spec
    def is_function(self) -> bool:
        return self.kind.currentIndex() == FUNCTION_INDEX

    def function_target(self) -> str:
        """"pkg.mod:func" / "file.py:func" from the two fields (a whole "x:f" typed in the first also works)."""
        module, func = self.target.text().strip(), self.function.text().strip()
        if not func and ":" in module:
            return module
        return f"{module}:{func}" if module or func else ""

    def arguments_problem(self) -> str | None:
        """Why the JSON arguments of a function cannot be used (None when they can, or for other kinds)."""
        if not self.is_function():
            return None
        try:
            self._call()
        except ValueError as exc:
            return str(exc)
        return None

    def _call(self) -> tuple[list[Any], dict[str, Any]]:
        text = self.args.text()
        if self._both_args is not None and text == arguments_text(encode_call(*self._both_args)):
            return self._both_args  # shown as {"args", "kwargs"}: a stored call with both, unchanged
        return parse_json_arguments(text)

    def spec(self) -> RunSpec:
        kind = KINDS[max(0, self.kind.currentIndex())]
        target = self.function_target() if kind is TargetKind.FUNCTION else self.target.text().strip()
        cwd = self.cwd.text().strip() or None
        module = target.rpartition(":")[0] if kind is TargetKind.FUNCTION else target
        defaulted = cwd is None and bool(target) and (kind is TargetKind.SCRIPT or (
            kind is TargetKind.FUNCTION and module.lower().endswith((".py", ".pyw"))))
        if defaulted:
            cwd = os.path.dirname(os.path.abspath(os.path.expanduser(module))) or None
        args: str | tuple[str, ...] = self.args.text()
        payload = None
        if kind is TargetKind.FUNCTION:
            args = ()
            try:
                payload = encode_call(*self._call())
            except ValueError:
                payload = encode_call([], {})  # not launchable (the button is off); the draft keeps the text
            if defaulted and not os.path.isabs(os.path.expanduser(module)):  # the file, not cwd/file
                target = os.path.abspath(os.path.expanduser(module)) + ":" + target.rpartition(":")[2]
        return RunSpec(
            target=target, args=args, kind=kind, cwd=cwd, env=self.env.env(),
            interpreter=self.interpreter.currentText().strip() or None,
            soft_timeout=self.soft_timeout.value() or None, hard_timeout=self.hard_timeout.value() or None,
            payload=payload, where=self.where.where(),
        )

    def options(self) -> dict[str, Any]:
        return {"pattern": TaskPattern.parse(self.pattern.currentText()), "max_retries": self.retries.value(),
                "priority": self.priority.currentText()}

    def set_spec(self, spec: RunSpec, options: dict[str, Any] | None = None) -> None:
        self.kind.setCurrentIndex({TargetKind.MODULE: 1, TargetKind.EXECUTABLE: 2,
                                   TargetKind.FUNCTION: FUNCTION_INDEX}.get(spec.kind, 0))
        self._both_args = None
        if spec.kind is TargetKind.FUNCTION:
            module, _sep, func = spec.target.rpartition(":")
            self.target.setText(module)
            self.function.setText(func)
            try:
                args, kwargs = decode_call(spec.payload)
                if args and kwargs:
                    self._both_args = (args, kwargs)
            except (ValueError, TypeError):
                pass
            self.args.setText(arguments_text(spec.payload))
        else:
            self.target.setText(spec.target)
            self.function.clear()
            self.args.setText(spec.args if isinstance(spec.args, str) else cmdline.display(spec.args))
        self.where.set_where(spec.where)
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

    def _kind_changed(self, *_: object) -> None:
        function = self.is_function()
        self._form.setRowVisible(self.function, function)
        self.target.setPlaceholderText("package.module or path/to/file.py" if function
                                       else "path/to/script.py, a module name, or a command")
        self.args.setPlaceholderText('JSON: [1, "a"] (positional) or {"width": 640} (keyword)' if function
                                     else "arguments, quoted as in a shell")
        self.args.setToolTip("The function's arguments as JSON: a list for positional ones, an object for keyword "
                             "ones" if function else "Split as a shell would (quotes keep spaces)")

    def _update_preview(self) -> None:
        problem = self.arguments_problem()
        self.args_error.setText(f"⚠ {problem}" if problem else "")
        self.args_error.setVisible(bool(problem))
        self.args_error.setStyleSheet("color:#cd3131")
        spec = self.spec()
        if not spec.target or (self.is_function() and not self.function_target().rpartition(":")[2]):
            self.preview.setText("<i>choose a module or file and a function</i>" if self.is_function()
                                 else "<i>choose a script, module or command</i>")
            self.launch_button.setEnabled(False)
            return
        where_problem = self.where.problem()
        if problem or where_problem:
            self.preview.setText(f"<span style='color:#cd3131'>⚠ {_html(where_problem)}</span>" if where_problem else "")
            self.launch_button.setEnabled(False)
            return
        queue = spec.remote_queue
        try:
            if queue is not None:
                check_spec(spec)  # the worker finds the script, interpreter and cwd on its own disk
            else:
                launch = resolve(spec)
        except LaunchError as exc:
            self.preview.setText(f"<span style='color:#cd3131'>⚠ {_html(str(exc))}</span>")
            self.launch_button.setEnabled(False)
            return
        self.launch_button.setEnabled(True)
        if queue is not None:
            self.preview.setText(f"<code>{_html(spec.target)}</code><br><small>on a worker of queue "
                                 f"{_html(queue)} (resolved on its machine)</small>")
            return
        place = " · warm pool" if spec.where == "pool" else ""
        shown = cmdline.display(launch.argv)  # on Windows list2cmdline: exactly the child's command line
        self.preview.setText(f"<code>{_html(shown)}</code><br><small>in {_html(launch.cwd)}{place}</small>")

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
        if not (self.is_function() and path.lower().endswith((".py", ".pyw"))):  # a function's file stays a function
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
        if self.is_function():
            data["target"] = self.function_target()  # as typed (relative stays relative)
            data["arguments_text"] = self.args.text()  # kept even while it is not valid JSON yet

        self.settings.setValue("launch/draft", json.dumps(data))
        self.settings.sync()

    def load_draft(self) -> None:
        raw = self.settings.value("launch/draft")
        last = self.settings.value("launch/last_interpreter")
        if last:
            self.interpreter.setCurrentText(str(last))
        if not raw:
            return
        try:
            data = json.loads(str(raw))
            options = data.pop("options", {})
            typed = data.pop("arguments_text", None)
            self.set_spec(RunSpec.from_dict(data), options)
            if isinstance(typed, str):
                self.args.setText(typed)
        except (ValueError, KeyError, TypeError):
            pass


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
