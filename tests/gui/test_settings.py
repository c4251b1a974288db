"""Settings: saving unchanged never deletes history; Enter saves; the editor command; legible themes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialog

from prismq_desktop.core import RunSpec
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.services.history import RetentionPolicy
from prismq_desktop.core.store.query import RunQuery
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.gui.ansi import contrast_ratio
from prismq_desktop.gui.app import apply_saved_retention
from prismq_desktop.gui.settings_dialog import EDITOR_KEY, EDITOR_PLACEHOLDER, SettingsDialog, apply_theme
from tests.gui.test_window import run_qt

PY = sys.executable
SCRIPTS = Path(__file__).parent.parent / "scripts"


def finished_runs(qapp, home: Path, n: int = 3) -> list[tuple[int, str]]:
    """n real runs of a real script, finished, with their log files: (id, log path)."""
    async def main():
        async with TaskOrchestrator(home, max_concurrent=4) as orch:
            ids = [orch.delay(RunSpec(str(SCRIPTS / "hello.py"), ("0", f"run{i}"), interpreter=PY)) for i in range(n)]
            for run_id in ids:
                await orch.wait(run_id)
            return [(run_id, orch.registry.get(run_id).log_path) for run_id in ids]

    runs = run_qt(qapp, main())
    for _, log in runs:
        assert log and Path(log).stat().st_size > 0
    return runs


def settings_of(home: Path) -> QSettings:
    return QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)


def start_up_retention(home: Path) -> tuple[int, list[int]]:
    """What app.py does at start: apply the saved retention (fresh QSettings from the file)."""
    reg = RunRegistry(home / "registry.sqlite3")
    try:
        deleted = apply_saved_retention(reg, settings_of(home))
        left = [r.id for r in reg.query(RunQuery(limit=1000))]
    finally:
        reg.close()
    return deleted, left


def test_saving_settings_unchanged_keeps_every_run_and_log(qapp, home):
    runs = finished_runs(qapp, home)
    settings = settings_of(home)
    dialog = SettingsDialog(settings, str(home))
    assert dialog.keep_days.text() == "forever" and dialog.keep_runs.text() == "all"
    dialog.show()
    dialog.keep_days.setFocus()
    QTest.keyClick(dialog.keep_days, Qt.Key.Key_Return)  # Enter saves: Save is the default button
    assert dialog.result() == QDialog.DialogCode.Accepted and dialog.confirm_box is None
    settings.sync()
    stored = (home / "settings.ini").read_text()
    assert "keep_days=0" not in stored and "keep_runs=0" not in stored
    deleted, left = start_up_retention(home)
    assert deleted == 0
    assert sorted(left) == sorted(run_id for run_id, _ in runs)
    assert all(Path(log).exists() for _, log in runs)
    dialog.deleteLater()


@pytest.mark.parametrize("old", [0, "0", "0.0", "", "forever"])
def test_values_older_versions_stored_keep_everything(qapp, home, old):
    runs = finished_runs(qapp, home, 2)
    # an older version wrote the spin boxes' 0 ("forever" / "all") as a number
    (home / "settings.ini").write_text(f"[history]\nkeep_days={old}\nkeep_runs={old}\n")
    assert RetentionPolicy.from_settings(old, old).keeps_everything
    deleted, left = start_up_retention(home)
    assert deleted == 0 and sorted(left) == sorted(r for r, _ in runs)
    assert all(Path(log).exists() for _, log in runs)
    # and the dialog, opened over such a file and saved unchanged, keeps it so
    settings = settings_of(home)
    dialog = SettingsDialog(settings, str(home))
    dialog.save()
    assert start_up_retention(home) == (0, left)
    dialog.deleteLater()


def test_a_retention_change_that_deletes_says_how_many_and_asks(qapp, home):
    runs = finished_runs(qapp, home, 3)
    settings = settings_of(home)
    dialog = SettingsDialog(settings, str(home))
    dialog.keep_runs.setValue(1)
    dialog.save()
    box = dialog.confirm_box
    assert box is not None and box.isVisible()
    assert "deletes 2 finished runs" in box.text()
    assert settings.value("history/keep_runs") in (None, "")  # nothing saved yet
    box.reject()  # cancel: still nothing saved, the dialog stays open to change it
    assert settings.value("history/keep_runs") in (None, "") and dialog.result() != QDialog.DialogCode.Accepted
    dialog.save()
    delete = [b for b in dialog.confirm_box.buttons() if b.objectName() == "retentionConfirmDelete"][0]
    assert delete.text() == "Delete 2 runs"
    delete.click()
    assert int(settings.value("history/keep_runs")) == 1 and settings.value("history/keep_days") == ""
    deleted, left = start_up_retention(home)
    assert deleted == 2 and left == [max(r for r, _ in runs)]
    dialog.deleteLater()


def test_editor_command_setting_is_saved(qapp, home):
    settings = settings_of(home)
    dialog = SettingsDialog(settings, str(home))
    assert dialog.editor.placeholderText() == EDITOR_PLACEHOLDER == "code -g {file}:{line}"
    dialog.editor.setText("  subl {file}:{line} ")
    dialog.show()
    dialog.editor.setFocus()
    QTest.keyClick(dialog.editor, Qt.Key.Key_Enter)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert settings_of(home).value(EDITOR_KEY) == "subl {file}:{line}"
    dialog.deleteLater()


ROLES_ON = (QPalette.ColorRole.Base, QPalette.ColorRole.Window, QPalette.ColorRole.Button)


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_theme_placeholders_and_disabled_text_meet_wcag_aa(qapp, theme):
    apply_theme(theme)
    try:
        pal = QApplication.palette()
        G, R = QPalette.ColorGroup, QPalette.ColorRole  # noqa: N806
        checks = []
        for group in (G.Active, G.Inactive):
            for bg in ROLES_ON:
                checks.append(("placeholder", group, bg, pal.color(group, R.PlaceholderText), pal.color(group, bg)))
        for fg in (R.Text, R.WindowText, R.ButtonText, R.PlaceholderText):
            for bg in ROLES_ON:
                checks.append((fg.name, G.Disabled, bg, pal.color(G.Disabled, fg), pal.color(G.Disabled, bg)))
        low = [(what, group.name, bg.name, f.name(), b.name(), round(contrast_ratio(f.name(), b.name()), 2))
               for what, group, bg, f, b in checks if contrast_ratio(f.name(), b.name()) < 4.5]
        assert not low, f"below 4.5:1 in the {theme} theme: {low}"
        # disabled text still looks disabled (not the same colour as enabled text)
        assert pal.color(G.Disabled, R.Text) != pal.color(G.Active, R.Text)
    finally:
        apply_theme("system")


def test_dark_theme_disabled_icons_stand_out_from_the_window(qapp):
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QStyle

    apply_theme("dark")
    try:
        style = QApplication.style()
        window = QApplication.palette().color(QPalette.ColorRole.Window).name()
        for which in (QStyle.StandardPixmap.SP_MediaPause, QStyle.StandardPixmap.SP_MediaPlay):
            image = style.standardIcon(which).pixmap(24, 24, QIcon.Mode.Disabled).toImage()
            opaque = [image.pixelColor(x, y) for x in range(image.width()) for y in range(image.height())
                      if image.pixelColor(x, y).alpha() > 200]
            assert opaque, "the icon has a visible shape"
            best = max(contrast_ratio(c.name(), window) for c in opaque)
            assert best >= 3.0, f"{which.name}: {best:.2f}:1 on {window}"  # WCAG non-text contrast
    finally:
        apply_theme("system")
