"""A live log pane: bounded, batched, coloured, following, searchable.

Output arrives as core OutputBatch chunks; the pane keeps them as blocks and draws at most
every ~50 ms. When far behind (a firehose) it does not append line by line into a full
QPlainTextEdit (the slow path: trimming the top costs more than the insert) - it replaces
the document with the newest tail and says how many earlier lines are not shown; the full
output is always in the run's log file.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFont,
    QKeySequence,
    QMouseEvent,
    QShortcut,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from prismq_desktop.core.process.capture import LineAssembler, OutputChunk
from prismq_desktop.core.process.logfile import Stream, read_log
from prismq_desktop.gui.ansi import PLAIN, Style, split_styled, strip_ansi

FLUSH_MS = 50
_TRACEBACK = re.compile(r'File "([^"]+)", line (\d+)')
STDERR_COLOR = "#d14b4b"


class _Text(QPlainTextEdit):
    """The text area; a click on a traceback location opens it in the user's editor."""

    linkActivated = Signal(str)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        cursor = self.cursorForPosition(event.position().toPoint())
        fmt = cursor.charFormat()
        if event.button() == Qt.MouseButton.LeftButton and fmt.isAnchor() and not self.textCursor().hasSelection():
            self.linkActivated.emit(fmt.anchorHref())
        super().mouseReleaseEvent(event)


def open_in_editor(path: str, line: int) -> None:
    """Open a file at a line in the user's editor: $VISUAL/$EDITOR, VS Code, else the desktop default."""
    for var in ("VISUAL", "EDITOR"):
        editor = os.environ.get(var)
        if editor and shutil.which(editor.split()[0]):
            subprocess.Popen([*editor.split(), f"+{line}", path], start_new_session=True)  # noqa: S603
            return
    code = shutil.which("code")
    if code:
        subprocess.Popen([code, "-g", f"{path}:{line}"], start_new_session=True)  # noqa: S603
        return
    QDesktopServices.openUrl(QUrl.fromLocalFile(path))


