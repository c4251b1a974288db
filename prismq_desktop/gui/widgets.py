"""Small widget helpers the views share: message boxes (plain, and "are you sure") and button rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QMessageBox, QPushButton, QWidget

Button = tuple[str, str, Callable[[], object]]  # text, object name, slot


def show_message(parent: QWidget, title: str, text: str,
                 icon: QMessageBox.Icon = QMessageBox.Icon.Information) -> QMessageBox:
    """A message box shown with open() (never exec() inside the asyncio loop), deleted when closed."""
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def button_row(buttons: Iterable[Button], row: QHBoxLayout | None = None) -> QHBoxLayout:
    """Push buttons (text, object name, slot) appended to `row` (a new one by default)."""
    row = row if row is not None else QHBoxLayout()
    for text, name, slot in buttons:
        b = QPushButton(text)
        b.setObjectName(name)
        b.clicked.connect(slot)
        row.addWidget(b)
    return row


def confirm(parent: QWidget, title: str, text: str, yes: str, on_yes: Callable[[], object], *,
            name: str, keep: str = "Keep") -> QMessageBox:
    """Ask before something destructive: `yes` does it, `keep` (the default, and Escape) does not.

    Shown with open(), so the loop keeps running; the caller says what and how many in `text`.
    """
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.NoButton, parent)
    box.setObjectName(name)
    yes_button = box.addButton(yes, QMessageBox.ButtonRole.DestructiveRole)
    keep_button = box.addButton(keep, QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(keep_button)
    box.setEscapeButton(keep_button)
    box.buttonClicked.connect(lambda button: on_yes() if button is yes_button else None)
    box.open()
    return box
