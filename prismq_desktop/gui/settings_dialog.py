"""Settings: persisted in settings.ini in the data dir, applied at once.

Retention is stored so that it can never delete what the user did not choose to delete:
"forever" / "all" is stored as an empty value (and every zero an older version wrote reads
as "keep everything" too, `RetentionPolicy.from_settings`); the retention fields are only
written when the user changed them, and a change that would delete runs says how many
and asks first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProxyStyle,
    QPushButton,
    QSpinBox,
    QStyleOption,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from prismq_desktop.core.orchestrator.orchestrator import DEFAULT_MAX_CONCURRENT
from prismq_desktop.core.secrets import SecretVault
from prismq_desktop.core.wording import plural
from prismq_desktop.gui.launch import detect_interpreters

if TYPE_CHECKING:
    from prismq_desktop.core.store.registry import RunRegistry

EDITOR_KEY = "editor/command"
EDITOR_PLACEHOLDER = "code -g {file}:{line}"

DEFAULTS: dict[str, Any] = {
    "run/max_concurrent": DEFAULT_MAX_CONCURRENT,  # the core's own default
    "run/default_interpreter": "",
    "history/keep_days": 0,
    "history/keep_runs": 0,
    EDITOR_KEY: "",
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
            return int(float(raw or 0)) if isinstance(raw, (int, float, str)) else default
        except (ValueError, OverflowError):
            return default
    return str(raw or "")


_SYSTEM_PALETTE: list[QPalette] = []

# What the dark theme draws on (Window/Button and Base) and with; placeholders and disabled
# text are chosen to keep 4.5:1 (WCAG AA) on both (tests/gui/test_settings.py computes it).
DARK_WINDOW, DARK_BASE, DARK_TEXT = "#353537", "#252526", "#dcdcdc"
DARK_PLACEHOLDER = "#a8a8a8"
DARK_DISABLED = "#a3a3a3"
# Fusion's light palette greys placeholders and disabled text below 4.5:1 on white
LIGHT_PLACEHOLDER = "#636363"
LIGHT_DISABLED = "#6b6b6b"


def _dark_palette() -> QPalette:
    dark = QPalette()
    R, G = QPalette.ColorRole, QPalette.ColorGroup  # noqa: N806
    base, text, mid = QColor(DARK_BASE), QColor(DARK_TEXT), QColor(DARK_WINDOW)
    for role, color in ((R.Window, mid), (R.WindowText, text), (R.Base, base), (R.AlternateBase, mid),
                        (R.Text, text), (R.Button, mid), (R.ButtonText, text), (R.ToolTipBase, base),
                        (R.ToolTipText, text), (R.Highlight, QColor(36, 114, 200)),
                        (R.HighlightedText, QColor(255, 255, 255)), (R.Link, QColor(59, 142, 234)),
                        (R.LinkVisited, QColor(188, 63, 188)), (R.BrightText, QColor(255, 255, 255)),
                        (R.PlaceholderText, QColor(DARK_PLACEHOLDER)),
                        # the bevel roles Fusion draws frames and disabled icons with
                        (R.Light, QColor(90, 90, 92)), (R.Midlight, QColor(70, 70, 72)), (R.Mid, QColor(45, 45, 47)),
                        (R.Dark, QColor(30, 30, 31)), (R.Shadow, QColor(15, 15, 15))):
        dark.setColor(role, color)
    disabled = QColor(DARK_DISABLED)
    for role in (R.WindowText, R.Text, R.ButtonText, R.PlaceholderText):
        dark.setColor(G.Disabled, role, disabled)
    dark.setColor(G.Disabled, R.Base, mid)  # a disabled field looks disabled without losing its text
    dark.setColor(G.Disabled, R.Highlight, QColor(80, 80, 82))
    dark.setColor(G.Disabled, R.HighlightedText, disabled)
    return dark


def _light_palette(standard: QPalette) -> QPalette:
    light = QPalette(standard)
    R, G = QPalette.ColorRole, QPalette.ColorGroup  # noqa: N806
    for group in (G.Active, G.Inactive):
        light.setColor(group, R.PlaceholderText, QColor(LIGHT_PLACEHOLDER))
    for role in (R.WindowText, R.Text, R.ButtonText, R.PlaceholderText):
        light.setColor(G.Disabled, role, QColor(LIGHT_DISABLED))
    return light


DARK_DISABLED_ICON = "#8c8c8c"  # 3:1 (WCAG non-text contrast) on the dark window and buttons


class _ThemeStyle(QProxyStyle):
    """Fusion; in the dark theme, disabled icons are drawn light enough to see on dark bars.

    Fusion greys a disabled icon along black → window colour → white, so on a dark window
    the usual dark glyphs (pause, play) become black on near-black. One instance is set on
    the application once and kept for its life: QApplication deletes a style it is given when
    another is set, and swapping Python-made styles back and forth while widgets still paint
    with the old one is how a PySide app crashes.
    """

    dark = False

    def generatedIconPixmap(self, mode: QIcon.Mode, pixmap: QPixmap | QImage, opt: QStyleOption) -> QPixmap:  # noqa: N802
        if mode != QIcon.Mode.Disabled or not self.dark:
            return super().generatedIconPixmap(mode, pixmap, opt)
        if isinstance(pixmap, QImage):
            pixmap = QPixmap.fromImage(pixmap)
        out = QPixmap(pixmap.size())
        out.setDevicePixelRatio(pixmap.devicePixelRatio())
        out.fill(QColor(0, 0, 0, 0))
        painter = QPainter(out)
        painter.setOpacity(0.9)
        painter.drawPixmap(0, 0, pixmap)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceIn)
        painter.fillRect(out.rect(), QColor(DARK_DISABLED_ICON))  # the icon's shape, one legible grey
        painter.end()
        return out


_APP_STYLE: list[_ThemeStyle] = []  # the one style set on the application (kept referenced for its life)


def _theme_style(app: QApplication) -> _ThemeStyle:
    if not _APP_STYLE:
        style = _ThemeStyle("Fusion")
        app.setStyle(style)
        _APP_STYLE.append(style)
    return _APP_STYLE[0]


def apply_theme(theme: str) -> None:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return
    if not _SYSTEM_PALETTE:
        _SYSTEM_PALETTE.append(app.palette())
    if theme == "system":
        if _APP_STYLE:
            _APP_STYLE[0].dark = False
        app.setPalette(_SYSTEM_PALETTE[0])
        return
    style = _theme_style(app)
    if theme == "light":
        style.dark = False
        app.setPalette(_light_palette(style.standardPalette()))
        return
    style.dark = True
    app.setPalette(_dark_palette())


class SettingsDialog(QDialog):
    """The settings form. Enter saves (Save is the default button)."""

    applied = Signal()

    def __init__(self, settings: QSettings, data_dir: str, parent: QWidget | None = None, *,
                 registry: RunRegistry | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.settings = settings
        self.home = data_dir
        # the registry a retention preview counts in: given, the window's, or opened from the data dir
        self._registry = registry or getattr(getattr(parent, "orch", None), "registry", None)
        self.confirm_box: QMessageBox | None = None
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
        self.keep_days.setObjectName("settingsKeepDays")
        self.keep_days.setRange(0, 3650)
        self.keep_days.setSpecialValueText("forever")
        self.keep_days.setSuffix(" days")
        self.keep_days.setValue(value(settings, "history/keep_days"))
        self.keep_runs = QSpinBox()
        self.keep_runs.setObjectName("settingsKeepRuns")
        self.keep_runs.setRange(0, 10_000_000)
        self.keep_runs.setSpecialValueText("all")
        self.keep_runs.setSuffix(" runs")
        self.keep_runs.setValue(value(settings, "history/keep_runs"))
        self._loaded_retention = (self.keep_days.value(), self.keep_runs.value())
        self.pane_limit = QSpinBox()
        self.pane_limit.setObjectName("paneLineLimit")
        self.pane_limit.setRange(100, 1_000_000)
        self.pane_limit.setValue(value(settings, "view/pane_line_limit"))
        self.editor = QLineEdit(value(settings, EDITOR_KEY))
        self.editor.setObjectName("editorCommand")
        self.editor.setPlaceholderText(EDITOR_PLACEHOLDER)
        self.editor.setClearButtonEnabled(True)
        self.editor.setToolTip("Opens traceback links of the log panes; {file} and {line} are filled in.\n"
                               "Empty: $VISUAL or $EDITOR, else VS Code (code) if it is on PATH.")
        self.theme = QComboBox()
        self.theme.setObjectName("themeCombo")
        self.theme.addItems(["system", "light", "dark"])
        self.theme.setCurrentText(value(settings, "view/theme"))
        self.notify_fail = QCheckBox("when a run or schedule fails")
        self.notify_fail.setChecked(value(settings, "notify/failures"))
        self.notify_ok = QCheckBox("when a run succeeds")
        self.notify_ok.setChecked(value(settings, "notify/successes"))
        self._build_broker()
        form = QFormLayout()
        form.addRow("Data folder", self.data_dir)
        form.addRow("Default interpreter", self.interpreter)
        form.addRow("Max concurrent runs", self.max_concurrent)
        form.addRow("Keep history", self.keep_days)
        form.addRow("…and at most", self.keep_runs)
        form.addRow("Log pane lines", self.pane_limit)
        form.addRow("Editor command", self.editor)
        form.addRow("Theme", self.theme)
        form.addRow("Broker URL", self.broker_row)
        form.addRow("", self.broker_result)
        form.addRow("Notify", self.notify_fail)
        form.addRow("", self.notify_ok)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        save_button.setObjectName("settingsSave")
        save_button.setDefault(True)  # Enter saves, from any field
        save_button.setAutoDefault(True)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.buttons)

    # ------------------------------------------------------------------ the broker
    def _vault(self) -> SecretVault:
        vault = getattr(self._registry, "vault", None)
        return vault if isinstance(vault, SecretVault) else SecretVault(Path(self.home) / "secrets.json")

    def _build_broker(self) -> None:
        """The broker URL, masked like a password (the value lives in the secret store), and a test."""
        from prismq_desktop.gui.broker import saved_broker_url

        self.broker = QLineEdit()
        self.broker.setObjectName("brokerUrl")
        self.broker.setEchoMode(QLineEdit.EchoMode.Password)
        self.broker.setPlaceholderText("redis://:PASSWORD@HOST:6379/0 (empty: this machine only)")
        self.broker.setToolTip("Runs can go to Celery workers over this Redis broker (Launch → Where → Remote "
                               "queue). Kept in the OS credential store (or the 0600 secrets file), never in "
                               "settings.ini; used from the next start.")
        saved, problem = saved_broker_url(self.settings, self._vault())
        self.broker.setText(saved or "")
        self._loaded_broker = saved or ""
        self.broker_show = QToolButton()
        self.broker_show.setObjectName("brokerShow")
        self.broker_show.setText("show")
        self.broker_show.setCheckable(True)
        self.broker_show.setToolTip("Show or hide the URL (its password too)")
        self.broker_show.toggled.connect(lambda on: self.broker.setEchoMode(
            QLineEdit.EchoMode.Normal if on else QLineEdit.EchoMode.Password))
        self.broker_test = QPushButton("Test connection")
        self.broker_test.setObjectName("brokerTest")
        self.broker_test.setAutoDefault(False)
        self.broker_test.clicked.connect(self.test_broker)
        self.broker_row = QWidget()
        row = QHBoxLayout(self.broker_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.broker, 1)
        row.addWidget(self.broker_show)
        row.addWidget(self.broker_test)
        self.broker_result = QLabel(problem or "")
        self.broker_result.setObjectName("brokerResult")
        self.broker_result.setWordWrap(True)
        self.broker_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.broker_result.setVisible(bool(problem))
        self.broker.textEdited.connect(lambda _t: self.broker_result.hide())
        self._test_task: asyncio.Future[Any] | None = None

    def test_broker(self) -> asyncio.Future[Any] | None:
        """Test the typed URL off the UI thread; the line under the field says what is wrong (or that it works)."""
        from prismq_desktop.core.services.workers import check_connection

        url = self.broker.text()
        self.broker_result.setText("testing…")
        self.broker_result.setStyleSheet("")
        self.broker_result.show()
        self.broker_test.setEnabled(False)

        async def run() -> tuple[bool, str]:
            try:
                ok, line = await asyncio.to_thread(check_connection, url)
            finally:
                if isValid(self):
                    self.broker_test.setEnabled(True)
            if isValid(self):
                self.broker_result.setText(("✓ " if ok else "⚠ ") + line)
                self.broker_result.setStyleSheet("" if ok else "color:#cd3131")
            return ok, line

        try:
            self._test_task = asyncio.ensure_future(run())
        except RuntimeError:  # no running loop (a bare dialog): test here
            ok, line = check_connection(url)
            self.broker_result.setText(("✓ " if ok else "⚠ ") + line)
            self.broker_test.setEnabled(True)
            return None
        return self._test_task

    @property
    def broker_changed(self) -> bool:
        return self.broker.text().strip() != self._loaded_broker

    # ------------------------------------------------------------------ retention
    @property
    def retention_changed(self) -> bool:
        return (self.keep_days.value(), self.keep_runs.value()) != self._loaded_retention

    def retention_deletes(self) -> int:
        """How many finished runs the retention in the form would delete (0 if it is unchanged)."""
        if not self.retention_changed:
            return 0
        from prismq_desktop.core.services.history import RetentionPolicy, preview_retention

        policy = RetentionPolicy.from_form(self.keep_days.value(), self.keep_runs.value())
        if policy.keeps_everything:
            return 0
        if self._registry is not None:
            return preview_retention(self._registry, policy)
        from prismq_desktop.core.paths import registry_path

        path = registry_path(Path(self.home))
        if not path.exists():
            return 0
        from prismq_desktop.core.store.registry import RunRegistry

        registry = RunRegistry(path)
        try:
            return preview_retention(registry, policy)
        finally:
            registry.close()

    # ------------------------------------------------------------------ saving
    def save(self) -> None:
        """Save (Enter or the Save button); a retention change that deletes runs asks first."""
        doomed = self.retention_deletes()
        if doomed:
            box = QMessageBox(QMessageBox.Icon.Warning, "Delete history?",
                              f"Keeping {self._retention_words()} deletes {plural(doomed, 'finished run')} "
                              "and their log files the next time PrismQ starts (or when you apply retention "
                              "in History).", QMessageBox.StandardButton.Cancel, self)
            box.setObjectName("retentionConfirm")
            delete = box.addButton(f"Delete {plural(doomed, 'run')}", QMessageBox.ButtonRole.DestructiveRole)
            delete.setObjectName("retentionConfirmDelete")
            box.setDefaultButton(QMessageBox.StandardButton.Cancel)
            delete.clicked.connect(self._save_now)
            self.confirm_box = box
            box.open()  # not exec(): the loop keeps running
            return
        self._save_now()

    def _retention_words(self) -> str:
        days, runs = self.keep_days.value(), self.keep_runs.value()
        parts = []
        if days:
            parts.append(f"the last {plural(days, 'day')}")
        if runs:
            parts.append(f"at most {plural(runs, 'run')}")
        return " and ".join(parts) or "everything"

    def _save_now(self) -> None:
        s = self.settings
        s.setValue("run/default_interpreter", self.interpreter.currentText().strip())
        s.setValue("run/max_concurrent", self.max_concurrent.value())
        if self.retention_changed:  # an unchanged form never rewrites (or tightens) what is stored
            # "forever" / "all" is stored as an empty value: no limit, for every version
            s.setValue("history/keep_days", self.keep_days.value() or "")
            s.setValue("history/keep_runs", self.keep_runs.value() or "")
        s.setValue("view/pane_line_limit", self.pane_limit.value())
        s.setValue(EDITOR_KEY, self.editor.text().strip())
        s.setValue("view/theme", self.theme.currentText())
        s.setValue("notify/failures", self.notify_fail.isChecked())
        s.setValue("notify/successes", self.notify_ok.isChecked())
        if self.broker_changed:
            from prismq_desktop.gui.broker import save_broker_url

            try:
                save_broker_url(s, self._vault(), self.broker.text())
            except OSError as exc:  # kept nowhere (a full disk): say so, save the rest
                self.broker_result.setText(f"⚠ the broker URL was not saved: {exc}")
                self.broker_result.show()
                s.sync()
                return
        s.sync()
        apply_theme(self.theme.currentText())
        self.applied.emit()
        self.accept()
