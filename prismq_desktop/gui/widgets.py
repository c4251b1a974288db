"""Small widget helpers the views share: a non-blocking message box and a row of push buttons."""

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
