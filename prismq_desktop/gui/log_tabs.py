"""The log pane tabs under the runs table: one closable LogPane per followed run."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QSettings, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QTabWidget, QWidget

from prismq_desktop.core.models import Run
from prismq_desktop.core.process.capture import OutputChunk
from prismq_desktop.core.process.logfile import Stream, read_log
from prismq_desktop.gui.logview import LogPane
from prismq_desktop.gui.ports import RunReader
from prismq_desktop.gui.settings_dialog import value as setting

MAX_PANES = 24


class LogTabs(QTabWidget):
    """At most MAX_PANES panes; when there are more, the oldest finished run's pane is closed.

    The pane in front names the run every run action (cancel, pause, rerun...) acts on.
    """

    currentRunChanged = Signal(int)  # the run whose pane is now in front
    editorMissing = Signal(str)  # a traceback link found no editor: what to set

    def __init__(self, engine: RunReader, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.settings = settings
        self.panes: dict[int, LogPane] = {}
        self.setObjectName("logTabs")
        self.setTabsClosable(True)
        self.setDocumentMode(True)
        self.tabCloseRequested.connect(self.close_pane)
        # Not `currentChanged`: QTabWidget also emits it from its own destructor, and a slot that
        # then asks the half-destroyed widget for its current page crashes the app. A person
        # brings a pane to the front by clicking its tab; the code says so itself (`_front_changed`).
        self.tabBar().tabBarClicked.connect(lambda index: self._front_changed(index))

    def current_run_id(self) -> int | None:
        pane = self.currentWidget()
        return pane.run_id if isinstance(pane, LogPane) else None

    def _front_changed(self, index: int) -> None:
        pane = self.widget(index) if index >= 0 else self.currentWidget()
        if isinstance(pane, LogPane):
            self.currentRunChanged.emit(pane.run_id)

    def _bring_to_front(self, pane: LogPane) -> None:
        self.setCurrentWidget(pane)
        self._front_changed(self.indexOf(pane))

    def ensure_pane(self, run_id: int, focus: bool = False) -> LogPane:
        pane = self.panes.get(run_id)
        if pane is None:
            run = self.engine.get(run_id)
            limit = int(setting(self.settings, "view/pane_line_limit")) or 5000
            pane = LogPane(run_id, run.log_path if run else None, line_limit=limit,
                           encoding=run.spec.encoding if run else "utf-8", settings=self.settings)
            pane.editorMissing.connect(self.editorMissing)
            pane.openFullLog.connect(self.open_full_log)
            self.panes[run_id] = pane
            title = f"#{run_id} {run.name if run else ''}"
            self.addTab(pane, title)
            self._trim_panes()
        if focus:
            self._bring_to_front(pane)
        return pane

    def _trim_panes(self) -> None:
        while self.count() > MAX_PANES:
            for i in range(self.count()):
                pane = self.widget(i)
                if isinstance(pane, LogPane):
                    run = self.engine.get(pane.run_id)
                    if run is None or not run.is_active:
                        self.close_pane(i)
                        break
            else:
                return

    def close_pane(self, index: int) -> None:
        pane = self.widget(index)
        self.removeTab(index)
        if isinstance(pane, LogPane):
            self.panes.pop(pane.run_id, None)
            pane.deleteLater()
        self._front_changed(-1)  # another pane (or none) is in front now

    def show_pane(self, run_id: int) -> bool:
        """Bring the run's pane to the front, if it has one."""
        pane = self.panes.get(run_id)
        if pane is not None:
            self._bring_to_front(pane)
        return pane is not None

    def open_run(self, run: Run) -> None:
        """The run's pane in front; a new pane of a finished run is filled from its log file."""
        if self.show_pane(run.id):
            return
        pane = self.ensure_pane(run.id, focus=True)
        if run.log_path and not run.is_active:  # no file: the run wrote nothing (only its end is shown)
            pane.load_from_log(run.log_path)
            pane.show_end(run)

    def feed(self, run_id: int, chunks: Iterable[OutputChunk], dropped: int) -> None:
        """Output for a run, into its pane (a new one if it has none)."""
        pane = self.panes.get(run_id)
        if pane is None:
            pane = self.ensure_pane(run_id)
        pane.feed_chunks(chunks, dropped)

    def finish(self, run: Run) -> None:
        """The run ended: its pane says how, in words, as its last line."""
        pane = self.panes.get(run.id)
        if pane is not None:
            pane.show_end(run)

    def open_full_log(self, run_id: int) -> None:
        """Write the run's output as plain text next to its log and open it in the desktop's viewer."""
        run = self.engine.get(run_id)
        if run is None or not run.log_path or (run.is_active and not os.path.exists(run.log_path)):
            return
        out = Path(run.log_path).with_suffix(".txt")
        with open(out, "wb") as fh, contextlib.suppress(FileNotFoundError):  # a finished run with no file wrote nothing
            for record, _ in read_log(run.log_path):
                if record.stream is not Stream.META:
                    fh.write(record.data)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(out)))
