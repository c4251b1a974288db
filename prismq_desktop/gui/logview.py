"""A live log pane: bounded, batched, coloured, following, searchable.

Output arrives as core OutputBatch chunks; the pane keeps them as blocks and draws at most
every ~50 ms. When far behind (a firehose) it does not append line by line into a full
QPlainTextEdit (the slow path: trimming the top costs more than the insert) - it replaces
the document with the newest tail and says exactly how many earlier lines are not shown
(every line received minus the lines in the document); the full output is always in the
run's log file.

A batch that may carry a progress reading (a `%`, an `N/M` count or the PRISMQ:PROGRESS
marker) is drawn at once, so when the Progress column shows X the pane already shows the
output that said X (the engine publishes a batch before the Progress it produced). A
finished run ends with one dim line in words (`show_end`), as VS Code's terminal does.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QKeySequence,
    QMouseEvent,
    QPalette,
    QShortcut,
    QShowEvent,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from prismq_desktop.core.process import cmdline, interp
from prismq_desktop.core.process.capture import LineAssembler, OutputChunk
from prismq_desktop.core.process.logfile import Stream, read_log
from prismq_desktop.core.progress import PROTOCOL_PREFIX
from prismq_desktop.core.wording import plural
from prismq_desktop.gui.ansi import PLAIN, Style, legible, split_styled, strip_ansi
from prismq_desktop.gui.models import pane_end_text

if TYPE_CHECKING:
    from prismq_desktop.core.models import Run

FLUSH_MS = 50
_TRACEBACK = re.compile(r'File "([^"]+)", line (\d+)')
STDERR_COLOR = "#d14b4b"
LINK_COLOR = "#3b8eea"
TIME_COLOR = "#888888"
EDITOR_KEY = "editor/command"  # the same key as settings_dialog.EDITOR_KEY
NO_EDITOR_HELP = (
    "No editor found to open {where}.\n\n"
    "Set one in Settings → Editor command (e.g. code -g {{file}}:{{line}}), or set $VISUAL or "
    "$EDITOR, or put VS Code's `code` command on PATH."
)


class _Text(QPlainTextEdit):
    """The text area; a click on a traceback location opens it in the user's editor."""

    linkActivated = Signal(str)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        cursor = self.cursorForPosition(event.position().toPoint())
        fmt = cursor.charFormat()
        if event.button() == Qt.MouseButton.LeftButton and fmt.isAnchor() and not self.textCursor().hasSelection():
            self.linkActivated.emit(fmt.anchorHref())
        super().mouseReleaseEvent(event)


def _spawn(argv: list[str]) -> str | None:
    """Start an editor detached; None when it started, else why not.

    Windows: an editor that is a batch file (VS Code's `code.cmd`) runs through cmd.exe, which
    reads the whole line: it gets cmd.exe quoting (core/process/cmdline.windows_spawn), so a path
    from run output like `R&D\\x.py` or `100%\\y.py` is text, never a command.
    """
    args: str | list[str] = argv
    executable: str | None = None
    flags = 0
    if sys.platform == "win32":
        try:
            args, executable = cmdline.windows_spawn(argv, shutil.which(argv[0]) or argv[0])
        except cmdline.CmdQuoteError as exc:
            return str(exc)
        flags = interp.no_window_flags() if executable else 0
    try:
        subprocess.Popen(args, executable=executable, start_new_session=True, stdin=subprocess.DEVNULL,  # noqa: S603
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, creationflags=flags)
    except OSError as exc:
        return f"{argv[0]}: {exc.strerror or exc}"
    return None


def editor_argv(command: str, path: str, line: int) -> list[str] | None:
    """The argv of an editor command template (`code -g {file}:{line}`, `subl {file}:{line}`);
    the file is appended when the template does not name it. None if it cannot be parsed."""
    try:
        words = cmdline.split(command)  # Windows rules on Windows: C:\\Program Files\\... keeps its backslashes
    except ValueError:
        return None
    if not words:
        return None
    named = any("{file}" in w for w in words)
    argv = [w.replace("{file}", path).replace("{line}", str(line)) for w in words]
    return argv if named else [*argv, path]


