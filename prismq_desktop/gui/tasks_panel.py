"""The saved-tasks sidebar of the Runs tab: run, edit, duplicate, delete, import and export tasks.

The tasks live in a TaskStore (core/store/tasks.py); running one and editing one in the
launch panel are the window's, handed in as callables.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from prismq_desktop.core.models import RunSpec
from prismq_desktop.core.store.tasks import TaskStore, TaskStoreError
from prismq_desktop.core.wording import plural
from prismq_desktop.gui.widgets import button_row, confirm, show_message

Launch = Callable[[RunSpec, dict[str, Any]], int | None]
Edit = Callable[[RunSpec, dict[str, Any]], None]


class TasksPanel(QWidget):
    statusMessage = Signal(str, int)  # text, milliseconds

    def __init__(self, tasks: TaskStore, launch: Launch, edit: Edit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self._launch = launch
        self._edit = edit
        self.task_list = QListWidget()
        self.task_list.setObjectName("taskList")
        self.task_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.task_list.customContextMenuRequested.connect(self._task_menu)
        self.task_list.itemDoubleClicked.connect(lambda item: self.run_task(item.text()))
        tl = QVBoxLayout(self)
        tl.setContentsMargins(4, 4, 4, 4)
        tl.addWidget(QLabel("<b>Saved tasks</b>"))
        self.empty_hint = QLabel("No saved tasks yet.\n\nFill in the launch form and press “Save as task…” "
                                 "to run it again with one click, or import a file.")
        self.empty_hint.setObjectName("tasksEmptyHint")
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignTop)
        tl.addWidget(self.empty_hint, 1)
        tl.addWidget(self.task_list, 1)
        tl.addLayout(button_row((("Run", "runTaskButton", lambda: self._with_task(self.run_task)),
                                 ("Import…", "importTasksButton", self.import_tasks),
                                 ("Export…", "exportTasksButton", self.export_tasks))))
        self.refresh()

    def refresh(self) -> None:
        self.task_list.clear()
        for name in self.tasks.names():
            item = QListWidgetItem(name, self.task_list)
            item.setToolTip(name)
        empty = not self.tasks.names()
        self.empty_hint.setVisible(empty)
        self.task_list.setVisible(not empty)

    def _with_task(self, fn: Callable[[str], object]) -> None:
        item = self.task_list.currentItem()
        if item is not None:
            fn(item.text())

    # ------------------------------------------------------------------ saving and changing
    def save_task(self, spec: RunSpec, options: dict[str, Any]) -> None:
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Save task")
        dialog.setLabelText("Name of the task:")
        dialog.setTextValue(spec.display_name)
        dialog.textValueSelected.connect(lambda name: self.store_task(name, spec, options))
        dialog.open()

    def store_task(self, name: str, spec: RunSpec, options: dict[str, Any]) -> None:
        name = name.strip()
        if name:
            self.change_tasks(lambda: self.tasks.put(name, spec, options))

    def change_tasks(self, change: Callable[[], object]) -> None:
        """Apply a change to the saved tasks and refresh the list; a failed save is a message, not a crash."""
        try:
            change()
        except (OSError, TaskStoreError) as exc:
            show_message(self, "Cannot save tasks", f"{self.tasks.path}: {exc}", QMessageBox.Icon.Warning)
        self.refresh()

    def duplicate_task(self, name: str) -> None:
        self.change_tasks(lambda: self.tasks.duplicate(name))

    # ------------------------------------------------------------------ using a task
    def run_task(self, name: str) -> int | None:
        found = self.tasks.get(name)
        if found is None:
            return None
        spec, options = found
        return self._launch(spec.with_changes(name=name), options)

    def _edit_task(self, name: str) -> None:
        found = self.tasks.get(name)
        if found is not None:
            self._edit(*found)

    def _task_menu(self, pos: QPoint) -> None:
        item = self.task_list.itemAt(pos)
        if item is None:
            return
        name = item.text()
        menu = QMenu(self)
        menu.addAction("Run", lambda: self.run_task(name))
        menu.addAction("Edit in the launch panel", lambda: self._edit_task(name))
        menu.addAction("Duplicate", lambda: self.duplicate_task(name))
        menu.addAction("Delete…", lambda: self.confirm_delete(name))
        menu.popup(self.task_list.viewport().mapToGlobal(pos))

    def confirm_delete(self, name: str) -> QMessageBox:
        """Ask first, naming the task; delete it on yes (its past runs stay in History)."""
        return confirm(self, "Delete saved task", f"Delete the saved task {name!r}? Its past runs stay in History.",
                       "Delete task", lambda: self.change_tasks(lambda: self.tasks.remove(name)), name="deleteTaskDialog")

    # ------------------------------------------------------------------ import and export
    def import_tasks(self) -> None:
        dialog = QFileDialog(self, "Import tasks", str(Path.home()), "JSON (*.json)")
        dialog.fileSelected.connect(self._import_tasks_from)
        dialog.open()

    def _import_tasks_from(self, path: str) -> None:
        try:
            count = self.tasks.import_file(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            show_message(self, "Import failed", f"{path}: {exc}", QMessageBox.Icon.Warning)
            return
        self.refresh()
        missing = self.tasks.missing_secrets
        note = f"; set again (they were not exported): {', '.join(missing)}" if missing else ""
        self.statusMessage.emit(f"imported {plural(count, 'task')} from {path}{note}", 10000)

    def export_tasks(self) -> None:
        dialog = QFileDialog(self, "Export tasks", str(Path.home() / "prismq-tasks.json"), "JSON (*.json)")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.fileSelected.connect(self._export_tasks_to)
        dialog.open()

    def _export_tasks_to(self, path: str) -> None:
        try:
            left_out = self.tasks.export_file(path)
        except OSError as exc:
            show_message(self, "Export failed", f"{path}: {exc.strerror or exc}", QMessageBox.Icon.Warning)
            return
        note = f"; secret values left out: {', '.join(left_out)}" if left_out else ""
        self.statusMessage.emit(f"exported {plural(len(self.tasks.names()), 'task')} to {path}{note}", 10000)
