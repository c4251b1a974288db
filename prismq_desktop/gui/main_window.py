"""The main window: launch, runs with live log panes, history, schedules - a thin view.

It talks to the core only through the TaskOrchestrator and the Bridge's signals; dialogs
are shown with open()/show() (never exec() inside the asyncio loop).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QSystemTrayIcon,
    QTableView,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from prismq_desktop import APP_NAME
from prismq_desktop.core.models import OutcomeKind, Run, RunSpec
from prismq_desktop.core.patterns import TaskPattern
from prismq_desktop.core.process.logfile import Stream, read_log
from prismq_desktop.core.services import history as history_service
from prismq_desktop.core.services.history import RetentionPolicy
from prismq_desktop.core.store.tasks import TaskStore, TaskStoreError
from prismq_desktop.gui.bridge import Bridge
from prismq_desktop.gui.launch import LaunchPanel
from prismq_desktop.gui.logview import LogPane
from prismq_desktop.gui.models import PROGRESS_ROLE, HistoryModel, RunsModel
from prismq_desktop.gui.settings_dialog import apply_theme
from prismq_desktop.gui.settings_dialog import value as setting

log = logging.getLogger(__name__)
MAX_PANES = 24


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


class MainWindow(QMainWindow):
    def __init__(self, orchestrator: Any, settings: QSettings | None = None) -> None:
        super().__init__()
        self.orch = orchestrator
        self.home = Path(orchestrator.engine.home)
        self.settings = settings or QSettings(str(self.home / "settings.ini"), QSettings.Format.IniFormat)
        self.bridge = Bridge(orchestrator, self)
        self.tasks = TaskStore(self.home / "tasks.json")
        self.panes: dict[int, LogPane] = {}
        self._quitting = False
        self.last_notification: str | None = None
        self.tray: QSystemTrayIcon | None = None
        self.settings_dialog: Any = None
        self.setWindowTitle(f"{APP_NAME} — {self.home}")
        self.setObjectName("mainWindow")
        self.resize(1280, 820)

        self._build_tabs()
        self._build_status_bar()
        self._connect_core()
        self._make_tray()
        self._add_settings_action()
        apply_theme(setting(self.settings, "view/theme"))
        self._refresh_tasks()
        self._update_status()
        self._update_actions()
        self._restore_geometry()
        if self.tasks.set_aside is not None:
            self.statusBar().showMessage(f"saved tasks could not be read; the file was kept as {self.tasks.set_aside}",
                                         15000)

    # ------------------------------------------------------------------ building the window
    def _build_tabs(self) -> None:
        self.tabs = QTabWidget()
        self.tabs.setObjectName("mainTabs")
        self.tabs.addTab(self._build_runs_tab(), "Runs")
        self.tabs.addTab(self._build_history_tab(), "History")
        # -- scheduler and pool tabs (filled in by their views)
        self.scheduler_tab = QWidget()
        self.scheduler_tab.setObjectName("schedulerTab")
        self.pool_view = QWidget()
        self.pool_view.setObjectName("poolView")
        self._build_scheduler_tab()
        self._build_pool_tab()
        self.tabs.addTab(self.scheduler_tab, "Scheduler")
        from prismq_desktop.gui.concurrency_view import ConcurrencyView

        self.concurrency_view = ConcurrencyView(self.orch)
        self.tabs.addTab(self.concurrency_view, "Concurrency")
        self.tabs.addTab(self.pool_view, "Pool")
        self.setCentralWidget(self.tabs)

    def _build_runs_tab(self) -> QWidget:
        """Saved tasks | launch panel | (toolbar + runs table) over the log panes."""
        launch_scroll = self._build_launch_tab()
        self._build_runs_table()
        self.toolbar = self._build_toolbar()
        self._build_log_tabs()
        runs_box = QWidget()
        rl = QVBoxLayout(runs_box)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.toolbar)
        rl.addWidget(self.runs_table)
        right = QSplitter(Qt.Orientation.Vertical)
        right.setObjectName("runsSplitter")
        right.addWidget(runs_box)
        right.addWidget(self.log_tabs)
        right.setSizes([260, 520])
        self.runs_split = QSplitter(Qt.Orientation.Horizontal)
        self.runs_split.setObjectName("launchSplitter")
        self.runs_split.addWidget(launch_scroll)
        self.runs_split.addWidget(right)
        self.runs_split.setSizes([430, 700])
        self.outer_split = QSplitter(Qt.Orientation.Horizontal)
        self.outer_split.setObjectName("outerSplitter")
        self.outer_split.addWidget(self._build_tasks_sidebar())
        self.outer_split.addWidget(self.runs_split)
        self.outer_split.setSizes([170, 1110])
        return self.outer_split

    def _build_launch_tab(self) -> QScrollArea:
        self.launch_panel = LaunchPanel(self.settings)
        self.launch_panel.launchRequested.connect(self.launch)
        self.launch_panel.saveRequested.connect(self.save_task)
        launch_scroll = QScrollArea()
        launch_scroll.setWidget(self.launch_panel)
        launch_scroll.setWidgetResizable(True)
        launch_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        launch_scroll.setMinimumWidth(380)
        return launch_scroll

    def _build_runs_table(self) -> None:
        self.runs_model = RunsModel(self)
        self.runs_table = QTableView()
        self.runs_table.setObjectName("runsTable")
        self.runs_table.setModel(self.runs_model)
        self.runs_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.runs_table.setItemDelegateForColumn(3, ProgressDelegate(self.runs_table))
        self.runs_table.verticalHeader().hide()
        self.runs_table.setWordWrap(False)
        self.runs_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.runs_table.selectionModel().currentRowChanged.connect(self._run_selected)

    def _build_toolbar(self) -> QToolBar:
        """The run actions (Cancel, Pause, ...) and the window-wide Ctrl+Return launch shortcut."""
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
        self.act_launch = QAction("Launch", self)
        self.act_launch.setShortcut(QKeySequence("Ctrl+Return"))
        self.act_launch.triggered.connect(self.launch_panel._launch)
        self.addAction(self.act_launch)
        return toolbar

    def _build_log_tabs(self) -> None:
        self.log_tabs = QTabWidget()
        self.log_tabs.setObjectName("logTabs")
        self.log_tabs.setTabsClosable(True)
        self.log_tabs.setDocumentMode(True)
        self.log_tabs.tabCloseRequested.connect(self._close_pane)

    def _build_tasks_sidebar(self) -> QWidget:
        self.task_list = QListWidget()
        self.task_list.setObjectName("taskList")
        self.task_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.task_list.customContextMenuRequested.connect(self._task_menu)
        self.task_list.itemDoubleClicked.connect(lambda item: self.run_task(item.text()))
        tasks_box = QWidget()
        tl = QVBoxLayout(tasks_box)
        tl.setContentsMargins(4, 4, 4, 4)
        tl.addWidget(QLabel("<b>Saved tasks</b>"))
        tl.addWidget(self.task_list, 1)
        tl.addLayout(self._button_row((("Run", "runTaskButton", lambda: self._with_task(self.run_task)),
                                       ("Import…", "importTasksButton", self.import_tasks),
                                       ("Export…", "exportTasksButton", self.export_tasks))))
        return tasks_box

    def _button_row(self, buttons: Any, row: QHBoxLayout | None = None) -> QHBoxLayout:
        """Push buttons (text, object name, slot) appended to `row` (a new one by default)."""
        row = row if row is not None else QHBoxLayout()
        for text, name, slot in buttons:
            b = QPushButton(text)
            b.setObjectName(name)
            b.clicked.connect(slot)
            row.addWidget(b)
        return row

    def _build_history_tab(self) -> QWidget:
        """Filters and actions, the history table, the retention setting."""
        self.history_model = HistoryModel(self.orch.registry, self)
        self.history_table = QTableView()
        self.history_table.setObjectName("historyTable")
        self.history_table.setModel(self.history_model)
        self.history_table.setSortingEnabled(True)
        self.history_table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.DescendingOrder)
        self.history_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history_table.verticalHeader().hide()
        self.history_table.setWordWrap(False)
        self.history_table.horizontalHeader().resizeSection(5, 150)
        self.history_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.history_table.doubleClicked.connect(self._history_open)
        hbar = self._build_history_filters()
        self._button_row((("Open log", "historyOpenButton", self._history_open_selected),
                          ("Rerun", "historyRerunButton", self._history_rerun),
                          ("Delete", "historyDeleteButton", self._history_delete),
                          ("Export…", "historyExportButton", self._history_export)), hbar)
        hbox = QWidget()
        hl = QVBoxLayout(hbox)
        hl.addLayout(hbar)
        hl.addWidget(self.history_table, 1)
        hl.addLayout(self._build_retention_bar())
        return hbox

    def _build_history_filters(self) -> QHBoxLayout:
        self.history_filter = QLineEdit()
        self.history_filter.setObjectName("historyFilter")
        self.history_filter.setPlaceholderText("Filter by name, trigger or error…")
        self.history_status = QComboBox()
        self.history_status.setObjectName("historyStatus")
        self.history_status.addItems(["any status", "active", "succeeded", "failed", "failed_to_start", "cancelled",
                                      "timed_out", "interrupted", "skipped", "missed"])
        self.history_since = QDateEdit()
        self.history_since.setObjectName("historySince")
        self.history_since.setCalendarPopup(True)
        self.history_since.setSpecialValueText("any date")
        self.history_since.setMinimumDate(self.history_since.minimumDate())
        self.history_since.setDate(self.history_since.minimumDate())
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.timeout.connect(self._apply_history_filter)
        self.history_filter.textChanged.connect(lambda: self._filter_timer.start(150))
        self.history_status.currentIndexChanged.connect(self._apply_history_filter)
        self.history_since.dateChanged.connect(self._apply_history_filter)
        hbar = QHBoxLayout()
        hbar.addWidget(self.history_filter, 1)
        hbar.addWidget(self.history_status)
        hbar.addWidget(QLabel("since"))
        hbar.addWidget(self.history_since)
        return hbar

    def _build_retention_bar(self) -> QHBoxLayout:
        self.history_count = QLabel()
        self.keep_days = QSpinBox()
        self.keep_days.setObjectName("retentionDays")
        self.keep_days.setRange(0, 3650)
        self.keep_days.setSpecialValueText("forever")
        self.keep_days.setSuffix(" days")
        self.keep_days.setValue(setting(self.settings, "history/keep_days"))
        self.keep_runs = QSpinBox()
        self.keep_runs.setObjectName("retentionRuns")
        self.keep_runs.setRange(0, 10_000_000)
        self.keep_runs.setSpecialValueText("all")
        self.keep_runs.setSuffix(" runs")
        self.keep_runs.setValue(setting(self.settings, "history/keep_runs"))
        apply_retention = QPushButton("Apply retention")
        apply_retention.setObjectName("applyRetentionButton")
        apply_retention.clicked.connect(self.confirm_retention)
        foot = QHBoxLayout()
        foot.addWidget(self.history_count, 1)
        foot.addWidget(QLabel("Keep"))
        foot.addWidget(self.keep_days)
        foot.addWidget(QLabel("and at most"))
        foot.addWidget(self.keep_runs)
        foot.addWidget(apply_retention)
        return foot

    def _build_status_bar(self) -> None:
        self.status_runs = QLabel()
        self.status_runs.setObjectName("statusRuns")
        self.status_slots = QLabel()
        self.status_slots.setObjectName("statusSlots")
        self.status_sched = QLabel()
        self.status_sched.setObjectName("statusScheduler")
        for w in (self.status_runs, self.status_slots, self.status_sched):
            self.statusBar().addPermanentWidget(w)

    def _connect_core(self) -> None:
        """The Bridge's signals, the system gauges and the once-a-second tick."""
        self.bridge.runChanged.connect(self._on_run_changed)
        self.bridge.output.connect(self._on_output)
        self.bridge.progress.connect(lambda rid, frac, _msg: self.runs_model.set_progress(rid, frac))
        self.bridge.notice.connect(self._on_notice)
        self.bridge.sample.connect(self._on_sample)
        self.bridge.scheduleChanged.connect(lambda _ev: self._refresh_schedules())
        self.orch.engine.monitor.start()  # system gauges sample even with no run alive
        self._ticker = QTimer(self)
        self._ticker.timeout.connect(self._tick)
        self._ticker.start(1000)

    def _add_settings_action(self) -> None:
        settings_act = QAction("Settings…", self)
        settings_act.setObjectName("settingsAction")
        settings_act.setShortcut(QKeySequence.StandardKey.Preferences)
        settings_act.triggered.connect(self.open_settings)
        self.toolbar.addSeparator()
        self.toolbar.addAction(settings_act)

    # ------------------------------------------------------------------ helpers
    def _action(self, text: str, name: str, shortcut: str | None, slot: Any, icon: QStyle.StandardPixmap) -> QAction:
        act = QAction(self.style().standardIcon(icon), text, self)
        act.setObjectName(name)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
            act.setToolTip(f"{text} ({shortcut})")
        act.triggered.connect(slot)
        return act

    def selected_run(self) -> Run | None:
        index = self.runs_table.currentIndex()
        return self.runs_model.run_at(index.row()) if index.isValid() else None

    def _update_actions(self) -> None:
        run = self.selected_run()
        active = run is not None and run.is_active
        self.act_cancel.setEnabled(active)
        self.act_pause.setEnabled(run is not None and run.status.value == "running")
        self.act_resume.setEnabled(run is not None and run.status.value == "paused")
        self.act_rerun.setEnabled(run is not None)
        self.act_cancel_all.setEnabled(bool(self.runs_model.active_ids()))

    def _update_status(self) -> None:
        running, queued = self.orch.running_count, self.orch.queue_length
        self.status_runs.setText(f"{running} running · {queued} queued")
        self.status_slots.setText(f"slots {running}/{self.orch.max_concurrent}")
        sched = self.orch._scheduler
        state = "off" if sched is None or not sched.running else ("paused" if sched.paused else "on")
        self.status_sched.setText(f"scheduler {state}")
        if self.tray is not None:
            self.tray.setToolTip(f"{APP_NAME}: {running} running, {queued} queued")

    def _tick(self) -> None:
        self.runs_model.tick()
        self._update_status()
        if self.tabs.currentWidget() is self.concurrency_view:
            self.concurrency_view.refresh()

    # ------------------------------------------------------------------ launching and control
    def launch(self, spec: RunSpec, options: dict[str, Any]) -> int | None:
        opts = dict(options)
        pattern = TaskPattern.parse(opts.pop("pattern", TaskPattern.LONG_RUNNING))
        try:
            run_id = self.orch.delay(spec, pattern=pattern, **opts)
        except (ValueError, TypeError) as exc:
            self._message("Cannot launch", str(exc), QMessageBox.Icon.Warning)
            return None
        self._ensure_pane(run_id, focus=True)
        return int(run_id)

    def _ensure_pane(self, run_id: int, focus: bool = False) -> LogPane:
        pane = self.panes.get(run_id)
        if pane is None:
            run = self.orch.engine.get(run_id)
            limit = int(setting(self.settings, "view/pane_line_limit")) or 5000
            pane = LogPane(run_id, run.log_path if run else None, line_limit=limit,
                           encoding=run.spec.encoding if run else "utf-8")
            pane.openFullLog.connect(self.open_full_log)
            self.panes[run_id] = pane
            title = f"#{run_id} {run.name if run else ''}"
            self.log_tabs.addTab(pane, title)
            self._trim_panes()
        if focus:
            self.log_tabs.setCurrentWidget(pane)
        return pane

    def _trim_panes(self) -> None:
        while self.log_tabs.count() > MAX_PANES:
            for i in range(self.log_tabs.count()):
                pane = self.log_tabs.widget(i)
                if isinstance(pane, LogPane):
                    run = self.orch.engine.get(pane.run_id)
                    if run is None or not run.is_active:
                        self._close_pane(i)
                        break
            else:
                return

    def _close_pane(self, index: int) -> None:
        pane = self.log_tabs.widget(index)
        self.log_tabs.removeTab(index)
        if isinstance(pane, LogPane):
            self.panes.pop(pane.run_id, None)
            pane.deleteLater()

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

    def rerun(self, run: Run) -> int | None:
        opts = {"priority": run.priority, "max_retries": int(run.options.get("retry", {}).get("max_retries", 0))}
        return self.launch(run.spec, {"pattern": TaskPattern.LONG_RUNNING, **opts})

    def cancel_all(self) -> None:
        self.orch.cancel_all()

    def clear_finished(self) -> None:
        self.runs_model.clear_finished()
        self._update_actions()

    # ------------------------------------------------------------------ events from the core
    def _on_run_changed(self, run: Run) -> None:
        self.runs_model.upsert(run)
        self.history_model.upsert(run)
        pane = self.panes.get(run.id)
        if run.outcome is not None:
            if pane is not None:
                pane.finish()
            self.notify(run)
        if self.runs_table.currentIndex().isValid() is False and self.runs_model.rowCount():
            row = self.runs_model.row_of(run.id)
            if row is not None:
                self.runs_table.selectionModel().setCurrentIndex(
                    self.runs_model.index(row, 0),
                    QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self._update_actions()
        self._update_status()

    def notify(self, run: Run) -> str | None:
        """A desktop notification when a run (or a schedule's run) fails, or succeeds if chosen."""
        assert run.outcome is not None
        failed = run.outcome.kind in (OutcomeKind.FAILED, OutcomeKind.FAILED_TO_START, OutcomeKind.TIMED_OUT,
                                      OutcomeKind.INTERRUPTED, OutcomeKind.DEPENDENCY_FAILED)
        ok = run.outcome.kind is OutcomeKind.SUCCEEDED
        if not ((failed and setting(self.settings, "notify/failures")) or
                (ok and setting(self.settings, "notify/successes"))):
            return None
        title = f"{'Schedule ' + repr(run.name) if run.schedule_id else 'Run'} #{run.id}: {run.outcome.describe()}"
        self.last_notification = title
        if self.tray is not None:
            icon = QSystemTrayIcon.MessageIcon.Warning if failed else QSystemTrayIcon.MessageIcon.Information
            self.tray.showMessage(APP_NAME, title, icon, 6000)
        else:
            self.statusBar().showMessage(title, 8000)
        return title

    def _on_output(self, run_id: int, chunks: Any, dropped: int) -> None:
        pane = self.panes.get(run_id)
        if pane is None:
            if run_id not in self.runs_model.active_ids():
                return
            pane = self._ensure_pane(run_id)
        pane.feed_chunks(chunks, dropped)

    def _on_sample(self, sample: Any) -> None:
        run_id = getattr(sample, "run_id", None)
        if run_id is not None:
            self.runs_model.set_usage(run_id, sample.cpu_percent, sample.rss_bytes)
        self.concurrency_view.add_sample(sample)

    def _on_notice(self, notice: Any) -> None:
        self.statusBar().showMessage(notice.message, 8000)
        if notice.level == "error":
            log.error("%s", notice.message)

    def _run_selected(self, current: Any, _previous: Any) -> None:
        run = self.runs_model.run_at(current.row()) if current.isValid() else None
        if run is not None and run.id in self.panes:
            self.log_tabs.setCurrentWidget(self.panes[run.id])
        self._update_actions()

    # ------------------------------------------------------------------ history
    def _apply_history_filter(self) -> None:
        status = self.history_status.currentText()
        statuses = None if status == "any status" else (["queued", "running", "paused"] if status == "active" else [status])
        since = None
        if self.history_since.date() != self.history_since.minimumDate():
            d = self.history_since.date()
            since = time.mktime((d.year(), d.month(), d.day(), 0, 0, 0, 0, 0, -1))
        started = time.perf_counter()
        self.history_model.set_filter(self.history_filter.text(), statuses, since)
        took = (time.perf_counter() - started) * 1000
        self.history_count.setText(f"{self.history_model.total:,} runs · filtered in {took:.0f} ms")

    def retention_policy(self) -> RetentionPolicy:
        """The policy the retention fields show (0 days = forever, 0 runs = all)."""
        return RetentionPolicy.from_form(self.keep_days.value(), self.keep_runs.value())

    def confirm_retention(self) -> QMessageBox | None:
        """Apply retention: say how many finished runs it deletes and ask first (no question if none)."""
        policy = self.retention_policy()
        count = history_service.preview_retention(self.orch.registry, policy)
        if count == 0:
            self.apply_retention()
            return None
        box = QMessageBox(QMessageBox.Icon.Question, "Apply retention",
                          f"{policy.describe().capitalize()}: this deletes {count:,} finished run(s) and their logs.",
                          QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("retentionDialog")
        box.button(QMessageBox.StandardButton.Ok).setText("Delete")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.accepted.connect(self.apply_retention)
        box.open()
        return box

    def apply_retention(self) -> int:
        """Save the retention setting (also applied at every start) and delete finished runs beyond it.

        Returns the number of runs deleted."""
        days, runs = self.keep_days.value() or None, self.keep_runs.value() or None
        self.settings.setValue("history/keep_days", days or "")
        self.settings.setValue("history/keep_runs", runs or "")
        self.settings.sync()
        removed = history_service.apply_retention(self.orch.registry, self.retention_policy())
        self.history_model.refresh()
        self.history_count.setText(f"{self.history_model.total:,} runs · retention removed {removed.runs:,} run(s) "
                                   f"and {removed.logs:,} log(s)")
        self._report_log_errors(removed.log_errors)
        return removed.runs

    def _report_log_errors(self, errors: tuple[str, ...]) -> None:
        if errors:
            for error in errors:
                log.warning("cannot remove a log file: %s", error)
            self.statusBar().showMessage(f"{len(errors)} log file(s) could not be removed, e.g. {errors[0]}", 10000)

    def _history_selected(self) -> list[Run]:
        rows = sorted({i.row() for i in self.history_table.selectionModel().selectedRows()})
        return [r for r in (self.history_model.run_at(row) for row in rows) if r is not None]

    def _history_open(self, index: Any) -> None:
        run = self.history_model.run_at(index.row())
        if run is not None:
            self.open_run_log(run)

    def _history_open_selected(self) -> None:
        for run in self._history_selected()[:5]:
            self.open_run_log(run)

    def open_run_log(self, run: Run) -> None:
        if run.id in self.panes:
            self.tabs.setCurrentIndex(0)
            self.log_tabs.setCurrentWidget(self.panes[run.id])
            return
        pane = self._ensure_pane(run.id, focus=True)
        if run.log_path and os.path.exists(run.log_path) and not run.is_active:
            pane.load_from_log(run.log_path)
        self.tabs.setCurrentIndex(0)

    def open_full_log(self, run_id: int) -> None:
        """Write the run's output as plain text next to its log and open it in the desktop's viewer."""
        run = self.orch.engine.get(run_id)
        if run is None or not run.log_path or not os.path.exists(run.log_path):
            return
        out = Path(run.log_path).with_suffix(".txt")
        with open(out, "wb") as fh:
            for record, _ in read_log(run.log_path):
                if record.stream is not Stream.META:
                    fh.write(record.data)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(out)))

    def _history_rerun(self) -> None:
        for run in self._history_selected():
            self.rerun(run)
        self.tabs.setCurrentIndex(0)

    def _history_delete(self) -> None:
        runs = [r for r in self._history_selected() if not r.is_active]
        if not runs:
            return
        removed = history_service.delete_runs(self.orch.registry, [r.id for r in runs])
        self.history_model.remove_rows_of(set(removed.run_ids))
        self._report_log_errors(removed.log_errors)

    def _history_export(self) -> None:
        dialog = QFileDialog(self, "Export history", str(Path.home() / "prismq-history.csv"), "CSV (*.csv);;JSON (*.json)")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.fileSelected.connect(self.export_history)
        dialog.open()

    def export_history(self, path: str) -> int:
        """Export what the History filter shows (every page, not only the loaded ones)."""
        m = self.history_model
        query = m.query()
        try:
            count = history_service.export_history(self.orch.registry, path, query)
        except OSError as exc:
            self._message("Export failed", f"{path}: {exc.strerror or exc}", QMessageBox.Icon.Warning)
            return 0
        self.statusBar().showMessage(f"exported {count:,} run(s) to {path}", 5000)
        return count

    # ------------------------------------------------------------------ saved tasks
    def _refresh_tasks(self) -> None:
        self.task_list.clear()
        for name in self.tasks.names():
            QListWidgetItem(name, self.task_list)

    def _with_task(self, fn: Any) -> None:
        item = self.task_list.currentItem()
        if item is not None:
            fn(item.text())

    def save_task(self, spec: RunSpec, options: dict[str, Any]) -> None:
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Save task")
        dialog.setLabelText("Name of the task:")
        dialog.setTextValue(spec.display_name)
        dialog.textValueSelected.connect(lambda name: self._store_task(name, spec, options))
        dialog.open()

    def _store_task(self, name: str, spec: RunSpec, options: dict[str, Any]) -> None:
        name = name.strip()
        if name:
            self._change_tasks(lambda: self.tasks.put(name, spec, options))

    def _change_tasks(self, change: Callable[[], object]) -> None:
        """Apply a change to the saved tasks and refresh the list; a failed save is a message, not a crash."""
        try:
            change()
        except (OSError, TaskStoreError) as exc:
            self._message("Cannot save tasks", f"{self.tasks.path}: {exc}", QMessageBox.Icon.Warning)
        self._refresh_tasks()

    def run_task(self, name: str) -> int | None:
        found = self.tasks.get(name)
        if found is None:
            return None
        spec, options = found
        return self.launch(spec.with_changes(name=name), options)

    def _task_menu(self, pos: Any) -> None:
        item = self.task_list.itemAt(pos)
        if item is None:
            return
        name = item.text()
        menu = QMenu(self)
        menu.addAction("Run", lambda: self.run_task(name))
        menu.addAction("Edit in the launch panel", lambda: self._edit_task(name))
        menu.addAction("Duplicate", lambda: self._duplicate_task(name))
        menu.addAction("Delete", lambda: self._change_tasks(lambda: self.tasks.remove(name)))
        menu.popup(self.task_list.viewport().mapToGlobal(pos))

    def _edit_task(self, name: str) -> None:
        found = self.tasks.get(name)
        if found is not None:
            self.launch_panel.set_spec(*found)

    def _duplicate_task(self, name: str) -> None:
        self._change_tasks(lambda: self.tasks.duplicate(name))

    def import_tasks(self) -> None:
        dialog = QFileDialog(self, "Import tasks", str(Path.home()), "JSON (*.json)")
        dialog.fileSelected.connect(self._import_tasks_from)
        dialog.open()

    def _import_tasks_from(self, path: str) -> None:
        try:
            count = self.tasks.import_file(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._message("Import failed", f"{path}: {exc}", QMessageBox.Icon.Warning)
            return
        self._refresh_tasks()
        self.statusBar().showMessage(f"imported {count} task(s)", 5000)

    def export_tasks(self) -> None:
        dialog = QFileDialog(self, "Export tasks", str(Path.home() / "prismq-tasks.json"), "JSON (*.json)")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.fileSelected.connect(self._export_tasks_to)
        dialog.open()

    def _export_tasks_to(self, path: str) -> None:
        try:
            self.tasks.export_file(path)
        except OSError as exc:
            self._message("Export failed", f"{path}: {exc.strerror or exc}", QMessageBox.Icon.Warning)
            return
        self.statusBar().showMessage(f"exported {len(self.tasks.names())} task(s) to {path}", 5000)

    # ------------------------------------------------------------------ scheduler and pool tabs (basic views)
    def _build_scheduler_tab(self) -> None:
        from prismq_desktop.gui.scheduler_view import SchedulerView

        lay = QVBoxLayout(self.scheduler_tab)
        lay.setContentsMargins(0, 0, 0, 0)
        self.scheduler_view = SchedulerView(self.orch.scheduler, self.orch.registry, self.scheduler_tab)
        lay.addWidget(self.scheduler_view)

    def _refresh_schedules(self) -> None:
        self.scheduler_view.refresh()

    def _build_pool_tab(self) -> None:
        from prismq_desktop.gui.pool_view import PoolView

        lay = QVBoxLayout(self.pool_view)
        lay.setContentsMargins(0, 0, 0, 0)
        self.pool_widget = PoolView(self.orch, self.pool_view)
        lay.addWidget(self.pool_widget)

    # ------------------------------------------------------------------ closing
    def _message(self, title: str, text: str, icon: QMessageBox.Icon = QMessageBox.Icon.Information) -> QMessageBox:
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        active = self.runs_model.active_ids() or [h.id for h in self.orch.engine.active()]
        if self._quitting or not active:
            self._save_geometry()
            event.accept()
            self._quitting = True
            return
        event.ignore()
        self.ask_before_quit(len(active))

    def ask_before_quit(self, count: int) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Question, "Runs are still active",
                          f"{count} run(s) are still running or queued. What should happen to them?",
                          QMessageBox.StandardButton.NoButton, self)
        box.setObjectName("quitDialog")
        cancel_btn = box.addButton("Cancel them and quit", QMessageBox.ButtonRole.DestructiveRole)
        tray_btn = box.addButton("Keep running in the tray", QMessageBox.ButtonRole.AcceptRole)
        stay_btn = box.addButton("Don't quit", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(stay_btn)
        box.setEscapeButton(stay_btn)

        def chosen(button: Any) -> None:
            if button is cancel_btn:
                self.orch.cancel_all()
                self._quitting = True
                self.close()
            elif button is tray_btn:
                self.hide_to_tray()

        box.buttonClicked.connect(chosen)
        box.open()
        return box

    def _make_tray(self) -> None:
        """A tray icon with the running count, and a menu: show, pause all schedules, quit."""
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return
        icon = self.windowIcon()
        if icon.isNull():
            icon = self.style().standardIcon(QStyle.StandardPixmap.SP_ComputerIcon)
        self.tray = QSystemTrayIcon(icon, self)
        menu = QMenu(self)
        menu.addAction("Show", self.show_normal)
        pause = menu.addAction("Pause all schedules")
        pause.setCheckable(True)
        pause.toggled.connect(lambda on: self.scheduler_view.pause_button.setChecked(on))
        menu.addSeparator()
        menu.addAction("Quit", self.quit_now)
        self.tray.setContextMenu(menu)
        self.tray.activated.connect(lambda *_: self.show_normal())
        self.tray.show()

    def quit_now(self) -> None:
        self._quitting = True
        self.orch.cancel_all()
        self.close()
        app = QApplication.instance()
        if app is not None:
            app.quit()

    def open_settings(self) -> Any:
        from prismq_desktop.gui.settings_dialog import SettingsDialog

        self.settings_dialog = SettingsDialog(self.settings, str(self.home), self)
        self.settings_dialog.applied.connect(self._settings_applied)
        self.settings_dialog.open()
        return self.settings_dialog

    def _settings_applied(self) -> None:
        self.orch.set_max_concurrent(setting(self.settings, "run/max_concurrent"))
        self.concurrency_view.refresh()
        self.keep_days.setValue(setting(self.settings, "history/keep_days"))
        self.keep_runs.setValue(setting(self.settings, "history/keep_runs"))

    def hide_to_tray(self) -> None:
        if self.tray is not None:
            self.tray.show()
            self.hide()
        else:
            self.showMinimized()

    def show_normal(self) -> None:
        self.show()
        self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized)
        self.raise_()
        self.activateWindow()

    def _save_geometry(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/outer", self.outer_split.saveState())
        self.settings.setValue("window/runs", self.runs_split.saveState())
        self.settings.setValue("window/tab", self.tabs.currentIndex())
        self.settings.sync()

    def _restore_geometry(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        for key, split in (("window/outer", self.outer_split), ("window/runs", self.runs_split)):
            state = self.settings.value(key)
            if state is not None:
                split.restoreState(state)
        tab = self.settings.value("window/tab", 0)
        try:
            self.tabs.setCurrentIndex(int(tab) if isinstance(tab, (int, str)) else 0)
        except ValueError:
            self.tabs.setCurrentIndex(0)
