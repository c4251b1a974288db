"""Where a run goes: this machine, the warm pool, or a remote queue (a Celery worker's).

The remote choice needs a broker: without one it is disabled and its tooltip says how to set
one. The queue list comes from the broker (the window's `BrokerPoller`), and a queue can also
be typed (a worker for it may start later).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QWidget

from prismq_desktop.core.models import REMOTE_PREFIX, where_problem
from prismq_desktop.core.services.workers import QueueInfo
from prismq_desktop.core.wording import plural

PLACES = ["This machine", "Warm pool", "Remote queue"]
NO_BROKER = "Remote queues need a broker: set its URL in Settings (Ctrl+,) → Broker URL"


def where_text(where: str | None, host: str | None = None) -> str:
    """A run's place in words for a table cell: "", "pool", "gpu → box1"."""
    if where is None or where == "local":
        return ""
    if where.startswith(REMOTE_PREFIX):
        queue = where[len(REMOTE_PREFIX):]
        return f"{queue} → {host}" if host else f"{queue} (remote)"
    return where


class WhereChoice(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.place = QComboBox()
        self.place.setObjectName("whereCombo")
        self.place.addItems(PLACES)
        self.place.setToolTip("This machine: a new process here. Warm pool: a pre-started worker here "
                              "(faster start). Remote queue: a Celery worker listening to that queue.")
        self.queue = QComboBox()
        self.queue.setObjectName("queueCombo")
        self.queue.setEditable(True)
        self.queue.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.queue.setMinimumContentsLength(8)
        self.queue.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        edit = self.queue.lineEdit()
        if edit is not None:
            edit.setPlaceholderText("queue")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.place, 1)
        lay.addWidget(self.queue, 1)
        self.broker: str | None = None
        self.queues: dict[str, QueueInfo] = {}
        self.place.currentIndexChanged.connect(self._place_changed)
        self.queue.currentTextChanged.connect(lambda _t: self.changed.emit())
        self.set_broker(None)

    # -- state from the window
    def set_broker(self, url: str | None) -> None:
        """With no broker the remote choice is disabled, saying why (a saved remote choice stays shown)."""
        self.broker = url
        model = self.place.model()
        if isinstance(model, QStandardItemModel):
            item = model.item(2)
            if item is not None:
                item.setEnabled(url is not None)
                item.setToolTip("" if url else NO_BROKER)
        self.place.setItemData(2, None if url else NO_BROKER, Qt.ItemDataRole.ToolTipRole)
        self._place_changed()

    def set_queues(self, queues: Sequence[QueueInfo]) -> None:
        """The queues the broker knows, with their live workers and depth (the typed text is kept)."""
        self.queues = {q.name: q for q in queues}
        typed = self.queue.currentText()
        self.queue.blockSignals(True)
        self.queue.clear()
        for q in queues:
            self.queue.addItem(q.name)
            self.queue.setItemData(self.queue.count() - 1, self.queue_words(q), Qt.ItemDataRole.ToolTipRole)
        self.queue.setCurrentText(typed or (queues[0].name if queues else ""))
        self.queue.blockSignals(False)
        self._update_tooltip()
        if not typed and queues:
            self.changed.emit()

    @staticmethod
    def queue_words(q: QueueInfo) -> str:
        return f"{plural(q.workers, 'live worker')}, {q.depth} waiting"

    # -- the value
    def where(self) -> str | None:
        index = self.place.currentIndex()
        if index == 1:
            return "pool"
        if index == 2:
            return REMOTE_PREFIX + self.queue.currentText().strip()
        return None

    def set_where(self, where: str | None) -> None:
        if where is not None and where.startswith(REMOTE_PREFIX):
            self.queue.setCurrentText(where[len(REMOTE_PREFIX):])
            self.place.setCurrentIndex(2)  # shown even without a broker: the preview says it cannot go
        else:
            self.place.setCurrentIndex(1 if where == "pool" else 0)
        self._place_changed()

    def problem(self) -> str | None:
        """Why the chosen place cannot take a run now (None when it can)."""
        where = self.where()
        if where is None or not where.startswith(REMOTE_PREFIX):
            return None
        if self.broker is None:
            return NO_BROKER
        if not where[len(REMOTE_PREFIX):]:
            return "name the remote queue to send it to"
        return where_problem(where)

    def _place_changed(self, *_: object) -> None:
        remote = self.place.currentIndex() == 2
        self.queue.setVisible(remote)
        self.queue.setEnabled(remote and self.broker is not None)
        self._update_tooltip()
        self.changed.emit()

    def _update_tooltip(self) -> None:
        if self.broker is None:
            self.queue.setToolTip(NO_BROKER)
            return
        q = self.queues.get(self.queue.currentText().strip())
        self.queue.setToolTip(self.queue_words(q) if q else "no worker has been seen on this queue yet")
