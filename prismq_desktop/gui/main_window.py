"""The main window: builds the tabs from their views and wires the core's events to them - a thin view.

Runs tab: saved tasks (tasks_panel) | launch panel (launch) | run actions, runs table and log
panes (runs_view, log_tabs). Then History (history_view), Scheduler, Concurrency and Pool.
The window itself keeps the status bar, the tray (tray), settings, geometry and closing.

It talks to the core only through the TaskOrchestrator and the Bridge's signals; dialogs
are shown with open()/show() (never exec() inside the asyncio loop).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QSystemTrayIcon,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from prismq_desktop import APP_NAME
from prismq_desktop.core.models import Run, RunSpec
from prismq_desktop.core.services.watch import RegistryWatcher
from prismq_desktop.core.store.tasks import TaskStore
from prismq_desktop.gui import tray as tray_ui
from prismq_desktop.gui.bridge import Bridge
from prismq_desktop.gui.launch import LaunchPanel
from prismq_desktop.gui.logview import LogPane
from prismq_desktop.gui.models import RunsModel
from prismq_desktop.gui.runs_view import RunsView
from prismq_desktop.gui.settings_dialog import apply_theme
from prismq_desktop.gui.settings_dialog import value as setting
from prismq_desktop.gui.status_bar import StatusFields
from prismq_desktop.gui.tasks_panel import TasksPanel
from prismq_desktop.gui.window_state import restore_layout, save_layout

if TYPE_CHECKING:  # each imported when its tab is first shown or used
    from prismq_desktop.gui.concurrency_view import ConcurrencyView
    from prismq_desktop.gui.history_view import HistoryView
    from prismq_desktop.gui.models import HistoryModel
    from prismq_desktop.gui.pool_view import PoolView
    from prismq_desktop.gui.scheduler_view import SchedulerView
    from prismq_desktop.gui.workers_view import BrokerPoller, WorkersView

log = logging.getLogger(__name__)

#: the tabs after Runs, in order: (attribute of the view, attribute of its page, title, page object name)
LAZY_TABS = (
    ("history_view", "history_tab", "History", "historyTab"),
    ("scheduler_view", "scheduler_tab", "Scheduler", "schedulerTab"),
    ("concurrency_view", "concurrency_tab", "Concurrency", "concurrencyTab"),
    ("pool_widget", "pool_view", "Pool", "poolView"),
    ("workers_view", "workers_tab", "Workers", "workersTab"),
)


def initial_size() -> tuple[int, int]:
    """Most of the screen, up to 1600×1000 (a 1024×700 screen gets a window that fits it)."""
    screen = QGuiApplication.primaryScreen()
    if screen is None:
        return 1280, 820
    avail = screen.availableGeometry()
    return min(1600, max(int(avail.width() * 0.8), min(1280, int(avail.width() * 0.96)))), \
        min(1000, max(int(avail.height() * 0.85), min(820, int(avail.height() * 0.94))))


def fit_to_screen(window: QWidget) -> None:
    """A restored geometry from a bigger screen is shrunk (and moved) onto this one."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return
    avail = screen.availableGeometry()
    frame = window.frameGeometry()
    if frame.width() > avail.width() or frame.height() > avail.height():
        window.resize(min(window.width(), int(avail.width() * 0.96)), min(window.height(), int(avail.height() * 0.94)))
    if not avail.intersects(window.frameGeometry()):
        window.move(avail.topLeft())