class LogPane(QWidget):
    """One run's live output."""

    openFullLog = Signal(int)

    def __init__(self, run_id: int, log_path: str | None = None, *, line_limit: int = 5000,
                 encoding: str = "utf-8", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_id = run_id
        self.log_path = log_path
        self.line_limit = max(100, line_limit)
        self.rebuild_lines = min(self.line_limit, 400)  # what a firehose shows: the newest screenfuls
        self._asm = {Stream.STDOUT: LineAssembler(encoding), Stream.STDERR: LineAssembler(encoding)}
        self._pending: collections.deque[tuple[Stream, str, int, float, bool]] = collections.deque()
        self._pending_count = 0
        self._ring: collections.deque[tuple[Stream, str, float]] = collections.deque(maxlen=self.line_limit)
        self._style = {Stream.STDOUT: PLAIN, Stream.STDERR: PLAIN}
        self._partial_shown = 0  # trailing blocks that show unfinished lines
        self._formats: dict[tuple[Stream, Style, str | None], QTextCharFormat] = {}
        self.hidden_lines = 0
        self.follow = True
        self.show_timestamps = False
        self.flushes = 0

        self.text = _Text(self)
        self.text.setObjectName("logView")
        self.text.setAccessibleName(f"Output of run {run_id}")
        self.text.setReadOnly(True)
        self.text.setUndoRedoEnabled(False)
        self.text.setMaximumBlockCount(self.line_limit + 50)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        font = QFont("Monospace")
        font.setStyleHint(QFont.StyleHint.TypeWriter)
        self.text.setFont(font)
        self.text.linkActivated.connect(self._open_link)
        self.text.verticalScrollBar().valueChanged.connect(self._scrolled)

        self.marker = QPushButton(self)
        self.marker.setObjectName("hiddenLinesMarker")
        self.marker.setFlat(True)
        self.marker.setStyleSheet("text-align: left; color: palette(link);")
        self.marker.clicked.connect(lambda: self.openFullLog.emit(self.run_id))
        self.marker.hide()

        self.follow_label = QLabel("following paused — scroll to the bottom to resume", self)
        self.follow_label.setObjectName("followPaused")
        self.follow_label.hide()

        self.wrap_box = QCheckBox("Wrap", self)
        self.wrap_box.setObjectName("wrapToggle")
        self.wrap_box.toggled.connect(self.set_wrap)
        self.time_box = QCheckBox("Timestamps", self)
        self.time_box.setObjectName("timestampToggle")
        self.time_box.toggled.connect(self.set_timestamps)
        self.find_button = QToolButton(self)
        self.find_button.setText("Find")
        self.find_button.setAccessibleName("Find in output")
        self.find_button.clicked.connect(self.show_find)

        # find bar
        self.find_bar = QWidget(self)
        self.find_edit = QLineEdit(self.find_bar)
        self.find_edit.setObjectName("findEdit")
        self.find_edit.setPlaceholderText("Find in output")
        self.find_edit.textChanged.connect(self._count_matches)
        self.find_edit.returnPressed.connect(self.find_next)
        self.find_count = QLabel("", self.find_bar)
        self.find_count.setObjectName("findCount")
        prev_btn, next_btn, close_btn = QToolButton(), QToolButton(), QToolButton()
        for btn, text, name, slot in ((prev_btn, "↑", "Previous match", self.find_previous),
                                      (next_btn, "↓", "Next match", self.find_next),
                                      (close_btn, "✕", "Close find", self.hide_find)):
            btn.setText(text)
            btn.setAccessibleName(name)
            btn.setToolTip(name)
            btn.clicked.connect(slot)
        fl = QHBoxLayout(self.find_bar)
        fl.setContentsMargins(0, 0, 0, 0)
        for w in (self.find_edit, self.find_count, prev_btn, next_btn, close_btn):
            fl.addWidget(w)
        self.find_bar.hide()

        top = QHBoxLayout()
        top.addWidget(self.marker, 1)
        top.addWidget(self.follow_label)
        top.addStretch(0)
        top.addWidget(self.wrap_box)
        top.addWidget(self.time_box)
        top.addWidget(self.find_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.find_bar)
        lay.addWidget(self.text, 1)

        QShortcut(QKeySequence.StandardKey.Find, self, self.show_find)
        QShortcut(QKeySequence.StandardKey.FindNext, self, self.find_next)
        QShortcut(QKeySequence.StandardKey.FindPrevious, self, self.find_previous)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)

    # ------------------------------------------------------------------ input
    def feed_chunks(self, chunks: Iterable[OutputChunk], dropped_bytes: int = 0) -> None:
        """Take an OutputBatch's chunks; drawing happens at most every FLUSH_MS."""
        for chunk in chunks:
            if chunk.stream not in self._asm:
                continue
            got = self._asm[chunk.stream].feed_block(chunk.text)
            if got is not None:
                block, count, first_clipped = got
                self._pending.append((chunk.stream, block, count, chunk.time, first_clipped))
                self._pending_count += count
                # keep only what could still be drawn; the rest is counted as hidden
                while self._pending_count - self._pending[0][2] >= self.line_limit:
                    self.hidden_lines += self._pending[0][2]
                    self._pending_count -= self._pending.popleft()[2]
        if dropped_bytes:
            self.hidden_lines += max(1, dropped_bytes // 80)
        if not self._timer.isActive():
            self._timer.start(FLUSH_MS)

    def finish(self) -> None:
        """The run ended: show what the decoders held back, draw now."""
        for stream, asm in self._asm.items():
            lines = asm.finish()
            for line in lines:
                self._pending.append((stream, line, 1, time.time(), True))
                self._pending_count += 1
        self.flush()

    def load_from_log(self, path: str) -> None:
        """Show a finished run's output from its log file (history → open)."""
        for record, _ in read_log(path):
            if record.stream is Stream.META:
                continue
            asm = self._asm[record.stream]
            got = asm.feed_block(asm.decode(record.data))
            if got is not None:
                self._pending.append((record.stream, got[0], got[1], record.time, got[2]))
                self._pending_count += got[1]
                while self._pending_count - self._pending[0][2] >= self.line_limit:
                    self.hidden_lines += self._pending[0][2]
                    self._pending_count -= self._pending.popleft()[2]
        self.finish()

    # ------------------------------------------------------------------ drawing
    def _take_new_lines(self) -> list[tuple[Stream, str, float]]:
        items: list[tuple[Stream, str, float]] = []
        for stream, block, _count, when, first_clipped in self._pending:
            lines = self._asm[stream].clip_block(block, first_clipped)
            items.extend((stream, line, when) for line in lines)
        self._pending.clear()
        self._pending_count = 0
        if len(items) > self.line_limit:
            self.hidden_lines += len(items) - self.line_limit
            items = items[-self.line_limit :]
        return items

    def flush(self) -> None:
        self._timer.stop()
        new = self._take_new_lines()
        partials = [(s, a.current()) for s, a in self._asm.items() if a.partial or a.partial_dropped]
        if not new and not partials and not self._partial_shown:
            return
        self.flushes += 1
        self._ring.extend(new)
        bar = self.text.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 2
        doc_blocks = self.text.document().blockCount()
        if len(new) > self.rebuild_lines // 2 or doc_blocks + len(new) > self.line_limit:
            self._rebuild(partials)
        else:
            self._append(new, partials)
        self._update_marker()
        if self.follow and at_bottom:
            bar.setValue(bar.maximum())

    def _format(self, stream: Stream, style: Style, href: str | None = None) -> QTextCharFormat:
        key = (stream, style, href)
        fmt = self._formats.get(key)
        if fmt is None:
            fmt = QTextCharFormat()
            color = style.fg or (STDERR_COLOR if stream is Stream.STDERR else None)
            if color:
                fmt.setForeground(QColor(color))
            if style.bg:
                fmt.setBackground(QColor(style.bg))
            if style.bold:
                fmt.setFontWeight(QFont.Weight.Bold)
            if style.italic:
                fmt.setFontItalic(True)
            if style.underline or href:
                fmt.setFontUnderline(True)
            if href:
                fmt.setAnchor(True)
                fmt.setAnchorHref(href)
                fmt.setForeground(QColor("#3b8eea"))
            self._formats[key] = fmt
        return fmt

    def _prefix(self, when: float) -> str:
        return time.strftime("%H:%M:%S", time.localtime(when)) + f".{int(when % 1 * 1000):03d} " if self.show_timestamps else ""

    def _insert_line(self, cursor: QTextCursor, stream: Stream, line: str, when: float | None, first: bool) -> None:
        if not first:
            cursor.insertBlock()
        if when is not None and self.show_timestamps:
            cursor.insertText(self._prefix(when), self._format(Stream.STDOUT, Style(fg="#888888")))
        segments, self._style[stream] = split_styled(line, self._style[stream])
        for text, style in segments:
            match = _TRACEBACK.search(text) if 'File "' in text else None
            if match is not None:
                href = f"{match.group(1)}#{match.group(2)}"
                cursor.insertText(text[: match.start()], self._format(stream, style))
                cursor.insertText(match.group(0), self._format(stream, style, href))
                cursor.insertText(text[match.end() :], self._format(stream, style))
            else:
                cursor.insertText(text, self._format(stream, style))

    def _drop_partials(self, cursor: QTextCursor) -> None:
        """Remove the trailing blocks that show unfinished lines (they are redrawn after the new lines)."""
        if not self._partial_shown:
            return
        cursor.movePosition(QTextCursor.MoveOperation.End)
        for _ in range(self._partial_shown):
            cursor.movePosition(QTextCursor.MoveOperation.StartOfBlock, QTextCursor.MoveMode.KeepAnchor)
            if cursor.block().blockNumber() > 0:
                cursor.movePosition(QTextCursor.MoveOperation.PreviousCharacter, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            cursor.movePosition(QTextCursor.MoveOperation.End)
        self._partial_shown = 0

    def _append(self, new: list[tuple[Stream, str, float]], partials: list[tuple[Stream, str]]) -> None:
        doc = self.text.document()
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()
        self._drop_partials(cursor)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        empty = doc.isEmpty()
        for i, (stream, line, when) in enumerate(new):
            self._insert_line(cursor, stream, line, when, first=empty and i == 0)
        empty = empty and not new
        for i, (stream, line) in enumerate(partials):
            self._insert_line(cursor, stream, line, None, first=empty and i == 0)
        self._partial_shown = len(partials)
        cursor.endEditBlock()

    def _rebuild(self, partials: list[tuple[Stream, str]]) -> None:
        """Replace the document with the newest tail (the fast path when far behind)."""
        tail = list(self._ring)[-self.rebuild_lines :]
        shown_before = len(self._ring) - len(tail)
        if shown_before > 0:
            self.hidden_lines += 0  # lines still in the ring are re-shown when the flood stops
        doc = self.text.document()
        needs_format = any(s is Stream.STDERR or "\x1b" in line or 'File "' in line for s, line, _ in tail) or bool(
            partials) or self.show_timestamps
        if not needs_format:
            self.text.setPlainText("\n".join(line for _, line, _ in tail))
            self._partial_shown = 0
            self._trimmed = shown_before
            return
        doc.clear()
        self._partial_shown = 0
        self._append(tail, partials)
        self._trimmed = shown_before

    def _update_marker(self) -> None:
        hidden = self.hidden_lines + max(0, len(self._ring) - self.text.document().blockCount())
        if hidden > 0:
            self.marker.setText(f"⋯ {hidden:,} earlier lines not shown — open full log")
            self.marker.setToolTip(self.log_path or "")
            self.marker.show()
        else:
            self.marker.hide()

    # ------------------------------------------------------------------ follow, wrap, timestamps
    def _scrolled(self, value: int) -> None:
        bar = self.text.verticalScrollBar()
        self.follow = value >= bar.maximum() - 2
        self.follow_label.setVisible(not self.follow)

    def set_wrap(self, on: bool) -> None:
        mode = QPlainTextEdit.LineWrapMode.WidgetWidth if on else QPlainTextEdit.LineWrapMode.NoWrap
        self.text.setLineWrapMode(mode)

    def set_timestamps(self, on: bool) -> None:
        self.show_timestamps = on
        self.text.document().clear()
        self._partial_shown = 0
        self._style = {Stream.STDOUT: PLAIN, Stream.STDERR: PLAIN}
        partials = [(s, a.current()) for s, a in self._asm.items() if a.partial]
        self._append(list(self._ring)[-self.rebuild_lines :], partials)

    # ------------------------------------------------------------------ find
    def show_find(self) -> None:
        self.find_bar.show()
        self.find_edit.setFocus()
        self.find_edit.selectAll()

    def hide_find(self) -> None:
        self.find_bar.hide()
        self.text.setFocus()

    def _count_matches(self, needle: str) -> int:
        if not needle:
            self.find_count.setText("")
            return 0
        count = strip_ansi(self.text.toPlainText()).lower().count(needle.lower())
        self.find_count.setText(f"{count} match{'es' if count != 1 else ''}")
        return count

    def find_next(self) -> bool:
        return self._find(QTextDocument.FindFlag(0))

    def find_previous(self) -> bool:
        return self._find(QTextDocument.FindFlag.FindBackward)

    def _find(self, flags: QTextDocument.FindFlag) -> bool:
        needle = self.find_edit.text()
        if not needle:
            return False
        if self.text.find(needle, flags):
            return True
        cursor = self.text.textCursor()  # wrap around
        cursor.movePosition(QTextCursor.MoveOperation.End if flags & QTextDocument.FindFlag.FindBackward
                            else QTextCursor.MoveOperation.Start)
        self.text.setTextCursor(cursor)
        return self.text.find(needle, flags)

    # ------------------------------------------------------------------ links
    def _open_link(self, href: str) -> None:
        path, _, line = href.rpartition("#")
        if path and os.path.exists(path):
            open_in_editor(path, int(line or 1))

    def plain_text(self) -> str:
        return self.text.toPlainText()
