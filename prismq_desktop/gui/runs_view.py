"""The Runs tab's right side: the run actions over the runs table, over the log pane tabs.

It launches runs (from the launch panel, a saved task, a rerun) through the orchestrator
and follows each launched run in a log pane.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QEvent, QItemSelectionModel, QModelIndex, QObject, QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QMessageBox,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from prismq_desktop.core.models import Run, RunSpec
from prismq_desktop.core.patterns import TaskPattern
from prismq_desktop.core.process.capture import OutputChunk
from prismq_desktop.core.store.schema import RegistryError
from prismq_desktop.core.wording import plural
from prismq_desktop.gui.log_tabs import LogTabs
from prismq_desktop.gui.logview import LogPane
from prismq_desktop.gui.models import PROGRESS_ROLE, RunsModel
from prismq_desktop.gui.ports import RunControlPort
from prismq_desktop.gui.widgets import confirm, show_message

# column -> width (px) for the runs table; Name (1) takes what is left
NARROW_WIDTHS = {0: 40, 2: 104, 3: 84, 4: 64, 5: 48, 6: 72, 7: 100, 8: 90, 9: 110}
OPTIONAL_COLUMNS = (7, 8, 9)  # Pattern, Trigger, Where: hidden when the table is narrow


class ProgressDelegate(QStyledItemDelegate):
    """Draws the Progress column as a bar."""

    def paint(self, painter: Any, option: Any, index: Any) -> None:
        value = index.data(PROGRESS_ROLE)
        if value is None:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(value * 1000)
        bar.text = f"{value * 100:.0f}%"
        bar.textVisible = True
        QWidgetStyle = option.widget.style() if option.widget else None  # noqa: N806
        if QWidgetStyle is not None:
            QWidgetStyle.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class RunsView(QSplitter):
    """Toolbar and runs table on top, the log panes below (the splitter is `runsSplitter`)."""

    def __init__(self, orch: RunControlPort, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Vertical, parent)
        self.setObjectName("runsSplitter")
        self.orch = orch
        self.runs_model = RunsModel(self)
        self.runs_table = self._build_runs_table()
        self.toolbar = self._build_toolbar()
        self.log_tabs = LogTabs(orch.engine, settings)
        self.log_tabs.currentRunChanged.connect(self._pane_in_front)
        self._select_when_listed: int | None = None  # a run just launched: select its row once it is listed
        runs_box = QWidget()
        rl = QVBoxLayout(runs_box)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.toolbar)
        rl.addWidget(self.runs_table)
        self.addWidget(runs_box)
        self.addWidget(self.log_tabs)
        self.setSizes([260, 520])

    @property
    def panes(self) -> dict[int, LogPane]:
        return self.log_tabs.panes

    # ------------------------------------------------------------------ building
    def _build_runs_table(self) -> QTableView:
        table = QTableView()
        table.setObjectName("runsTable")
        table.setModel(self.runs_model)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setItemDelegateForColumn(3, ProgressDelegate(table))
        table.verticalHeader().hide()
        table.setWordWrap(False)
        table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # "nightly-…-final.py": both ends stay readable
        header = table.horizontalHeader()
        header.setMinimumSectionSize(36)
        for col in range(self.runs_model.columnCount()):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)  # extra width goes to the names
        for col, width in NARROW_WIDTHS.items():
            header.resizeSection(col, width)
        table.selectionModel().currentRowChanged.connect(self._run_selected)
        table.viewport().installEventFilter(self)
        return table

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Resize and watched is self.runs_table.viewport():
            self._fit_columns()
        return super().eventFilter(watched, event)

    def _fit_columns(self) -> None:
        """Pattern and Trigger step aside before Name, Status, Progress, Elapsed, CPU and RSS would scroll."""
        width = self.runs_table.viewport().width()
        needed = sum(NARROW_WIDTHS[c] for c in (0, 2, 3, 4, 5, 6)) + 140  # room for a readable name
        for col in (9, 7, 8):  # Where first (a remote run's worker), then Pattern, then Trigger
            needed += NARROW_WIDTHS[col]
            self.runs_table.setColumnHidden(col, width < needed)

    def _build_toolbar(self) -> QToolBar:
        """The run actions: Cancel, Pause, Resume, Rerun, Cancel all, Clear finished."""
        toolbar = QToolBar("Run actions")
        toolbar.setObjectName("runToolbar")
        px = QStyle.StandardPixmap
        self.act_cancel = self._action("Cancel", "cancelButton", "Ctrl+.", self.cancel_selected, px.SP_BrowserStop)
        self.act_pause = self._action("Pause", "pauseButton", "Ctrl+P", self.pause_selected, px.SP_MediaPause)
        self.act_resume = self._action("Resume", "resumeButton", "Ctrl+Shift+P", self.resume_selected, px.SP_MediaPlay)
        self.act_rerun = self._action("Rerun", "rerunButton", "Ctrl+R", self.rerun_selected, px.SP_BrowserReload)
        self.act_cancel_all = self._action("Cancel all", "cancelAllButton", "Ctrl+Shift+.", self.cancel_all,
                                           px.SP_DialogCancelButton)
        self.act_clear = self._action("Clear finished", "clearFinishedButton", None, self.clear_finished,
                                      px.SP_DialogResetButton)
        for act in (self.act_cancel, self.act_pause, self.act_resume, self.act_rerun, self.act_cancel_all, self.act_clear):
            toolbar.addAction(act)
            button = toolbar.widgetForAction(act)
            if button is not None:
                button.setObjectName(act.objectName())
                button.setAccessibleName(act.text())
        return toolbar

    def _action(self, text: str, name: str, shortcut: str | None, slot: Any, icon: QStyle.StandardPixmap) -> QAction:
        act = QAction(self.style().standardIcon(icon), text, self)
        act.setObjectName(name)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
            act.setToolTip(f"{text} ({shortcut})")
        act.triggered.connect(slot)
        return act

    def add_tool_action(self, action: QAction) -> None:
        """One more action at the end of the toolbar, after a separator."""
        self.toolbar.addSeparator()
        self.toolbar.addAction(action)

    # ------------------------------------------------------------------ selection
    def selected_run(self) -> Run | None:
        """The run every run action acts on: the one whose log pane is in front (else the selected row)."""
        run_id = self.log_tabs.current_run_id()
        if run_id is not None:
            row = self.runs_model.row_of(run_id)
            run = self.runs_model.run_at(row) if row is not None else None
            return run if run is not None else self.orch.engine.get(run_id)
        index = self.runs_table.currentIndex()
        return self.runs_model.run_at(index.row()) if index.isValid() else None

    def select_run(self, run_id: int) -> bool:
        """Select the run's row (by id, whatever its row is now); False if it is not listed."""
        row = self.runs_model.row_of(run_id)
        if row is None:
            return False
        current = self.runs_table.currentIndex()
        if not (current.isValid() and current.row() == row):
            self.runs_table.selectionModel().setCurrentIndex(
                self.runs_model.index(row, 0),
                QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        return True

    def _alive(self) -> bool:
        """False while the window is being torn down (Qt may still emit then): do nothing."""
        return all(isValid(o) for o in (self, self.runs_table, self.log_tabs, self.toolbar))

    def _pane_in_front(self, run_id: int) -> None:
        if not self._alive():
            return
        self.select_run(run_id)
        self.update_actions()

    def update_actions(self) -> None:
        run = self.selected_run()
        active = run is not None and run.is_active
        self.act_cancel.setEnabled(active)
        self.act_pause.setEnabled(run is not None and run.status.value == "running")
        self.act_resume.setEnabled(run is not None and run.status.value == "paused")
        self.act_rerun.setEnabled(run is not None)
        self.act_cancel_all.setEnabled(bool(self.runs_model.active_ids()))

    def _run_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not self._alive():
            return
        run = self.runs_model.run_at(current.row()) if current.isValid() else None
        if run is not None:
            self.log_tabs.show_pane(run.id)
        self.update_actions()

    def active_ids(self) -> list[int]:
        return self.runs_model.active_ids()

    # ------------------------------------------------------------------ launching and control
    def launch(self, spec: RunSpec, options: dict[str, Any]) -> int | None:
        opts = dict(options)
        pattern = TaskPattern.parse(opts.pop("pattern", TaskPattern.LONG_RUNNING))
        try:
            run_id = self.orch.delay(spec, pattern=pattern, **opts)
        except (ValueError, TypeError, RegistryError) as exc:  # RegistryError: locked by another process, full
            show_message(self, "Cannot launch", str(exc), QMessageBox.Icon.Warning)
            return None
        self.log_tabs.ensure_pane(run_id, focus=True)
        if not self.select_run(run_id):
            self._select_when_listed = run_id  # it is listed when its "queued" snapshot arrives
        self.update_actions()
        return int(run_id)

    def rerun(self, run: Run) -> int | None:
        opts = {"priority": run.priority, "max_retries": int(run.options.get("retry", {}).get("max_retries", 0))}
        return self.launch(run.spec, {"pattern": TaskPattern.LONG_RUNNING, **opts})

    def cancel_selected(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.orch.cancel(run.id)

    def pause_selected(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.orch.pause(run.id)

    def resume_selected(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.orch.resume(run.id)

    def rerun_selected(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.rerun(run)

    def cancel_all(self) -> QMessageBox | None:
        """Ask first, saying what and how many; cancel every queued and running run on yes."""
        running, waiting = self.orch.running_count, self.orch.queue_length
        total = running + waiting
        if not total:
            return None
        return confirm(self, "Cancel all runs",
                       f"Cancel {plural(total, 'run')}? {plural(running, 'running run')} will be stopped "
                       f"(with every process they started) and {plural(waiting, 'queued run')} will not start.",
                       f"Cancel {plural(total, 'run')}", self.orch.cancel_all, name="cancelAllDialog", keep="Keep them")

    def clear_finished(self) -> None:
        self.runs_model.clear_finished()
        self.update_actions()

    # ------------------------------------------------------------------ events from the core
    def on_run_changed(self, run: Run) -> None:
        """A new snapshot: its row, and its pane finished if the run ended."""
        self.runs_model.upsert(run)
        if run.id == self._select_when_listed and self.select_run(run.id):
            self._select_when_listed = None
        if run.outcome is not None:
            self.log_tabs.finish(run)
        if run.id == (self.log_tabs.current_run_id() or run.id):
            self.update_actions()

    def select_first_run(self, run: Run) -> None:
        """With nothing selected yet, select this run's row."""
        if self.runs_table.currentIndex().isValid() is False and self.runs_model.rowCount():
            row = self.runs_model.row_of(run.id)
            if row is not None:
                self.runs_table.selectionModel().setCurrentIndex(
                    self.runs_model.index(row, 0),
                    QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.update_actions()

    def on_output(self, run_id: int, chunks: Iterable[OutputChunk], dropped: int) -> None:
        """Output into the run's pane; a run with no pane gets one only while it is active."""
        if run_id in self.log_tabs.panes or run_id in self.runs_model.active_ids():
            self.log_tabs.feed(run_id, chunks, dropped)

    def on_progress(self, run_id: int, fraction: float, _message: object) -> None:
        self.runs_model.set_progress(run_id, fraction)

    def set_usage(self, run_id: int, cpu_percent: float, rss_bytes: int) -> None:
        self.runs_model.set_usage(run_id, cpu_percent, rss_bytes)

    def tick(self) -> None:
        self.runs_model.tick()
