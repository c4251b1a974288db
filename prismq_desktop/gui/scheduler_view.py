"""The Scheduler tab: schedules in words, countdowns, an enabled switch, an editor with live
cron validation (the next five fire times), run now, and each schedule's own history."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QDateTime, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from prismq_desktop.core.models import RunSpec, TargetKind
from prismq_desktop.core.schedule.model import Schedule, ScheduleError
from prismq_desktop.core.schedule.scheduler import Scheduler, make_trigger
from prismq_desktop.core.schedule.triggers import Trigger, TriggerError, local_text, next_fires
from prismq_desktop.core.store.query import RunQuery
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.gui.models import ColumnTable, HistoryModel, state_text

Index = QModelIndex | QPersistentModelIndex


def countdown(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"in {seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"in {minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"in {hours}h {minutes:02d}m"
    return f"in {hours // 24} days"


class SchedulesModel(ColumnTable):
    COLUMNS = ["Name", "When", "Next fire", "Last outcome", "Enabled"]

    def __init__(self, scheduler: Scheduler, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.scheduler = scheduler
        self.rows: list[Schedule] = []
        self.last: dict[int, str] = {}
        self.refresh()

    def refresh(self) -> None:
        self.beginResetModel()
        self.rows = self.scheduler.all()
        self.last = {}
        for s in self.rows:
            latest = self.scheduler.registry.query(RunQuery(schedule_id=s.id, limit=1))
            self.last[s.id] = state_text(latest[0]) if latest else "—"
        self.endResetModel()

    def row_total(self) -> int:
        return len(self.rows)

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = super().flags(index)
        if index.isValid() and index.column() == 4:
            return base | Qt.ItemFlag.ItemIsUserCheckable
        return base

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        s = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.CheckStateRole and col == 4:
            return Qt.CheckState.Checked if s.enabled else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.ToolTipRole and col == 1:
            return f"{s.trigger.to_dict()} · overlap {s.overlap.value} · catch-up {s.catchup.value}"
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if col == 0:
            return s.name
        if col == 1:
            return s.describe()
        if col == 2:
            if not s.enabled or s.next_fire is None:
                return "—"
            return f"{local_text(s.next_fire, s.trigger.timezone)} ({countdown(s.next_fire - time.time())})"
        if col == 3:
            return self.last.get(s.id, "—")
        return "on" if s.enabled else "off"

    def setData(self, index: Index, value: object, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if index.column() == 4 and role == Qt.ItemDataRole.CheckStateRole:
            s = self.rows[index.row()]
            on = value in (Qt.CheckState.Checked, Qt.CheckState.Checked.value, 2)
            self.rows[index.row()] = self.scheduler.enable(s.id) if on else self.scheduler.disable(s.id)
            self.dataChanged.emit(self.index(index.row(), 0), self.index(index.row(), 4))
            return True
        return False

    def schedule_at(self, row: int) -> Schedule | None:
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def tick(self) -> None:
        if self.rows:
            self.dataChanged.emit(self.index(0, 2), self.index(len(self.rows) - 1, 2))


class ScheduleEditor(QDialog):
    """Create or edit a schedule; the next five fire times update as you type."""

    saved = Signal(object)

    def __init__(self, scheduler: Scheduler, schedule: Schedule | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scheduleEditor")
        self.setWindowTitle("Edit schedule" if schedule else "New schedule")
        self.scheduler = scheduler
        self.schedule = schedule
        self.name = QLineEdit()
        self.name.setObjectName("scheduleName")
        self.target = QLineEdit()
        self.target.setObjectName("scheduleTarget")
        self.target.setPlaceholderText("script.py or a command")
        self.args = QLineEdit()
        self.kind = QComboBox()
        self.kind.setObjectName("triggerKind")
        self.kind.addItems(["Interval", "Cron", "Once"])
        self.every = QDoubleSpinBox()
        self.every.setObjectName("intervalValue")
        self.every.setRange(0.1, 10_000_000)
        self.every.setValue(5)
        self.unit = QComboBox()
        self.unit.addItems(["seconds", "minutes", "hours", "days"])
        self.unit.setCurrentText("minutes")
        self.cron = QLineEdit("0 2 * * 1-5")
        self.cron.setObjectName("cronEdit")
        self.at = QDateTimeEdit(QDateTime.currentDateTime().addSecs(3600))
        self.at.setCalendarPopup(True)
        self.tz = QComboBox()
        self.tz.setObjectName("timezoneCombo")
        self.tz.setEditable(True)
        self.tz.addItems(["UTC", "Europe/Berlin", "Europe/London", "America/New_York", "Asia/Tokyo"])
        self.tz.setCurrentText(_local_zone())
        self.overlap = QComboBox()
        self.overlap.setObjectName("overlapCombo")
        self.overlap.addItems(["forbid", "allow", "replace", "queue"])
        self.catchup = QComboBox()
        self.catchup.setObjectName("catchupCombo")
        self.catchup.addItems(["coalesce", "all", "skip"])
        self.jitter = QDoubleSpinBox()
        self.jitter.setRange(0, 3600)
        self.jitter.setSuffix(" s")
        self.retries = QSpinBox()
        self.retries.setRange(0, 100)
        self.preview = QLabel()
        self.preview.setObjectName("nextFires")
        self.preview.setTextFormat(Qt.TextFormat.RichText)
        self.error = QLabel()
        self.error.setObjectName("scheduleError")
        self.error.setStyleSheet("color: #cd3131")

        pages = QStackedWidget()
        interval_page = QWidget()
        il = QHBoxLayout(interval_page)
        il.setContentsMargins(0, 0, 0, 0)
        il.addWidget(QLabel("every"))
        il.addWidget(self.every)
        il.addWidget(self.unit)
        pages.addWidget(interval_page)
        pages.addWidget(self.cron)
        pages.addWidget(self.at)
        self.kind.currentIndexChanged.connect(pages.setCurrentIndex)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Run", self.target)
        form.addRow("Arguments", self.args)
        form.addRow("Trigger", self.kind)
        form.addRow("", pages)
        form.addRow("Timezone", self.tz)
        form.addRow("Next fires", self.preview)
        form.addRow("If still running", self.overlap)
        form.addRow("Missed fires", self.catchup)
        form.addRow("Jitter", self.jitter)
        form.addRow("Retries", self.retries)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._save)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.error)
        lay.addWidget(self.buttons)
        for sig in (self.kind.currentIndexChanged, self.every.valueChanged, self.unit.currentIndexChanged,
                    self.cron.textChanged, self.at.dateTimeChanged, self.tz.currentTextChanged):
            sig.connect(self._validate)
        if schedule is not None:
            self._load(schedule)
        self._validate()

    def _load(self, s: Schedule) -> None:
        self.name.setText(s.name)
        self.target.setText(s.spec.target)
        self.args.setText(s.spec.args if isinstance(s.spec.args, str) else " ".join(s.spec.args))
        data = s.trigger.to_dict()
        self.tz.setCurrentText(data.get("timezone") or "UTC")
        if data["kind"] == "interval":
            self.kind.setCurrentIndex(0)
            self.every.setValue(data["seconds"])
            self.unit.setCurrentText("seconds")
        elif data["kind"] == "cron":
            self.kind.setCurrentIndex(1)
            self.cron.setText(data["expression"])
        else:
            self.kind.setCurrentIndex(2)
            self.at.setDateTime(QDateTime.fromSecsSinceEpoch(int(data["at"])))
        self.overlap.setCurrentText(s.overlap.value)
        self.catchup.setCurrentText(s.catchup.value)
        self.jitter.setValue(s.jitter)
        self.retries.setValue(int(s.options.get("max_retries", 0)))

    def trigger(self) -> Trigger:
        tz = self.tz.currentText().strip() or "UTC"
        if self.kind.currentIndex() == 0:
            mult = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}[self.unit.currentText()]
            return make_trigger(interval_seconds=self.every.value() * mult, timezone=tz)
        if self.kind.currentIndex() == 1:
            return make_trigger(cron=self.cron.text(), timezone=tz)
        return make_trigger(at=float(self.at.dateTime().toSecsSinceEpoch()), timezone=tz)

    def _validate(self, *_: object) -> bool:
        try:
            trig = self.trigger()
        except (TriggerError, ValueError) as exc:
            self.preview.setText(f"<span style='color:#cd3131'>⚠ {exc}</span>")
            self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(False)
            return False
        fires = next_fires(trig, 5)
        words = trig.describe()
        listing = "<br>".join(local_text(f, trig.timezone) for f in fires) or "never again"
        self.preview.setText(f"<b>{words}</b><br>{listing}")
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(True)
        return True

    def _save(self) -> None:
        if not self._validate():
            return
        target = self.target.text().strip()
        spec = RunSpec(target, self.args.text(), kind=TargetKind.AUTO, name=self.name.text().strip() or None)
        options: dict[str, Any] = {"max_retries": self.retries.value()} if self.retries.value() else {}
        try:
            if self.schedule is None:
                s = self.scheduler.add(self.name.text(), spec, self.trigger(), overlap=self.overlap.currentText(),
                                       catchup=self.catchup.currentText(), jitter=self.jitter.value(), **options)
            else:
                s = self.scheduler.update(self.schedule.id, name=self.name.text().strip(), spec=spec, trigger=self.trigger(),
                                          overlap=self.overlap.currentText(), catchup=self.catchup.currentText(),
                                          jitter=self.jitter.value(), **options)
        except (ScheduleError, TriggerError, ValueError) as exc:
            self.error.setText(str(exc))
            return
        self.saved.emit(s)
        self.accept()


def _local_zone() -> str:
    try:
        import os

        tz = os.environ.get("TZ")
        if tz:
            return tz
        link = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in link:
            return link.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return "UTC"


class SchedulerView(QWidget):
    """Schedules on top, the selected schedule's runs (fired, skipped, missed) below."""

    def __init__(self, scheduler: Scheduler, registry: RunRegistry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scheduler = scheduler
        self.model = SchedulesModel(scheduler, self)
        self.table = QTableView()
        self.table.setObjectName("schedulesTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().resizeSection(2, 260)
        self.table.doubleClicked.connect(lambda _i: self.edit())
        self.history = HistoryModel(registry, self)
        self.history.schedule_id = -1
        self.history.refresh()
        self.history_table = QTableView()
        self.history_table.setObjectName("scheduleHistory")
        self.history_table.setModel(self.history)
        self.history_table.verticalHeader().hide()
        self.history_table.setWordWrap(False)
        self.history_table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().currentRowChanged.connect(self._selected)
        bar = QHBoxLayout()
        self.pause_button = QPushButton("Pause all schedules")
        self.pause_button.setObjectName("pauseSchedulesButton")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._pause)
        for text, name, slot in (("New…", "newScheduleButton", self.new), ("Edit…", "editScheduleButton", self.edit),
                                 ("Run now", "runNowButton", self.run_now), ("Delete", "deleteScheduleButton", self.delete)):
            b = QPushButton(text)
            b.setObjectName(name)
            b.clicked.connect(slot)
            bar.addWidget(b)
        bar.addStretch(1)
        bar.addWidget(self.pause_button)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        box = QWidget()
        bl = QVBoxLayout(box)
        bl.setContentsMargins(0, 0, 0, 0)
        self.history_label = QLabel("Select a schedule to see its runs, skips and misses.")
        bl.addWidget(self.history_label)
        bl.addWidget(self.history_table)
        split.addWidget(box)
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(split, 1)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.model.tick)
        self._timer.start(1000)
        self.editor: ScheduleEditor | None = None

    def selected(self) -> Schedule | None:
        index = self.table.currentIndex()
        return self.model.schedule_at(index.row()) if index.isValid() else None

    def _selected(self, current: QModelIndex, _prev: QModelIndex) -> None:
        s = self.model.schedule_at(current.row()) if current.isValid() else None
        self.history.schedule_id = s.id if s else -1
        self.history.refresh()
        if s is not None:
            self.history_label.setText(f"Runs of <b>{s.name}</b> ({self.history.total}), newest first")

    def refresh(self) -> None:
        current = self.selected()
        self.model.refresh()
        if current is not None:
            for row, s in enumerate(self.model.rows):
                if s.id == current.id:
                    self.table.selectRow(row)
        self.history.refresh()

    def new(self) -> ScheduleEditor:
        return self._open_editor(None)

    def edit(self) -> ScheduleEditor | None:
        s = self.selected()
        return self._open_editor(s) if s is not None else None

    def _open_editor(self, s: Schedule | None) -> ScheduleEditor:
        self.editor = ScheduleEditor(self.scheduler, s, self)
        self.editor.saved.connect(lambda _s: self.refresh())
        self.editor.open()  # never exec() inside the asyncio loop
        return self.editor

    def run_now(self) -> int | None:
        s = self.selected()
        if s is None:
            return None
        run_id = self.scheduler.run_now(s.id)
        self.refresh()
        return run_id

    def delete(self) -> None:
        s = self.selected()
        if s is not None:
            self.scheduler.remove(s.id)
            self.refresh()

    def _pause(self, on: bool) -> None:
        if on:
            self.scheduler.pause_all()
            self.pause_button.setText("Resume schedules")
        else:
            self.scheduler.resume_all()
            self.pause_button.setText("Pause all schedules")
