"""The History tab: filters, the paged history table, open log / rerun / delete / export, retention.

Deleting, retention and export go through core/services/history (as the command line does).
What needs the Runs tab (opening a log pane, rerunning) is asked for with signals.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import QModelIndex, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from prismq_desktop.core.models import Run
from prismq_desktop.core.services import history as history_service
from prismq_desktop.core.services.history import RetentionPolicy
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.core.wording import plural
from prismq_desktop.gui.models import HistoryModel
from prismq_desktop.gui.settings_dialog import value as setting
from prismq_desktop.gui.widgets import button_row, confirm, show_message

log = logging.getLogger(__name__)

# History columns -> width in px ("#", Name stretches, Pattern, Trigger, Status, Started, Duration,
# Exit, Peak CPU, Peak RSS)
HISTORY_WIDTHS = {0: 44, 2: 96, 3: 84, 4: 112, 5: 138, 6: 68, 7: 64, 8: 72, 9: 80}

STATUSES = ["any status", "active", "succeeded", "failed", "failed_to_start", "cancelled",
            "timed_out", "interrupted", "skipped", "missed"]


class HistoryView(QWidget):
    openLogRequested = Signal(object)  # Run: show its log pane
    rerunRequested = Signal(list)  # [Run]: launch each again (then show the Runs tab)
    statusMessage = Signal(str, int)  # text, milliseconds

    INDEX_EVERY_MS = 2000
    INDEX_BATCH = 2000  # about 10 ms of one loop turn

    def _index_pending(self) -> None:
        try:
            left = self.registry.index_pending(self.INDEX_BATCH)
        except Exception as exc:  # noqa: BLE001 - an index that cannot grow now only makes filters slower
            log.info("history index: %s", exc)
            return
        self._indexer.setInterval(50 if left else self.INDEX_EVERY_MS)  # a backlog: keep going, a turn apart

    def __init__(self, registry: RunRegistry, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.registry = registry
        self.settings = settings
        self._filter_took: float | None = None
        self.history_model = HistoryModel(registry, self)
        # the runs the registry noted for its name index are indexed a batch at a time, while
        # idle: a filter then reads few rows by LIKE (store.runs.RunTable.index_pending)
        self._indexer = QTimer(self)
        self._indexer.setInterval(self.INDEX_EVERY_MS)
        self._indexer.timeout.connect(self._index_pending)
        self._indexer.start()
        self.history_table = self._build_table()
        hbar = self._build_filters()
        self.history_model.total_changed.connect(self._show_count)  # a common text's exact count, after its page
        button_row((("Open log", "historyOpenButton", self._open_selected),
                    ("Rerun", "historyRerunButton", self._rerun),
                    ("Delete", "historyDeleteButton", self._delete),
                    ("Export…", "historyExportButton", self._export)), hbar)
        hl = QVBoxLayout(self)
        hl.addLayout(hbar)
        hl.addWidget(self.history_table, 1)
        hl.addLayout(self._build_retention_bar())

    # ------------------------------------------------------------------ building
    def _build_table(self) -> QTableView:
        table = QTableView()
        table.setObjectName("historyTable")
        table.setModel(self.history_model)
        table.setSortingEnabled(True)
        table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.DescendingOrder)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.verticalHeader().hide()
        table.setWordWrap(False)
        table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = table.horizontalHeader()
        # fixed, content-sized columns; the Name column takes the rest (at 1920 px the extra
        # width goes to names, not to "Started" or "Trigger")
        for col, width in HISTORY_WIDTHS.items():
            header.resizeSection(col, width)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        table.doubleClicked.connect(self._open)
        return table

    def _build_filters(self) -> QHBoxLayout:
        self.history_filter = QLineEdit()
        self.history_filter.setObjectName("historyFilter")
        self.history_filter.setPlaceholderText("Filter by name, trigger or error…")
        self.history_status = QComboBox()
        self.history_status.setObjectName("historyStatus")
        self.history_status.addItems(STATUSES)
        self.history_since = QDateEdit()
        self.history_since.setObjectName("historySince")
        self.history_since.setCalendarPopup(True)
        self.history_since.setSpecialValueText("any date")
        self.history_since.setMinimumDate(self.history_since.minimumDate())
        self.history_since.setDate(self.history_since.minimumDate())
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.timeout.connect(self.apply_filter)
        self.history_filter.textChanged.connect(lambda: self._filter_timer.start(150))
        self.history_status.currentIndexChanged.connect(self.apply_filter)
        self.history_since.dateChanged.connect(self.apply_filter)
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
        self.keep_runs = QSpinBox()
        self.keep_runs.setObjectName("retentionRuns")
        self.keep_runs.setRange(0, 10_000_000)
        self.keep_runs.setSpecialValueText("all")
        self.keep_runs.setSuffix(" runs")
        self.load_retention_settings()
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

    # ------------------------------------------------------------------ filter and rows
    def apply_filter(self) -> None:
        status = self.history_status.currentText()
        statuses = None if status == "any status" else (["queued", "running", "paused"] if status == "active" else [status])
        since = None
        if self.history_since.date() != self.history_since.minimumDate():
            d = self.history_since.date()
            since = time.mktime((d.year(), d.month(), d.day(), 0, 0, 0, 0, 0, -1))
        started = time.perf_counter()
        self.history_model.set_filter(self.history_filter.text(), statuses, since)
        self._filter_took = (time.perf_counter() - started) * 1000
        self._show_count()

    def _show_count(self) -> None:
        took = self._filter_took
        tail = "" if took is None else f" · filtered in {took:.0f} ms"
        self.history_count.setText(f"{self.history_model.count_text()}{tail}")

    def upsert(self, run: Run) -> None:
        self.history_model.upsert(run)

    def selected_runs(self) -> list[Run]:
        rows = sorted({i.row() for i in self.history_table.selectionModel().selectedRows()})
        return [r for r in (self.history_model.run_at(row) for row in rows) if r is not None]

    def _open(self, index: QModelIndex) -> None:
        run = self.history_model.run_at(index.row())
        if run is not None:
            self.openLogRequested.emit(run)

    def _open_selected(self) -> None:
        for run in self.selected_runs()[:5]:
            self.openLogRequested.emit(run)

    def _rerun(self) -> None:
        self.rerunRequested.emit(self.selected_runs())

    def _delete(self) -> QMessageBox | None:
        """Ask first, naming what and how many; delete the finished runs and their logs on yes."""
        selected = self.selected_runs()
        runs = [r for r in selected if not r.is_active]
        active = len(selected) - len(runs)
        if not runs:
            if active:
                self.statusMessage.emit(f"{plural(active, 'selected run')} still active: cancel first", 6000)
            return None
        what = f"run #{runs[0].id} {runs[0].name!r}" if len(runs) == 1 else plural(len(runs), "run")
        note = f"\n{plural(active, 'active run')} in the selection will be kept." if active else ""
        return confirm(self, "Delete from history",
                       f"Delete {what} and {'its log file' if len(runs) == 1 else 'their log files'}? "
                       f"This cannot be undone.{note}", f"Delete {plural(len(runs), 'run')}",
                       lambda: self.delete_runs(runs), name="deleteHistoryDialog")

    def delete_runs(self, runs: list[Run]) -> int:
        removed = history_service.delete_runs(self.registry, [r.id for r in runs])
        self.history_model.remove_rows_of(set(removed.run_ids))
        self._report_log_errors(removed.log_errors)
        self.statusMessage.emit(f"deleted {plural(removed.runs, 'run')} and {plural(removed.logs, 'log file')}", 6000)
        return removed.runs

    def _report_log_errors(self, errors: tuple[str, ...]) -> None:
        if errors:
            for error in errors:
                log.warning("cannot remove a log file: %s", error)
            self.statusMessage.emit(f"{len(errors)} log file(s) could not be removed, e.g. {errors[0]}", 10000)

    # ------------------------------------------------------------------ export
    def _export(self) -> None:
        dialog = QFileDialog(self, "Export history", str(Path.home() / "prismq-history.csv"), "CSV (*.csv);;JSON (*.json)")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.fileSelected.connect(self.export_history)
        dialog.open()

    def export_history(self, path: str) -> int:
        """Export what the History filter shows (every page, not only the loaded ones)."""
        query = self.history_model.query()
        try:
            count = history_service.export_history(self.registry, path, query)
        except OSError as exc:
            show_message(self, "Export failed", f"{path}: {exc.strerror or exc}", QMessageBox.Icon.Warning)
            return 0
        self.statusMessage.emit(f"exported {plural(count, 'run')} to {path}", 5000)
        return count

    # ------------------------------------------------------------------ retention
    def load_retention_settings(self) -> None:
        """The retention fields from the settings (after they were changed in the Settings dialog)."""
        self.keep_days.setValue(setting(self.settings, "history/keep_days"))
        self.keep_runs.setValue(setting(self.settings, "history/keep_runs"))

    def retention_policy(self) -> RetentionPolicy:
        """The policy the retention fields show (0 days = forever, 0 runs = all)."""
        return RetentionPolicy.from_form(self.keep_days.value(), self.keep_runs.value())

    def confirm_retention(self) -> QMessageBox | None:
        """Apply retention: say how many finished runs it deletes and ask first (no question if none)."""
        policy = self.retention_policy()
        count = history_service.preview_retention(self.registry, policy)
        if count == 0:
            self.apply_retention()
            return None
        box = QMessageBox(QMessageBox.Icon.Question, "Apply retention",
                          f"{policy.describe().capitalize()}: this deletes {plural(count, 'finished run')} and their logs.",
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
        removed = history_service.apply_retention(self.registry, self.retention_policy())
        self.history_model.refresh()
        self.history_count.setText(f"{self.history_model.count_text()} · retention removed "
                                   f"{plural(removed.runs, 'run')} and {plural(removed.logs, 'log file')}")
        self._report_log_errors(removed.log_errors)
        return removed.runs