def open_in_editor(path: str, line: int, command: str | None = None) -> str | None:
    """Open a file at a line: the editor-command setting, then $VISUAL/$EDITOR, then VS Code on PATH.

    Returns None when an editor was started, else a message saying what was tried and what
    to set (the caller shows it: a link must never fail silently).
    """
    tried: list[str] = []
    if command and command.strip():
        argv = editor_argv(command, path, line)
        if argv is None:
            tried.append(f"the editor command setting cannot be read: {command!r}")
        elif shutil.which(argv[0]) is None:
            tried.append(f"the editor command setting names {argv[0]!r}, which is not on PATH")
        else:
            problem = _spawn(argv)
            if problem is None:
                return None
            tried.append(problem)
    for var in ("VISUAL", "EDITOR"):
        editor = os.environ.get(var, "").strip()
        if not editor:
            continue
        words = editor.split()
        if shutil.which(words[0]) is None:
            tried.append(f"${var} is {editor!r}, which is not on PATH")
            continue
        problem = _spawn([*words, f"+{line}", path])
        if problem is None:
            return None
        tried.append(problem)
    code = shutil.which("code")
    if code:
        problem = _spawn([code, "-g", f"{path}:{line}"])
        if problem is None:
            return None
        tried.append(problem)
    else:
        tried.append("VS Code (code) is not on PATH")
    message = NO_EDITOR_HELP.format(where=f"{path}:{line}")
    return message + "\n\nTried: " + "; ".join(tried) + "."


