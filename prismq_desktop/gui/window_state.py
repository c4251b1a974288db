"""The window's layout kept across starts: geometry, splitter positions, the current tab (`window/...` settings)."""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QSplitter, QTabWidget, QWidget


def save_layout(settings: QSettings, window: QWidget, splitters: Mapping[str, QSplitter], tabs: QTabWidget) -> None:
    settings.setValue("window/geometry", window.saveGeometry())
    for key, split in splitters.items():
        settings.setValue(key, split.saveState())
    settings.setValue("window/tab", tabs.currentIndex())
    settings.sync()


def restore_layout(settings: QSettings, window: QWidget, splitters: Mapping[str, QSplitter], tabs: QTabWidget) -> None:
    geometry = settings.value("window/geometry")
    if geometry is not None:
        window.restoreGeometry(geometry)
    for key, split in splitters.items():
        state = settings.value(key)
        if state is not None:
            split.restoreState(state)
    tab = settings.value("window/tab", 0)
    try:
        tabs.setCurrentIndex(int(tab) if isinstance(tab, (int, str)) else 0)
    except ValueError:
        tabs.setCurrentIndex(0)