class MainWindow(QMainWindow):
    # The user chose to quit (closed the window with nothing left to ask, or Quit in the tray):
    # app.py ends the loop's main coroutine cleanly. Nothing here calls QApplication.quit(),
    # which would stop the loop under a coroutine still closing the orchestrator.
    quitRequested = Signal()
    # the tabs' pages after Runs (LAZY_TABS): each gets its view on first show or use
    history_tab: QWidget
    scheduler_tab: QWidget
    concurrency_tab: QWidget
    pool_view: QWidget
    workers_tab: QWidget

    def __init__(self, orchestrator: Any, settings: QSettings | None = None, *, broker: str | None = None) -> None:
        """`broker`: the URL the orchestrator was made with (default: its remote executor's), for
        the Where choice and the Workers tab."""
        super().__init__()
        self.orch = orchestrator
        remote = getattr(orchestrator, "remote", None)
        self.broker: str | None = broker or getattr(remote, "url", None)
        self.home = Path(orchestrator.engine.home)
        self.settings = settings or QSettings(str(self.home / "settings.ini"), QSettings.Format.IniFormat)
        self.bridge = Bridge(orchestrator, self)
        self.tasks = TaskStore(self.home / "tasks.json", orchestrator.registry.vault)
        self._quitting = False
        self.last_notification: str | None = None
        self.tray: QSystemTrayIcon | None = None
        self.settings_dialog: Any = None
        # Qt appends the application's display name ("— PrismQ Desktop") itself: name it once
        home = str(self.home)
        user_home = str(Path.home())
        self.setWindowTitle("~" + home[len(user_home):] if home.startswith(user_home + "/") else home)
        self.setObjectName("mainWindow")
        self.resize(*initial_size())

        self._views: dict[str, QWidget] = {}  # the tabs' views built so far (each on its first show or use)
        self._samples: collections.deque[Any] = collections.deque(maxlen=5000)  # for Concurrency, until built
        self._started = False
        #: more to start with the watcher and the monitor (app.py: the scheduler)
        self.after_first_paint: list[Callable[[], object]] = []
        self._build_tabs()
        self.status_fields = StatusFields(self.statusBar())
        self._connect_core()
        self.tray = tray_ui.make_tray(self, show=self.show_normal, quit_app=self.quit_now,
                                      pause_schedules=lambda paused: self.scheduler_view.pause_button.setChecked(paused))
        self._add_settings_action()
        apply_theme(setting(self.settings, "view/theme"))
        self._update_status()
        self.runs_view.update_actions()
        restore_layout(self.settings, self, self._splitters(), self.tabs)
        fit_to_screen(self)
        if self.settings.value("window/outer") is None:  # first start: room goes to the runs and their logs
            self._first_layout()
        if self.tasks.set_aside is not None:
            self.statusBar().showMessage(f"saved tasks could not be read; the file was kept as {self.tasks.set_aside}",
                                         15000)

    # ------------------------------------------------------------------ building the window
    def _build_tabs(self) -> None:
        """Runs is built at once; every other tab is an empty page whose view is built the first
        time the tab is shown or the view is used (issue 17: a third of the cold start)."""
        self.tabs = QTabWidget()
        self.tabs.setObjectName("mainTabs")
        self.tabs.addTab(self._build_runs_tab(), "Runs")
        for _view, page_attr, title, object_name in LAZY_TABS:
            page = QWidget()
            page.setObjectName(object_name)
            lay = QVBoxLayout(page)
            lay.setContentsMargins(0, 0, 0, 0)
            setattr(self, page_attr, page)
            self.tabs.addTab(page, title)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.launch_panel.where.set_broker(self.broker)
        self.launch_panel.scheduleRequested.connect(self._schedule_form)
        self.setCentralWidget(self.tabs)

    def _view(self, name: str) -> QWidget:
        """The tab's view, built into its page on first use."""
        view = self._views.get(name)
        if view is None:
            view = self._views[name] = getattr(self, "_make_" + name)()
            page = getattr(self, next(page for v, page, *_ in LAZY_TABS if v == name))
            cast(QVBoxLayout, page.layout()).addWidget(view)
        return view

    def _built(self, name: str) -> Any:
        """The tab's view if it was built, else None (nothing to update: it reads the core when built)."""
        return self._views.get(name)

    @property
    def history_view(self) -> HistoryView:
        return cast("HistoryView", self._view("history_view"))

    @property
    def scheduler_view(self) -> SchedulerView:
        return cast("SchedulerView", self._view("scheduler_view"))

    @property
    def concurrency_view(self) -> ConcurrencyView:
        return cast("ConcurrencyView", self._view("concurrency_view"))

    @property
    def pool_widget(self) -> PoolView:
        return cast("PoolView", self._view("pool_widget"))

    @property
    def workers_view(self) -> WorkersView:
        return cast("WorkersView", self._view("workers_view"))

    def _make_history_view(self) -> HistoryView:
        from prismq_desktop.gui.history_view import HistoryView

        view = HistoryView(self.orch.registry, self.settings)
        view.openLogRequested.connect(self.open_run_log)
        view.rerunRequested.connect(self._rerun_from_history)
        view.statusMessage.connect(self.statusBar().showMessage)
        return view

    def _make_scheduler_view(self) -> SchedulerView:
        from prismq_desktop.gui.scheduler_view import SchedulerView

        view = SchedulerView(self.orch.scheduler, self.orch.registry, self.scheduler_tab, bridge=self.bridge)
        view.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        view.broker = self.broker
        return view

    def _make_concurrency_view(self) -> ConcurrencyView:
        from prismq_desktop.gui.concurrency_view import ConcurrencyView

        view = ConcurrencyView(self.orch, self.concurrency_tab)
        # the sparklines' last minute, sampled before the tab was first shown; only the runs the
        # view shows (it was just built from them): a sample of an ended run would make it refresh
        # (queue table, dead letters) once per sample
        shown = set(view.lines)
        while self._samples:
            sample = self._samples.popleft()
            if getattr(sample, "run_id", None) is None or sample.run_id in shown:
                view.add_sample(sample)
        return view

    def _make_pool_widget(self) -> PoolView:
        from prismq_desktop.gui.pool_view import PoolView

        return PoolView(self.orch, self.pool_view)

    def _make_workers_view(self) -> WorkersView:
        from prismq_desktop.gui.workers_view import WorkersView

        view = WorkersView(self.broker, self.workers_tab)
        if "_broker_poller" in self.__dict__ and self.broker_poller.last is not None:
            view.show_snapshot(self.broker_poller.last)
        return view

    @property
    def broker_poller(self) -> BrokerPoller:
        """Made on first use (the deferred start, or a test): workers_view's module is not needed to paint."""
        poller: BrokerPoller | None = self.__dict__.get("_broker_poller")
        if poller is None:
            from prismq_desktop.gui.workers_view import BrokerPoller

            poller = self.__dict__["_broker_poller"] = BrokerPoller(
                self.broker, lambda: self.tabs.currentWidget() is self.workers_tab, self)
            poller.snapshotReady.connect(self._on_broker_snapshot)
        return poller

    def _build_runs_tab(self) -> QWidget:
        """Saved tasks | launch panel | (toolbar + runs table) over the log panes."""
        launch_scroll = self._build_launch_panel()
        self.runs_view = RunsView(self.orch, self.settings)
        self.runs_view.log_tabs.editorMissing.connect(lambda text: self.statusBar().showMessage(text, 12000))
        self.act_launch = QAction("Launch", self)  # window-wide, whichever tab is shown
        self.act_launch.setShortcut(QKeySequence("Ctrl+Return"))
        self.act_launch.triggered.connect(self.launch_panel.request_launch)
        self.addAction(self.act_launch)
        self.runs_split = QSplitter(Qt.Orientation.Horizontal)
        self.runs_split.setObjectName("launchSplitter")
        self.runs_split.addWidget(launch_scroll)
        self.runs_split.addWidget(self.runs_view)
        self.runs_split.setSizes([430, 700])
        self.tasks_panel = TasksPanel(self.tasks, self.launch, self.launch_panel.set_spec)
        self.tasks_panel.statusMessage.connect(self.statusBar().showMessage)
        self.launch_panel.saveRequested.connect(self.tasks_panel.save_task)
        self.outer_split = QSplitter(Qt.Orientation.Horizontal)
        self.outer_split.setObjectName("outerSplitter")
        self.outer_split.addWidget(self.tasks_panel)
        self.outer_split.addWidget(self.runs_split)
        # extra width goes to the runs table and the log panes, never to the forms beside them
        self.outer_split.setStretchFactor(0, 0)
        self.outer_split.setStretchFactor(1, 1)
        self.outer_split.setCollapsible(0, True)
        self.runs_split.setStretchFactor(0, 0)
        self.runs_split.setStretchFactor(1, 1)
        self.runs_split.setCollapsible(1, False)
        self.act_tasks = QAction("Saved tasks", self)
        self.act_tasks.setObjectName("toggleTasksAction")
        self.act_tasks.setCheckable(True)
        self.act_tasks.setToolTip("Show or hide the saved tasks (Ctrl+T)")
        self.act_tasks.setShortcut(QKeySequence("Ctrl+T"))
        self.act_tasks.toggled.connect(self.show_tasks_panel)
        self.outer_split.splitterMoved.connect(lambda *_: self._sync_tasks_toggle())
        return self.outer_split

    def _first_layout(self) -> None:
        """Sizes for a first start: at 1024 px the saved tasks fold away (unless there are some)."""
        width = max(self.width(), 800)
        show_tasks = bool(self.tasks.names()) and width >= 1200
        tasks_w = 180 if show_tasks else 0
        launch_w = 380 if width < 1400 else 440
        self.outer_split.setSizes([tasks_w, width - tasks_w])
        self.runs_split.setSizes([launch_w, width - tasks_w - launch_w])
        self._sync_tasks_toggle()

    def show_tasks_panel(self, shown: bool) -> None:
        sizes = self.outer_split.sizes()
        total = sum(sizes)
        if shown and sizes[0] == 0:
            self.outer_split.setSizes([180, max(total - 180, 0)])
        elif not shown and sizes[0] > 0:
            self.outer_split.setSizes([0, total])
        self._sync_tasks_toggle()

    def _sync_tasks_toggle(self) -> None:
        self.act_tasks.blockSignals(True)
        self.act_tasks.setChecked(self.outer_split.sizes()[0] > 0)
        self.act_tasks.blockSignals(False)

    def _build_launch_panel(self) -> QScrollArea:
        self.launch_panel = LaunchPanel(self.settings)
        self.launch_panel.launchRequested.connect(self.launch)
        launch_scroll = QScrollArea()
        launch_scroll.setWidget(self.launch_panel)
        launch_scroll.setWidgetResizable(True)
        launch_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        launch_scroll.setMinimumWidth(380)
        return launch_scroll

    def _connect_core(self) -> None:
        """The Bridge's signals, the system gauges and the once-a-second tick."""
        self.bridge.runChanged.connect(self._on_run_changed)
        self.bridge.output.connect(self.runs_view.on_output)
        self.bridge.progress.connect(self.runs_view.on_progress)
        self.bridge.notice.connect(self._on_notice)
        self.bridge.sample.connect(self._on_sample)
        self.bridge.externalRunChanged.connect(self._on_external_run)
        # runs that other processes write on this data dir (the CLI, a headless scheduler)
        self.watcher = RegistryWatcher(self.orch.registry, self.orch.bus.publish)
        self._ticker = QTimer(self)
        self._ticker.timeout.connect(self._tick)
        self._ticker.start(1000)
        # what the first paint does not need starts after it (issue 17): their threads would
        # compete with it for the GIL and the 2 cores; a window never shown starts them anyway
        self._start_timer = QTimer(self)
        self._start_timer.setSingleShot(True)
        self._start_timer.timeout.connect(self.start_background)
        self._start_timer.start(300)
        self._first_paint = _FirstPaint(self, lambda: self._start_timer.start(0))
        self.installEventFilter(self._first_paint)

    def start_background(self) -> None:
        """The registry watcher, the resource monitor and the broker's poller: once, after the first paint."""
        if self._started or self._quitting:
            return
        self._started = True
        self.removeEventFilter(self._first_paint)
        self.watcher.start()
        self.orch.engine.monitor.start()  # system gauges sample even with no run alive
        self.broker_poller.start()
        for start in self.after_first_paint:
            start()

    def _add_settings_action(self) -> None:
        settings_act = QAction("Settings…", self)
        settings_act.setObjectName("settingsAction")
        # Ctrl+, everywhere (Qt's Preferences key is empty on Linux/Windows), plus the platform's own
        keys = [QKeySequence("Ctrl+,"), *QKeySequence.keyBindings(QKeySequence.StandardKey.Preferences)]
        settings_act.setShortcuts(list(dict.fromkeys(keys)))
        settings_act.setToolTip("Settings (Ctrl+,)")
        settings_act.triggered.connect(self.open_settings)
        self.runs_view.add_tool_action(settings_act)
        self.runs_view.toolbar.addAction(self.act_tasks)
        self.addAction(settings_act)
        self.addAction(self.act_tasks)
        # the run actions' shortcuts work on every tab, not only while the Runs toolbar is visible
        for act in self.runs_view.toolbar.actions():
            if not act.isSeparator() and act is not settings_act:
                self.addAction(act)

    # ------------------------------------------------------------------ the broker's workers
    def _schedule_form(self, spec: RunSpec, _options: dict[str, Any]) -> Any:
        self.tabs.setCurrentWidget(self.scheduler_tab)
        return self.scheduler_view.new(base=spec)

    def _on_broker_snapshot(self, snap: Any) -> None:
        workers = self._built("workers_view")
        if workers is not None:  # else shown from broker_poller.last when the tab is built
            workers.show_snapshot(snap)
        if not snap.error:
            self.launch_panel.where.set_queues(snap.queues)

    def _tab_changed(self, _index: int) -> None:
        page = self.tabs.currentWidget()
        for view, page_attr, *_ in LAZY_TABS:
            if page is getattr(self, page_attr):
                self._view(view)  # built the first time it is shown
        if page is self.workers_tab:
            self.broker_poller.poll_now()  # at once, not up to a second later

    # ------------------------------------------------------------------ status and the tick
    def _update_status(self) -> None:
        running, queued = self.orch.running_count, self.orch.queue_length
        self.status_fields.show(running, queued, self.orch.max_concurrent, self.orch._scheduler)
        if self.tray is not None:
            self.tray.setToolTip(f"{APP_NAME}: {running} running, {queued} queued")

    def _tick(self) -> None:
        self.runs_view.tick()
        self._update_status()
        if self.tabs.currentWidget() is self.concurrency_tab:
            self.concurrency_view.refresh()

    # ------------------------------------------------------------------ runs, logs, tasks
    def launch(self, spec: RunSpec, options: dict[str, Any]) -> int | None:
        return self.runs_view.launch(spec, options)

    def _rerun_from_history(self, runs: list[Run]) -> None:
        for run in runs:
            self.runs_view.rerun(run)
        self.tabs.setCurrentIndex(0)

    def open_run_log(self, run: Run) -> None:
        self.runs_view.log_tabs.open_run(run)
        self.tabs.setCurrentIndex(0)

    # ------------------------------------------------------------------ events from the core
    def _on_run_changed(self, run: Run) -> None:
        self.runs_view.on_run_changed(run)
        self._history_upsert(run)
        if run.outcome is not None:
            self.notify(run)
        self.runs_view.select_first_run(run)
        self._update_status()
        if self.tabs.currentWidget() is self.concurrency_tab:
            self.concurrency_view.refresh()  # slots and the queue change with the run, not a second later

    def _on_external_run(self, run: Run) -> None:
        """A run of another process changed: History (and the Scheduler tab) follow it; Runs
        lists this window's runs only."""
        self._history_upsert(run)
        self._update_status()

    def _history_upsert(self, run: Run) -> None:
        history = self._built("history_view")
        if history is not None:  # else the run is in the registry, which History reads when built
            history.upsert(run)

    def notify(self, run: Run) -> str | None:
        """A desktop notification when a run (or a schedule's run) fails, or succeeds if chosen."""
        found = tray_ui.notification(run, self.settings)
        if found is None:
            return None
        title, failed = found
        self.last_notification = title
        if self.tray is not None:
            icon = QSystemTrayIcon.MessageIcon.Warning if failed else QSystemTrayIcon.MessageIcon.Information
            self.tray.showMessage(APP_NAME, title, icon, 6000)
        else:
            self.statusBar().showMessage(title, 8000)
        return title

    def _on_sample(self, sample: Any) -> None:
        run_id = getattr(sample, "run_id", None)
        if run_id is not None:
            self.runs_view.set_usage(run_id, sample.cpu_percent, sample.rss_bytes)
        concurrency = self._built("concurrency_view")
        if concurrency is not None:
            concurrency.add_sample(sample)
        else:
            self._samples.append(sample)

    def _on_notice(self, notice: Any) -> None:
        self.statusBar().showMessage(notice.message, 8000)
        if notice.level == "error":
            log.error("%s", notice.message)

    # ------------------------------------------------------------------ settings
    def open_settings(self) -> Any:
        from prismq_desktop.gui.settings_dialog import SettingsDialog

        self.settings_dialog = SettingsDialog(self.settings, str(self.home), self, registry=self.orch.registry)
        self.settings_dialog.applied.connect(self._settings_applied)
        self.settings_dialog.open()
        return self.settings_dialog

    def _settings_applied(self) -> None:
        dialog = self.settings_dialog
        if dialog is not None and dialog.broker_changed:
            new = dialog.broker.text().strip() or None
            if new != self.broker:
                self.statusBar().showMessage("The broker URL is saved; it is used from the next start of "
                                             "PrismQ Desktop (runs here keep going meanwhile).", 15000)
        self.orch.set_max_concurrent(setting(self.settings, "run/max_concurrent"))
        if (concurrency := self._built("concurrency_view")) is not None:
            concurrency.refresh()
        if (history := self._built("history_view")) is not None:
            history.load_retention_settings()

    # ------------------------------------------------------------------ closing, the tray, geometry
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        active = self.runs_view.active_ids() or [h.id for h in self.orch.engine.active()]
        if self._quitting or not active:
            self._stop_following()
            save_layout(self.settings, self, self._splitters(), self.tabs)
            event.accept()
            self._quitting = True
            self.quitRequested.emit()
            return
        event.ignore()
        self.ask_before_quit(len(active))

    def _stop_following(self) -> None:
        """The window is closing: no timer or watcher may reach the core after this (it closes next)."""
        self._started = True  # a start still pending never happens
        self.watcher.cancel()
        self._ticker.stop()
        if "_broker_poller" in self.__dict__:
            self.broker_poller.stop()
        for timer in self.findChildren(QTimer):
            timer.stop()

    def ask_before_quit(self, count: int) -> QMessageBox:
        return tray_ui.ask_before_quit(self, count, cancel_and_quit=self._cancel_all_and_quit,
                                       keep_running=self.hide_to_tray, has_tray=self.tray is not None)

    def _cancel_all_and_quit(self) -> None:
        self.orch.cancel_all()
        self._quitting = True
        self.close()

    def quit_now(self) -> None:
        """Quit from the tray: cancel every run's tree, then end (through quitRequested)."""
        self._quitting = True
        self.orch.cancel_all()
        if not self.close():  # a hidden window still counts as closed once it is
            self.quitRequested.emit()

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

    def _splitters(self) -> dict[str, QSplitter]:
        return {"window/outer": self.outer_split, "window/runs": self.runs_split}

    # ------------------------------------------------------------------ the views' parts, as tests and benchmarks reach them
    @property
    def runs_model(self) -> RunsModel:
        return self.runs_view.runs_model

    @property
    def runs_table(self) -> QTableView:
        return self.runs_view.runs_table

    @property
    def act_cancel(self) -> QAction:
        return self.runs_view.act_cancel

    @property
    def panes(self) -> dict[int, LogPane]:
        return self.runs_view.panes

    @property
    def task_list(self) -> QListWidget:
        return self.tasks_panel.task_list

    def _store_task(self, name: str, spec: RunSpec, options: dict[str, Any]) -> None:
        self.tasks_panel.store_task(name, spec, options)

    def _duplicate_task(self, name: str) -> None:
        self.tasks_panel.duplicate_task(name)

    def _change_tasks(self, change: Callable[[], object]) -> None:
        self.tasks_panel.change_tasks(change)

    @property
    def history_model(self) -> HistoryModel:
        return self.history_view.history_model

    @property
    def history_table(self) -> QTableView:
        return self.history_view.history_table

    @property
    def history_count(self) -> QLabel:
        return self.history_view.history_count

    @property
    def keep_runs(self) -> QSpinBox:
        return self.history_view.keep_runs

    def confirm_retention(self) -> QMessageBox | None:
        return self.history_view.confirm_retention()

    def apply_retention(self) -> int:
        return self.history_view.apply_retention()

    def export_history(self, path: str) -> int:
        return self.history_view.export_history(path)


class _FirstPaint(QObject):
    """Calls `then` on the next loop turn after the window's first Paint event."""

    def __init__(self, window: QWidget, then: Callable[[], object]) -> None:
        super().__init__(window)
        self.then = then

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Paint:
            self.then()  # starts a 0 ms timer: the paint itself goes first
        return False
