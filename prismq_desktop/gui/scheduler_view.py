"""The Scheduler tab: schedules in words, countdowns, an enabled switch, an editor with live
validation (the next five fire times), run now, and each schedule's own history.

The tab follows the core from events, in place: every run of a schedule (fired, skipped,
missed, finished; this process's `runChanged` or another's `externalRunChanged`) updates the
schedule's "Last outcome" and, when it is the selected one, its history; `scheduleChanged`
updates (or adds, or removes) one schedule row. Nothing reloads on a timer: the one-second
timer only repaints the countdowns.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDateTime, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
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
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from prismq_desktop.core.events import EventBus, ScheduleChanged
from prismq_desktop.core.functions.payload import encode_call
from prismq_desktop.core.models import OutcomeKind, Run, RunSpec, RunStatus, TargetKind
from prismq_desktop.core.schedule.model import Schedule, ScheduleError
from prismq_desktop.core.schedule.scheduler import FireAction, FireResult, Scheduler, make_trigger
from prismq_desktop.core.schedule.triggers import Trigger, TriggerError, local_text, next_fires
from prismq_desktop.core.services.export import FORMAT_NAMES, ExportError, export_schedule, unit_name, write_export
from prismq_desktop.core.store.query import RunQuery
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.core.store.schema import RegistryError
from prismq_desktop.core.wording import duration_text, end_line, exit_text, plural, status_text
from prismq_desktop.gui.bridge import Bridge
from prismq_desktop.gui.history_view import HISTORY_WIDTHS
from prismq_desktop.gui.launch import arguments_text, parse_json_arguments
from prismq_desktop.gui.models import ColumnTable, HistoryModel
from prismq_desktop.gui.where import WhereChoice

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


#: what a run of a schedule can be while or after it really ran (not a skipped or missed fire's record)
RAN = tuple([s.value for s in RunStatus if s is not RunStatus.DONE]
            + [k.value for k in OutcomeKind if k not in (OutcomeKind.SKIPPED, OutcomeKind.MISSED)])


def _is_record(run: Run) -> bool:
    """A fire that never started (skipped, missed): a record in history, not a run."""
    return run.outcome is not None and run.outcome.kind in (OutcomeKind.SKIPPED, OutcomeKind.MISSED)


def _newer(run: Run, than: Run | None) -> bool:
    """`run` is the same run as `than` (a newer snapshot of it) or a run created after it."""
    return than is None or run.id == than.id or (run.created_at, run.id) > (than.created_at, than.id)


class SchedulesModel(ColumnTable):
    COLUMNS = ["Name", "When", "Next fire", "Last outcome", "Enabled"]
    LAST = 3
    #: one line when enabling/disabling failed (a registry locked by another process): the view shows it
    failed = Signal(str)

    def __init__(self, scheduler: Scheduler, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.scheduler = scheduler
        self.rows: list[Schedule] = []
        # schedule id -> {run id: snapshot}: its live runs, its newest finished run and its newest
        # skipped/missed record (a record starts as a queued run, so the finished one is kept too)
        self.recent: dict[int, dict[int, Run]] = {}
        self.refresh()

    # -- whole reload (start-up, or asked for): rows are kept where they are when nothing moved
    def refresh(self) -> None:
        fresh = self.scheduler.all()
        recent: dict[int, dict[int, Run]] = {}
        for s in fresh:
            found = self.scheduler.registry.query(RunQuery(schedule_id=s.id, limit=1))
            if found and _is_record(found[0]):
                found += self.scheduler.registry.query(RunQuery.of(RAN, schedule_id=s.id, limit=1))
            recent[s.id] = {r.id: r for r in found}
        if [s.id for s in fresh] == [s.id for s in self.rows]:
            self.rows, self.recent = fresh, recent
            if self.rows:
                self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, len(self.COLUMNS) - 1))
            return
        self.beginResetModel()
        self.rows, self.recent = fresh, recent
        self.endResetModel()

    # -- in place, from events
    def row_of(self, schedule_id: int) -> int | None:
        for row, s in enumerate(self.rows):
            if s.id == schedule_id:
                return row
        return None

    def set_schedule(self, s: Schedule) -> None:
        """A schedule was added, edited, fired, enabled or disabled: its row shows the new snapshot."""
        row = self.row_of(s.id)
        if row is not None and s.name == self.rows[row].name:
            self.rows[row] = s
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))
            return
        if row is not None:  # renamed: it moves to its place by name
            self.beginRemoveRows(QModelIndex(), row, row)
            del self.rows[row]
            self.endRemoveRows()
        at = next((i for i, other in enumerate(self.rows) if other.name > s.name), len(self.rows))
        self.beginInsertRows(QModelIndex(), at, at)
        self.rows.insert(at, s)
        self.endInsertRows()

    def remove_schedule(self, schedule_id: int) -> None:
        row = self.row_of(schedule_id)
        if row is None:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self.rows[row]
        self.recent.pop(schedule_id, None)
        self.endRemoveRows()

    def note_run(self, run: Run) -> bool:
        """A run (or skipped/missed record) of a schedule changed; True if the row's last outcome did."""
        sid = run.schedule_id
        row = self.row_of(sid) if sid is not None else None
        if sid is None or row is None:
            return False
        before = self.last_text(sid)
        runs = self.recent.setdefault(sid, {})
        runs[run.id] = run
        self._prune(runs)
        if self.last_text(sid) == before:
            return False
        self.dataChanged.emit(self.index(row, self.LAST), self.index(row, self.LAST))
        return True

    @staticmethod
    def _prune(runs: dict[int, Run]) -> None:
        newest_done = max((r for r in runs.values() if not r.is_active and not _is_record(r)),
                          key=lambda r: (r.created_at, r.id), default=None)
        newest_record = max((r for r in runs.values() if _is_record(r)), key=lambda r: (r.created_at, r.id), default=None)
        for rid, r in list(runs.items()):
            if not r.is_active and r is not newest_done and r is not newest_record:
                del runs[rid]

    def last_and_record(self, schedule_id: int) -> tuple[Run | None, Run | None]:
        """The schedule's newest run that ran (or runs), and a skipped/missed fire after it, if any."""
        runs = sorted(self.recent.get(schedule_id, {}).values(), key=lambda r: (r.created_at, r.id), reverse=True)
        last = next((r for r in runs if not _is_record(r)), None)
        record = runs[0] if runs and _is_record(runs[0]) else None
        return last, record

    def last_text(self, schedule_id: int) -> str:
        """ "succeeded (#21)"; "running (#10) · last fire skipped (#11)" when a fire was skipped since."""
        run, rec = self.last_and_record(schedule_id)
        parts = [f"{status_text(run)} (#{run.id})"] if run is not None else []
        if rec is not None:
            parts.append(f"{'last fire ' if parts else ''}{status_text(rec)} (#{rec.id})")
        return " · ".join(parts) or "—"

    # -- Qt model API
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
        if role == Qt.ItemDataRole.ToolTipRole and col == self.LAST:
            return self._last_tooltip(s)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if col == 0:
            return s.name
        if col == 1:
            return s.describe()
        if col == 2:
            if not s.enabled or s.next_fire is None:
                return "—"
            wait = s.next_fire - self.scheduler.clock()
            return f"{local_text(s.next_fire, s.trigger.timezone)} ({countdown(wait) if wait > 0 else 'due now'})"
        if col == self.LAST:
            return self.last_text(s.id)
        return "on" if s.enabled else "off"

    def _last_tooltip(self, s: Schedule) -> str | None:
        lines = []
        for run in self.last_and_record(s.id):
            if run is not None:
                how = end_line(run) or status_text(run)
                lines.append(f"#{run.id} ({run.trigger or 'schedule'}): {how}")
        return "\n".join(lines) or None

    def setData(self, index: Index, value: object, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if index.column() == 4 and role == Qt.ItemDataRole.CheckStateRole:
            s = self.rows[index.row()]
            on = value in (Qt.CheckState.Checked, Qt.CheckState.Checked.value, 2)
            try:
                self.set_schedule(self.scheduler.enable(s.id) if on else self.scheduler.disable(s.id))
            except (ScheduleError, RegistryError) as exc:  # locked by another process, full, deleted elsewhere
                self.failed.emit(f"{s.name} was not {'enabled' if on else 'disabled'}: {exc}")
                return False
            return True
        return False

    def schedule_at(self, row: int) -> Schedule | None:
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def tick(self) -> None:
        if self.rows:
            self.dataChanged.emit(self.index(0, 2), self.index(len(self.rows) - 1, 2))


class ScheduleHistoryModel(HistoryModel):
    """One schedule's runs (fired, skipped, missed), newest first, statuses and exits in words."""

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and index.isValid() and 0 <= index.row() < len(self._runs):
            run = self._runs[index.row()]
            if index.column() == self.STATUS_COLUMN:
                return status_text(run)
            if index.column() == 6:
                return duration_text(run.duration) if run.started_at else ""
            if index.column() == 7:
                return exit_text(run.exit_code)
        if role == Qt.ItemDataRole.ToolTipRole and index.isValid() and index.column() == self.STATUS_COLUMN:
            shown = self._runs[index.row()] if 0 <= index.row() < len(self._runs) else None
            if shown is not None and shown.outcome is not None:
                return end_line(shown) or shown.outcome.message
        return super().data(index, role)

    def upsert(self, run: Run) -> None:
        """Update the run's row; a new run of this schedule goes on top (an older one not paged in yet stays out)."""
        if self.schedule_id is None or run.schedule_id != self.schedule_id:
            return
        if all(r.id != run.id for r in self._runs) and self._runs and not _newer(run, self._runs[0]):
            return
        super().upsert(run)


class ScheduleEditor(QDialog):
    """Create or edit a schedule; the next five fire times and every problem update as you type.

    A message about a field shows once that field was edited (or Save was pressed, or an existing
    schedule is edited) and goes away as soon as the field is fine; Save is off while one shows.
    """

    saved = Signal(object)

    def __init__(self, scheduler: Scheduler, schedule: Schedule | None = None, parent: QWidget | None = None, *,
                 base: RunSpec | None = None, broker: str | None = None) -> None:
        """`base`: the spec a new schedule starts from (the launch panel's: a function, env, where);
        an edited schedule keeps every field of its own spec the form does not show."""
        super().__init__(parent)
        self.setObjectName("scheduleEditor")
        self.base = schedule.spec if schedule is not None else base
        self.setWindowTitle("Edit schedule" if schedule else "New schedule")
        self.scheduler = scheduler
        self.schedule = schedule
        self.name = QLineEdit()
        self.name.setObjectName("scheduleName")
        self.target = QLineEdit()
        self.target.setObjectName("scheduleTarget")
        self.target.setPlaceholderText("script.py or a command")
        self.args = QLineEdit()
        self.args.setObjectName("scheduleArgs")
        self.where = WhereChoice()
        self.where.setObjectName("scheduleWhere")
        self.where.set_broker(broker)
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
        self.error.setWordWrap(True)
        self.error.hide()
        self._touched: set[str] = set()  # fields whose problems are shown ("all" after a save attempt)
        self._save_error = ""  # what the scheduler refused on the last save; cleared by any edit
        self._taken = {s.name for s in scheduler.all() if schedule is None or s.id != schedule.id}

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
        form.addRow("JSON arguments" if self.is_function() else "Arguments", self.args)
        form.addRow("Where", self.where)
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
            sig.connect(lambda *_: self._edited("trigger"))
        self.name.textChanged.connect(lambda *_: self._edited("name"))
        self.target.textChanged.connect(lambda *_: self._edited("target"))
        for sig in (self.args.textChanged, self.overlap.currentIndexChanged, self.catchup.currentIndexChanged,
                    self.jitter.valueChanged, self.retries.valueChanged):
            sig.connect(lambda *_: self._edited("other"))
        if self.is_function():
            self.target.setPlaceholderText("package.module:function or file.py:function")
            self.args.setPlaceholderText('JSON: [1, "a"] or {"width": 640}')
        if self.base is not None:
            self.target.setText(self.base.target)
            self.args.setText(self._args_text(self.base))
            self.where.set_where(self.base.where)
            self.name.setText(self.base.display_name if schedule is None else "")
        self.args.textChanged.connect(lambda *_: self._edited("args"))
        self.where.changed.connect(lambda *_: self._edited("where"))
        if schedule is not None:
            self._load(schedule)
            self._touched.add("all")
        self._save_error = ""
        self._validate()

    def is_function(self) -> bool:
        return self.base is not None and self.base.kind is TargetKind.FUNCTION

    @staticmethod
    def _args_text(spec: RunSpec) -> str:
        if spec.kind is TargetKind.FUNCTION:
            return arguments_text(spec.payload)
        return spec.args if isinstance(spec.args, str) else shlex.join(spec.args)

    def spec(self, target: str) -> RunSpec:
        """What the schedule runs: the form's fields over the base spec (nothing of it is lost)."""
        name = self.name.text().strip() or None
        if self.base is None:
            return RunSpec(target, self.args.text(), kind=TargetKind.AUTO, name=name, where=self.where.where())
        if self.base.kind is TargetKind.FUNCTION:
            payload = self.base.payload
            if self.args.text() != self._args_text(self.base):
                payload = encode_call(*parse_json_arguments(self.args.text()))
            return self.base.with_changes(target=target, args=(), payload=payload, name=name, where=self.where.where())
        return self.base.with_changes(target=target, args=self.args.text(), name=name, where=self.where.where())

    def _load(self, s: Schedule) -> None:
        self.name.setText(s.name)
        self.target.setText(s.spec.target)
        self.args.setText(self._args_text(s.spec))
        self.where.set_where(s.spec.where)
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

    def _edited(self, field: str) -> None:
        self._touched.add(field)
        self._save_error = ""  # the scheduler's last word was about the fields as they were
        self._validate()

    def problems(self) -> dict[str, str]:
        """Every field that is not right yet, and why (whether shown yet or not)."""
        out: dict[str, str] = {}
        name = self.name.text().strip()
        if not name:
            out["name"] = "a schedule needs a name"
        elif name in self._taken:
            out["name"] = f"there is already a schedule named {name!r}"
        if not self.target.text().strip():
            out["target"] = "say what to run: a script or a command"
        if self.is_function() and self.base is not None and self.args.text() != self._args_text(self.base):
            try:
                parse_json_arguments(self.args.text())
            except ValueError as exc:
                out["args"] = str(exc)
        where = self.where.problem()
        if where:
            out["where"] = where
        try:
            trig = self.trigger()
        except (TriggerError, ValueError) as exc:
            out["trigger"] = str(exc)
        else:
            if not next_fires(trig, 1):
                out["trigger"] = "that time has passed: the schedule would never fire"
        return out

    def _shown(self, problems: dict[str, str]) -> list[str]:
        return [text for field, text in problems.items()
                if field == "trigger" or field in self._touched or "all" in self._touched]

    def _validate(self, *_: object) -> bool:
        problems = self.problems()
        try:
            trig = self.trigger()
        except (TriggerError, ValueError) as exc:
            self.preview.setText(f"<span style='color:#cd3131'>⚠ {exc}</span>")
        else:
            fires = next_fires(trig, 5)
            listing = "<br>".join(local_text(f, trig.timezone) for f in fires) or "never again"
            self.preview.setText(f"<b>{trig.describe()}</b><br>{listing}")
        shown = self._shown(problems) + ([self._save_error] if self._save_error else [])
        self.error.setText("\n".join(f"⚠ {text}" for text in shown))
        self.error.setVisible(bool(shown))
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(not shown)
        return not problems and not self._save_error

    def _save(self) -> None:
        self._touched.add("all")
        if not self._validate():
            return
        target = self.target.text().strip()
        spec = self.spec(target)
        options: dict[str, Any] = {"max_retries": self.retries.value()} if self.retries.value() else {}
        try:
            if self.schedule is None:
                s = self.scheduler.add(self.name.text(), spec, self.trigger(), overlap=self.overlap.currentText(),
                                       catchup=self.catchup.currentText(), jitter=self.jitter.value(), **options)
            else:
                s = self.scheduler.update(self.schedule.id, name=self.name.text().strip(), spec=spec, trigger=self.trigger(),
                                          overlap=self.overlap.currentText(), catchup=self.catchup.currentText(),
                                          jitter=self.jitter.value(), **options)
        except (ScheduleError, TriggerError, ValueError, RegistryError) as exc:  # RegistryError: locked, full
            self._save_error = str(exc)
            self._validate()
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


class _BusOf:
    """The scheduler's event bus, as the Bridge reads its owner."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus


class SchedulerView(QWidget):
    """Schedules on top, the selected schedule's runs (fired, skipped, missed) below.

    `bridge`: the window's Bridge (its `runChanged`, `externalRunChanged` and `scheduleChanged`
    keep the tab current). Without one the view makes its own over the scheduler's bus.
    `message` carries each sentence the tab shows in its banner ("nightly is still running (run
    #12); overlap policy 'forbid' skipped this fire"), for the window's status bar.
    """

    message = Signal(str)

    def __init__(self, scheduler: Scheduler, registry: RunRegistry, parent: QWidget | None = None, *,
                 bridge: Bridge | None = None) -> None:
        super().__init__(parent)
        self.scheduler = scheduler
        self.model = SchedulesModel(scheduler, self)
        self.broker: str | None = None  # the window's (the editor's Where choice needs it)
        self.model.failed.connect(lambda text: self.show_message(text, warning=True))
        self.table = QTableView()
        self.table.setObjectName("schedulesTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        head = self.table.horizontalHeader()
        head.resizeSection(0, 170)
        head.resizeSection(1, 170)
        head.resizeSection(2, 250)
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # names and outcomes get the room,
        head.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)  # not "When" or "Next fire"
        head.setSectionResizeMode(4, QHeaderView.ResizeMode.ResizeToContents)
        self.table.doubleClicked.connect(lambda _i: self.edit())
        self.history = ScheduleHistoryModel(registry, self)
        self.history.schedule_id = -1
        self.history.refresh()
        self.history_table = QTableView()
        self.history_table.setObjectName("scheduleHistory")
        self.history_table.setModel(self.history)
        self.history_table.verticalHeader().hide()
        self.history_table.setWordWrap(False)
        self.history_table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        hist = self.history_table.horizontalHeader()
        for col, width in HISTORY_WIDTHS.items():  # the History tab's columns, the Name column stretching
            hist.resizeSection(col, width)
        hist.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().currentRowChanged.connect(self._selected)
        bar = QHBoxLayout()
        self.pause_button = QPushButton("Pause all schedules")
        self.pause_button.setObjectName("pauseSchedulesButton")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._pause)
        self._needs_selection: list[QPushButton] = []
        for text, name, slot in (("New…", "newScheduleButton", self.new), ("Edit…", "editScheduleButton", self.edit),
                                 ("Run now", "runNowButton", self.run_now), ("Export…", "exportScheduleButton", self.export),
                                 ("Delete", "deleteScheduleButton", self.delete)):
            b = QPushButton(text)
            b.setObjectName(name)
            b.clicked.connect(slot)
            bar.addWidget(b)
            if name != "newScheduleButton":
                self._needs_selection.append(b)
        bar.addStretch(1)
        bar.addWidget(self.pause_button)
        # the banner: what the last action did, in words (a skipped "Run now" says why)
        self.banner = QWidget()
        self.banner.setObjectName("schedulerBanner")
        banner_lay = QHBoxLayout(self.banner)
        banner_lay.setContentsMargins(8, 4, 4, 4)
        self.banner_text = QLabel()
        self.banner_text.setObjectName("schedulerMessage")
        self.banner_text.setWordWrap(True)
        self.banner_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setObjectName("schedulerMessageClose")
        close.setText("×")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.clear_message)
        banner_lay.addWidget(self.banner_text, 1)
        banner_lay.addWidget(close)
        self.banner.hide()
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        box = QWidget()
        bl = QVBoxLayout(box)
        bl.setContentsMargins(0, 0, 0, 0)
        self.history_label = QLabel("Select a schedule to see its runs, skips and misses.")
        self.history_label.setObjectName("scheduleHistoryLabel")
        bl.addWidget(self.history_label)
        bl.addWidget(self.history_table)
        split.addWidget(box)
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(self.banner)
        lay.addWidget(split, 1)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.model.tick)  # countdowns only; data comes from events
        self._timer.start(1000)
        self.editor: ScheduleEditor | None = None
        self.last_fire: FireResult | None = None
        self._own_bridge: Bridge | None = None
        if bridge is None and isinstance(scheduler.bus, EventBus):
            bridge = self._own_bridge = Bridge(_BusOf(scheduler.bus))
            self.destroyed.connect(self._own_bridge.close)
        self.bridge = bridge
        if bridge is not None:
            bridge.runChanged.connect(self.on_run_changed)
            bridge.externalRunChanged.connect(self.on_run_changed)
            bridge.scheduleChanged.connect(self.on_schedule_changed)
        self._update_buttons()

    # ------------------------------------------------------------------ selection
    def selected(self) -> Schedule | None:
        index = self.table.currentIndex()
        return self.model.schedule_at(index.row()) if index.isValid() else None

    def select(self, schedule_id: int) -> None:
        row = self.model.row_of(schedule_id)
        if row is not None:
            self.table.selectRow(row)

    def _selected(self, current: QModelIndex, _prev: QModelIndex) -> None:
        s = self.model.schedule_at(current.row()) if current.isValid() else None
        self.history.schedule_id = s.id if s else -1
        self.history.refresh()
        self._update_label()
        self._update_buttons()

    def _update_label(self) -> None:
        s = self.selected()
        if s is None:
            self.history_label.setText("Select a schedule to see its runs, skips and misses.")
            return
        self.history_label.setText(f"Runs of <b>{s.name}</b>: {plural(self.history.total, 'run')}, newest first")

    def _update_buttons(self) -> None:
        chosen = self.selected() is not None
        for b in self._needs_selection:
            b.setEnabled(chosen)

    # ------------------------------------------------------------------ from the core, in place
    def on_run_changed(self, run: Run) -> None:
        """A run snapshot (this process's or another's): the schedule's last outcome and history follow it."""
        if run.schedule_id is None:
            return
        if self.model.row_of(run.schedule_id) is None:
            self._follow_unknown(run.schedule_id)  # added by another process: show it
        self.model.note_run(run)
        if run.schedule_id == self.history.schedule_id:
            self.history.upsert(run)
            self._update_label()

    def _follow_unknown(self, schedule_id: int) -> None:
        try:
            s = self.scheduler.get(schedule_id)
        except ScheduleError:
            return  # deleted since: its runs stay in History
        self._keeping_selection(lambda: self.model.set_schedule(s))

    def on_schedule_changed(self, ev: ScheduleChanged) -> None:
        """One schedule was added, edited, fired, enabled/disabled or removed (here or elsewhere)."""
        if ev.schedule is None:
            removed = ev.schedule_id == self.history.schedule_id
            self._keeping_selection(lambda: self.model.remove_schedule(ev.schedule_id))
            if removed and self.selected() is None:
                self._selected(QModelIndex(), QModelIndex())
        else:
            s = ev.schedule
            self._keeping_selection(lambda: self.model.set_schedule(s))
            if self.selected() is None:
                self.select(s.id)  # nothing was shown: show this schedule's runs
            if s.id == self.history.schedule_id:
                self._update_label()

    def _keeping_selection(self, change: Any) -> None:
        current = self.selected()
        change()
        if current is not None and (self.selected() is None or self.selected().id != current.id):  # type: ignore[union-attr]
            self.select(current.id)

    def refresh(self) -> None:
        """Read everything again (schedules, last outcomes, the selected history), keeping the selection."""
        current = self.selected()
        self.model.refresh()
        if current is None and self.model.rowCount():
            current = self.model.schedule_at(0)  # something to look at: the first schedule's runs
        if current is not None:
            self.select(current.id)
        self.history.refresh()
        self._update_label()
        self._update_buttons()

    # ------------------------------------------------------------------ export
    EXPORT_FILTERS = {"Kubernetes CronJob (*.yaml)": ("k8s", ".yaml"), "systemd service + timer (*.service)":
                      ("systemd", ".service"), "Windows Task Scheduler (*.xml)": ("windows", ".xml")}

    def export(self) -> None:
        """Export the selected schedule to the scheduler people deploy on (the CLI's `schedule export`)."""
        s = self.selected()
        if s is None:
            return
        dialog = QFileDialog(self, f"Export schedule {s.name!r}", str(Path.home() / unit_name(s.name)),
                             ";;".join(self.EXPORT_FILTERS))
        dialog.setObjectName("exportScheduleDialog")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.fileSelected.connect(lambda path: self.export_to(s.id, self.EXPORT_FILTERS[dialog.selectedNameFilter()][0],
                                                                path))
        dialog.open()

    def export_to(self, schedule_id: int, fmt: str, path: str) -> list[Path]:
        """Write the export; the banner says what was written, what was approximated, or why not."""
        try:
            s = self.scheduler.get(schedule_id)
        except ScheduleError as exc:
            self.show_message(str(exc), warning=True)
            return []
        try:
            result = export_schedule(s, fmt)
        except ExportError as exc:
            self.show_message(f"{FORMAT_NAMES[fmt]} cannot express {s.name!r}: {exc}", warning=True)
            return []
        target = Path(path)
        if not target.suffix and fmt != "systemd":
            target = target.with_suffix({"k8s": ".yaml", "windows": ".xml"}[fmt])
        try:
            written = write_export(result, target)
        except OSError as exc:
            self.show_message(f"cannot write {target}: {exc.strerror or exc}", warning=True)
            return []
        note = "; ".join(result.warnings)
        self.show_message(f"exported {s.name!r} as {FORMAT_NAMES[fmt]}: {', '.join(str(p) for p in written)}"
                          + (f" — note: {note}" if note else ""), warning=bool(note))
        return written

    # ------------------------------------------------------------------ the banner
    def show_message(self, text: str, warning: bool = False) -> None:
        self.banner_text.setText(text)
        self.banner.setProperty("warning", warning)
        self.banner.setStyleSheet("#schedulerBanner { background: %s; border-radius: 4px; }"
                                  % ("rgba(181, 137, 0, 0.25)" if warning else "rgba(36, 114, 200, 0.15)"))
        self.banner.show()
        self.message.emit(text)

    def clear_message(self) -> None:
        self.banner_text.clear()
        self.banner.hide()

    # ------------------------------------------------------------------ actions
    def new(self, base: RunSpec | None = None) -> ScheduleEditor:
        """A new schedule (from `base`, the launch panel's spec, when given)."""
        return self._open_editor(None, base)

    def edit(self) -> ScheduleEditor | None:
        s = self.selected()
        return self._open_editor(s) if s is not None else None

    def _open_editor(self, s: Schedule | None, base: RunSpec | None = None) -> ScheduleEditor:
        self.editor = ScheduleEditor(self.scheduler, s, self, base=base, broker=self.broker)
        self.editor.saved.connect(self._saved)
        self.editor.open()  # never exec() inside the asyncio loop
        return self.editor

    def _saved(self, s: Schedule) -> None:
        self.model.set_schedule(s)  # at once (its ScheduleChanged says the same)
        self.select(s.id)

    def run_now(self) -> int | None:
        """Fire the selected schedule now; the banner (and `message`) says what happened. The run id, or None."""
        s = self.selected()
        if s is None:
            return None
        try:
            result = self.scheduler.fire_now(s.id)
        except (ScheduleError, RegistryError) as exc:  # RegistryError: a registry locked by another process
            self.show_message(str(exc), warning=True)
            return None
        self.last_fire = result
        self.show_message(result.message, warning=result.action in (FireAction.SKIPPED, FireAction.QUEUED))
        return result.run_id

    def delete(self) -> None:
        s = self.selected()
        if s is not None:
            try:
                self.scheduler.remove(s.id)
            except (ScheduleError, RegistryError) as exc:  # RegistryError: a registry locked by another process
                self.show_message(f"{s.name} was not deleted: {exc}", warning=True)
                return
            self.model.remove_schedule(s.id)
            self._selected(self.table.currentIndex(), QModelIndex())

    def _pause(self, on: bool) -> None:
        try:
            self._pause_now(on)
        except (ScheduleError, RegistryError) as exc:
            self.show_message(f"schedules were not {'paused' if on else 'resumed'}: {exc}", warning=True)

    def _pause_now(self, on: bool) -> None:
        if on:
            self.scheduler.pause_all()
            self.pause_button.setText("Resume schedules")
        else:
            self.scheduler.resume_all()
            self.pause_button.setText("Pause all schedules")