class LogPane(QWidget):
    """One run's live output."""

    openFullLog = Signal(int)
    editorMissing = Signal(str)  # a traceback link found no editor: what to set (also shown in a box)

    def __init__(self, run_id: int, log_path: str | None = None, *, line_limit: int = 5000,
                 encoding: str = "utf-8", parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.run_id = run_id
        self.log_path = log_path
        self.settings = settings  # for the editor command; else the window's settings
        self.line_limit = max(100, line_limit)
        self.rebuild_lines = min(self.line_limit, 400)  # what a firehose shows: the newest screenfuls
        self._asm = {Stream.STDOUT: LineAssembler(encoding), Stream.STDERR: LineAssembler(encoding)}
        self._pending: collections.deque[tuple[Stream, str, int, float, bool]] = collections.deque()
        self._pending_count = 0
        self._ring: collections.deque[tuple[Stream, str, float]] = collections.deque(maxlen=self.line_limit)
        self._style = {Stream.STDOUT: PLAIN, Stream.STDERR: PLAIN}
        self._partial_shown = 0  # trailing blocks that show unfinished lines
        self._formats: dict[tuple[Stream, Style, str | None], QTextCharFormat] = {}
        self.lines_received = 0  # complete lines this pane was given (drawn or not)
        self._doc_lines = 0  # complete lines in the document now
        self.dropped_bytes = 0  # output the window's subscription missed (marker batches)
        self.end_text: str | None = None  # the run's last line, once it ended (show_end)
        self._end_shown = 0  # 1 when the end line is the document's last block
        self.message_box: QMessageBox | None = None
        self._last_flush = 0.0
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
        # whether _timer runs, kept here: asked on every batch (100 chatty runs: 1,000 a second),
        # where each question to Qt costs more than the rest of a behind pane's work
        self._timer_armed = False

    # ------------------------------------------------------------------ input
    @property
    def hidden_lines(self) -> int:
        """Lines received but not in the document: exactly what the marker says."""
        return max(0, self.lines_received - self._doc_lines)

    def _add_pending(self, stream: Stream, block: str, count: int, when: float, first_clipped: bool) -> None:
        self._pending.append((stream, block, count, when, first_clipped))
        self._pending_count += count
        self.lines_received += count
        # keep only what could still be drawn (the rest is hidden: counted by lines_received)
        while self._pending_count - self._pending[0][2] >= self.line_limit:
            self._pending_count -= self._pending.popleft()[2]

    def feed_chunks(self, chunks: Iterable[OutputChunk], dropped_bytes: int = 0) -> None:
        """Take an OutputBatch's chunks; drawn at once when they may carry a progress reading
        (or the last drawing is FLUSH_MS old), else at most every FLUSH_MS."""
        now_draw = False
        for chunk in chunks:
            if chunk.stream not in self._asm:
                continue
            text = chunk.text
            if not now_draw and ("%" in text or "/" in text or PROTOCOL_PREFIX in text):
                now_draw = True  # a superset of what the engine reads progress from
            got = self._asm[chunk.stream].feed_block(text)
            if got is not None:
                self._add_pending(chunk.stream, *got[:2], chunk.time, got[2])
        if dropped_bytes:
            self.dropped_bytes += dropped_bytes
        if self.behind():
            # behind another tab: kept (bounded, like the document) and drawn when shown, so
            # 100 chatty runs cost the layout of the one pane in front (benchmarks/bench_gui.py)
            if self._timer_armed:
                self._timer.stop()
                self._timer_armed = False
            return
        if now_draw:
            self.flush()
        elif not self._timer_armed:
            # drawn from a loop turn of its own, never inside the engine's output callback: the
            # longest stretch the loop is busy is one of the two, not their sum (a firehose)
            since = time.monotonic() - self._last_flush
            self._timer.start(max(0, int((FLUSH_MS / 1000 - since) * 1000)))
            self._timer_armed = True

    def sync(self) -> None:
        """Draw what is pending now (call before showing a progress reading of this run)."""
        if (self._pending or self._timer_armed) and not self.behind():
            self.flush()

    def behind(self) -> bool:
        """A page of the log tabs that another pane hides (a pane of no parent is never behind)."""
        return self.isHidden() and self.parentWidget() is not None

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        """Brought to the front: draw what arrived while it was behind another tab."""
        super().showEvent(event)
        if self._pending or any(a.partial or a.partial_dropped for a in self._asm.values()):
            self.flush()

    def finish(self) -> None:
        """The run ended: show what the decoders held back, draw now."""
        for stream, asm in self._asm.items():
            lines = asm.finish()
            for line in lines:
                self._add_pending(stream, line, 1, time.time(), True)
        self.flush()

    def show_end(self, run: Run) -> bool:
        """End the pane with the run's last line in words ("exited with code 1 after 20.6 s"),
        dim and italic, once (a second call, or one for an unfinished run, does nothing).

        Call it on the finishing RunChanged; it draws the pending output first. Returns
        whether the line was added.
        """
        if self.end_text is not None or run.outcome is None or run.id != self.run_id:
            return False
        self.finish()
        self.end_text = pane_end_text(run)
        doc = self.text.document()
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()
        self._insert_end(cursor, first=doc.isEmpty())
        cursor.endEditBlock()
        bar = self.text.verticalScrollBar()
        if self.follow:
            bar.setValue(bar.maximum())
        return True

    def _end_format(self) -> QTextCharFormat:
        fmt = QTextCharFormat()
        fmt.setForeground(QColor(self._dim_color()))
        fmt.setFontItalic(True)
        return fmt

    def _dim_color(self) -> str:
        """Between the text and the background, still AA-legible (4.5:1) on the background."""
        pal = self.text.palette()
        text, base = pal.color(QPalette.ColorRole.Text), pal.color(QPalette.ColorRole.Base)
        mix = QColor(int(text.red() * 0.6 + base.red() * 0.4), int(text.green() * 0.6 + base.green() * 0.4),
                     int(text.blue() * 0.6 + base.blue() * 0.4))
        return legible(mix.name(), base.name())

    def _insert_end(self, cursor: QTextCursor, first: bool) -> None:
        if self.end_text is None:
            return
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if not first:
            cursor.insertBlock()
        cursor.insertText(f"— {self.end_text} —", self._end_format())
        self._end_shown = 1

    def load_from_log(self, path: str) -> None:
        """Show a finished run's output from its log file (history → open); no file: it wrote nothing."""
        try:
            for record, _ in read_log(path):
                if record.stream is Stream.META:
                    continue
                asm = self._asm[record.stream]
                got = asm.feed_block(asm.decode(record.data))
                if got is not None:
                    self._add_pending(record.stream, got[0], got[1], record.time, got[2])
        except FileNotFoundError:
            pass
        self.finish()

    # ------------------------------------------------------------------ drawing
    def _take_new_lines(self, limit: int | None = None) -> list[tuple[Stream, str, float]]:
        """The pending lines that can still be shown: the newest `limit` (`line_limit`), split
        from the newest block back (a firehose's flush splits a few hundred lines, not thousands)."""
        limit = need = limit or self.line_limit
        picked: list[tuple[Stream, list[str], float]] = []
        for stream, block, count, when, first_clipped in reversed(self._pending):
            if count > need:  # the oldest block still needed: only its newest lines
                tail = block.rsplit("\n", need)[-need:]
                picked.append((stream, self._asm[stream].clip_block("\n".join(tail)), when))
                break
            picked.append((stream, self._asm[stream].clip_block(block, first_clipped), when))
            need -= count
            if need <= 0:
                break
        items = [(stream, line, when) for stream, lines, when in reversed(picked) for line in lines]
        self._pending.clear()
        self._pending_count = 0
        if len(items) > limit:
            items = items[-limit:]
        return items

    def flush(self) -> None:
        self._timer.stop()
        self._timer_armed = False
        self._last_flush = time.monotonic()
        # a flush that replaces the document shows only the newest `rebuild_lines`: only those are
        # split and kept (a firehose's flush made 5,000 line tuples to show 400)
        pending = min(self._pending_count, self.line_limit)
        doc_blocks = self.text.document().blockCount()
        rebuild = pending > self.rebuild_lines // 2 or doc_blocks + pending > self.line_limit
        new = self._take_new_lines(self.rebuild_lines if rebuild else None)
        partials = [(s, a.current()) for s, a in self._asm.items() if a.partial or a.partial_dropped]
        if not new and not partials and not self._partial_shown:
            return
        self.flushes += 1
        self._ring.extend(new)
        bar = self.text.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 2
        if rebuild:
            self._rebuild(partials)
        else:
            self._append(new, partials)
        self._update_marker()
        if self.follow and at_bottom:
            bar.setValue(bar.maximum())

    def _background(self) -> str:
        return str(self.text.palette().color(QPalette.ColorRole.Base).name())

    def _format(self, stream: Stream, style: Style, href: str | None = None) -> QTextCharFormat:
        key = (stream, style, href)
        fmt = self._formats.get(key)
        if fmt is None:
            fmt = QTextCharFormat()
            background = style.bg or self._background()
            color = style.fg or (STDERR_COLOR if stream is Stream.STDERR else None)
            if color:  # a script's colour, made legible on this background (VS Code's minimum contrast)
                fmt.setForeground(QColor(legible(color, background)))
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
                fmt.setForeground(QColor(legible(LINK_COLOR, background)))
            self._formats[key] = fmt
        return fmt

    def _prefix(self, when: float) -> str:
        return time.strftime("%H:%M:%S", time.localtime(when)) + f".{int(when % 1 * 1000):03d} " if self.show_timestamps else ""

    def _insert_line(self, cursor: QTextCursor, stream: Stream, line: str, when: float | None, first: bool) -> None:
        if not first:
            cursor.insertBlock()
        if when is not None and self.show_timestamps:
            cursor.insertText(self._prefix(when), self._format(Stream.STDOUT, Style(fg=TIME_COLOR)))
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
        """Remove the trailing blocks that show unfinished lines and the end line (they are
        redrawn after the new lines)."""
        if not self._partial_shown and not self._end_shown:
            return
        cursor.movePosition(QTextCursor.MoveOperation.End)
        for _ in range(self._partial_shown + self._end_shown):
            cursor.movePosition(QTextCursor.MoveOperation.StartOfBlock, QTextCursor.MoveMode.KeepAnchor)
            if cursor.block().blockNumber() > 0:
                cursor.movePosition(QTextCursor.MoveOperation.PreviousCharacter, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            cursor.movePosition(QTextCursor.MoveOperation.End)
        self._partial_shown = 0
        self._end_shown = 0

    def _append(self, new: list[tuple[Stream, str, float]], partials: list[tuple[Stream, str]]) -> None:
        doc = self.text.document()
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()
        self._drop_partials(cursor)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        empty = doc.isEmpty()
        for i, (stream, line, when) in enumerate(new):
            self._insert_line(cursor, stream, line, when, first=empty and i == 0)
        self._doc_lines += len(new)
        empty = empty and not new
        for i, (stream, line) in enumerate(partials):
            self._insert_line(cursor, stream, line, None, first=empty and i == 0)
        self._partial_shown = len(partials)
        self._insert_end(cursor, first=empty and not partials)
        cursor.endEditBlock()

    def _rebuild(self, partials: list[tuple[Stream, str]]) -> None:
        """Replace the document with the newest tail (the fast path when far behind)."""
        tail = list(self._ring)[-self.rebuild_lines :]
        needs_format = any(s is Stream.STDERR or "\x1b" in line or 'File "' in line for s, line, _ in tail) or bool(
            partials) or self.show_timestamps or self.end_text is not None
        if not needs_format:
            self.text.setPlainText("\n".join(line for _, line, _ in tail))
            self._partial_shown = self._end_shown = 0
            self._doc_lines = len(tail)
            return
        self._redraw(tail, partials)

    def _redraw(self, lines: list[tuple[Stream, str, float]], partials: list[tuple[Stream, str]]) -> None:
        self.text.document().clear()
        self._partial_shown = self._end_shown = 0
        self._doc_lines = 0
        self._style = {Stream.STDOUT: PLAIN, Stream.STDERR: PLAIN}
        self._append(lines, partials)

    def _update_marker(self) -> None:
        hidden = self.hidden_lines
        if hidden > 0 or self.dropped_bytes:
            text = f"⋯ {plural(hidden, 'earlier line')} not shown"
            if self.dropped_bytes:
                text += f" (and {plural(self.dropped_bytes, 'byte')} the window fell behind on)"
            self.marker.setText(text + " — open full log")
            self.marker.setToolTip(self.log_path or "")
            self.marker.show()
        else:
            self.marker.hide()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        """A new theme: redraw with colours made legible on the new background."""
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self._formats:
            self._formats.clear()
            partials = [(s, a.current()) for s, a in self._asm.items() if a.partial]
            ring = list(self._ring)
            self._redraw(ring[len(ring) - min(self._doc_lines, len(ring)):], partials)
            self._update_marker()

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
        partials = [(s, a.current()) for s, a in self._asm.items() if a.partial]
        self._redraw(list(self._ring)[-self.rebuild_lines :], partials)
        self._update_marker()

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
        self.find_count.setText(plural(count, "match", "matches"))
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
    def editor_command(self) -> str:
        """The editor-command setting: this pane's settings, else its window's."""
        settings = self.settings
        if settings is None:
            found = getattr(self.window(), "settings", None)
            settings = found if isinstance(found, QSettings) else None
        raw = settings.value(EDITOR_KEY, "") if settings is not None else ""
        return raw.strip() if isinstance(raw, str) else ""

    def open_link(self, href: str) -> str | None:
        """Open a traceback location (`path#line`); returns the message shown when that failed."""
        path, _, line = href.rpartition("#")
        if not path:
            return None
        problem: str | None
        if not os.path.exists(path):
            problem = f"{path} does not exist (any more), so line {line} cannot be opened."
        else:
            problem = open_in_editor(path, int(line or 1), self.editor_command())
        if problem is not None:
            self.editorMissing.emit(problem)
            box = QMessageBox(QMessageBox.Icon.Information, "Cannot open the file", problem,
                              QMessageBox.StandardButton.Ok, self)
            box.setObjectName("editorMissingBox")
            box.setModal(False)
            box.show()  # non-modal: the output keeps coming
            self.message_box = box
        return problem

    def _open_link(self, href: str) -> None:
        self.open_link(href)

    def plain_text(self) -> str:
        return self.text.toPlainText()
