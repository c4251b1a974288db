"""The tray icon, desktop notifications, and the question asked when quitting with active runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu, QMessageBox, QStyle, QSystemTrayIcon, QWidget

from prismq_desktop.core.models import OutcomeKind, Run
from prismq_desktop.core.wording import plural
from prismq_desktop.gui.settings_dialog import value as setting

FAILED = (OutcomeKind.FAILED, OutcomeKind.FAILED_TO_START, OutcomeKind.TIMED_OUT, OutcomeKind.INTERRUPTED,
          OutcomeKind.DEPENDENCY_FAILED)


def make_tray(window: QWidget, *, show: Callable[[], None], quit_app: Callable[[], None],
              pause_schedules: Callable[[bool], None]) -> QSystemTrayIcon | None:
    """A tray icon with a menu: show, pause all schedules, quit (None where there is no tray)."""
    if not QSystemTrayIcon.isSystemTrayAvailable():
        return None
    icon = window.windowIcon()
    if icon.isNull():
        icon = window.style().standardIcon(QStyle.StandardPixmap.SP_ComputerIcon)
    tray = QSystemTrayIcon(icon, window)
    menu = QMenu(window)
    menu.addAction("Show", show)
    pause = menu.addAction("Pause all schedules")
    pause.setCheckable(True)
    pause.toggled.connect(pause_schedules)
    menu.addSeparator()
    menu.addAction("Quit", quit_app)
    tray.setContextMenu(menu)
    tray.activated.connect(lambda *_: show())
    tray.show()
    return tray


def notification(run: Run, settings: QSettings) -> tuple[str, bool] | None:
    """(title, failed) of the notification for a finished run, or None if the settings want none.

    Failures are notified unless turned off, successes only if chosen."""
    assert run.outcome is not None
    failed = run.outcome.kind in FAILED
    ok = run.outcome.kind is OutcomeKind.SUCCEEDED
    if not ((failed and setting(settings, "notify/failures")) or
            (ok and setting(settings, "notify/successes"))):
        return None
    title = f"{'Schedule ' + repr(run.name) if run.schedule_id else 'Run'} #{run.id}: {run.outcome.describe()}"
    return title, failed


def ask_before_quit(parent: QWidget, count: int, *, cancel_and_quit: Callable[[], None],
                    keep_running: Callable[[], None], has_tray: bool) -> QMessageBox:
    """Runs are still active: cancel them and quit, keep running (in the tray, or minimised
    where the desktop has no tray: a window that vanished with no way back would strand them),
    or don't quit."""
    where = ("The tray icon brings the window back." if has_tray
             else "This desktop has no system tray: the window is minimised to the task bar instead.")
    box = QMessageBox(QMessageBox.Icon.Question, "Runs are still active",
                      f"{plural(count, 'run')} {'is' if count == 1 else 'are'} still running or queued. "
                      f"What should happen to {'it' if count == 1 else 'them'}?\n{where}",
                      QMessageBox.StandardButton.NoButton, parent)
    box.setObjectName("quitDialog")
    cancel_btn = box.addButton("Cancel them and quit" if count != 1 else "Cancel it and quit",
                               QMessageBox.ButtonRole.DestructiveRole)
    tray_btn = box.addButton("Keep running in the tray" if has_tray else "Keep running (minimise)",
                             QMessageBox.ButtonRole.AcceptRole)
    stay_btn = box.addButton("Don't quit", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(stay_btn)
    box.setEscapeButton(stay_btn)

    def chosen(button: Any) -> None:
        if button is cancel_btn:
            cancel_and_quit()
        elif button is tray_btn:
            keep_running()

    box.buttonClicked.connect(chosen)
    box.open()
    return box
