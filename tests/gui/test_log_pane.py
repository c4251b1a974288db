"""The log pane over the real window, engine and scripts: exact counter, end line, progress in step."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QApplication

from prismq_desktop.core import RunSpec, RunStatus
from prismq_desktop.core.models import OutcomeKind
from prismq_desktop.core.process.capture import OutputChunk
from prismq_desktop.core.process.logfile import Stream
from prismq_desktop.gui.ansi import contrast_ratio
from prismq_desktop.gui.logview import LogPane
from prismq_desktop.gui.settings_dialog import EDITOR_KEY, apply_theme
from tests.gui.test_window import close, launch_from_form, run_qt, until, window_for

PY = sys.executable
SCRIPTS = Path(__file__).parent.parent / "scripts"


def test_hidden_lines_counter_is_exact_for_100000_lines(qapp, home):
    printed = 100_000  # firehose.py writes MB * 1e6 / 80 lines of 80 bytes

    async def main():
        orch, win = await window_for(home)
        try:
            launch_from_form(win, str(SCRIPTS / "firehose.py"), str(printed * 80 / 1_000_000))
            await until(lambda: win.runs_model.rowCount() == 1 and win.runs_model.run_at(0).status is RunStatus.DONE,
                        timeout=60)
            run = win.runs_model.run_at(0)
            pane = win.panes[run.id]
            await until(lambda: pane.lines_received == printed)
            lines = pane.plain_text().split("\n")
            return pane, lines, pane.marker.text(), pane.marker.isVisible()
        finally:
            await close(orch, win)

    pane, lines, marker, visible = run_qt(qapp, main())
    assert lines[-1].startswith("— exited with code 0 after ")  # the run's end, in words, last
    lines = lines[:-1]
    shown = len(lines)
    assert lines[-1] == f"{printed - 1:079d}"  # the newest line is the last one printed
    assert [int(x) for x in lines] == list(range(printed - shown, printed))  # a contiguous tail
    assert pane.hidden_lines == printed - shown
    assert f"⋯ {printed - shown:,} earlier lines not shown" in marker and visible


def test_end_line_in_words_once_and_after_late_output(qapp, home):
    async def main():
        orch, win = await window_for(home)
        try:
            spec = RunSpec(PY, ("-S", "-c", "import sys, time; print('working'); time.sleep(0.2); sys.exit(1)"))
            run_id = orch.delay(spec)
            pane = win.runs_view.log_tabs.ensure_pane(run_id, focus=True)
            result = await orch.wait(run_id)
            run = result.run
            await until(lambda: "exited with code" in pane.plain_text())  # the window printed it on the finish
            first = pane.show_end(run)  # more finishing events (or callers) print nothing more
            second = pane.show_end(run)
            pane.feed_chunks([OutputChunk(Stream.STDOUT, b"late\n", "late\n", 0.0)])
            pane.flush()
            last = pane.text.document().lastBlock()
            cursor = QTextCursor(last)
            cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock)
            fmt = cursor.charFormat()
            base = pane.text.palette().color(pane.text.palette().ColorRole.Base).name()
            return run, first, second, pane.plain_text(), fmt.fontItalic(), fmt.foreground().color().name(), base
        finally:
            await close(orch, win)

    run, first, second, text, italic, colour, base = run_qt(qapp, main())
    assert run.outcome.kind is OutcomeKind.FAILED
    assert not first and not second
    lines = text.split("\n")
    assert lines[:2] == ["working", "late"]
    assert re.fullmatch(r"— exited with code 1 after \d+\.\d s —", lines[-1])
    assert text.count("exited with code") == 1
    assert italic and contrast_ratio(colour, base) >= 4.5


def test_pane_shows_the_output_behind_every_progress_reading(qapp, home, tmp_path):
    script = tmp_path / "percent.py"
    script.write_text(
        "import sys, time\n"
        "for i in range(0, 101):\n"
        "    print(f'step {i}%', flush=True)\n"
        "    time.sleep(0.004)\n"
    )

    async def main():
        orch, win = await window_for(home)
        checks, behind = [], []
        try:
            def on_changed(top, _bottom, _roles=()):
                if top.column() != 3:
                    return
                run = win.runs_model.run_at(top.row())
                pane = win.panes.get(run.id) if run else None
                shown = win.runs_model.data(top)  # what the Progress column shows now
                if pane is None or not shown:
                    return
                drawn = re.findall(r"step (\d+)%", pane.plain_text())
                checks.append(shown)
                if not drawn or f"{drawn[-1]}%" != shown:
                    behind.append((shown, drawn[-1] if drawn else None))

            win.runs_model.dataChanged.connect(on_changed)  # after the window's own connections
            launch_from_form(win, str(script))
            await until(lambda: win.runs_model.rowCount() == 1 and win.runs_model.run_at(0).status is RunStatus.DONE)
            return checks, behind
        finally:
            await close(orch, win)

    checks, behind = run_qt(qapp, main())
    assert len(checks) >= 5, checks
    assert checks[-1] == "100%"
    assert not behind, f"the pane was behind the Progress column: {behind[:5]}"


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_traceback_link_without_an_editor_says_what_to_set(qapp, home, tmp_path, monkeypatch):
    source = tmp_path / "boom.py"
    source.write_text("x = 1\nraise SystemExit(3)\n")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))  # no `code`
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    pane = LogPane(1)
    line = f'  File "{source}", line 2, in <module>\n'
    pane.feed_chunks([OutputChunk(Stream.STDERR, line.encode(), line, 0.0)])
    pane.flush()
    href = anchor_of(pane)
    assert href == f"{source}#2"
    said = []
    pane.editorMissing.connect(said.append)
    message = pane.open_link(href)
    assert message is not None and said == [message]
    assert "Settings → Editor command" in message and "$EDITOR" in message and "VS Code" in message
    box = pane.message_box
    assert box is not None and box.isVisible() and not box.isModal()
    assert box.objectName() == "editorMissingBox"
    box.close()

    # with the setting, the editor it names is started with the file and line filled in
    record = tmp_path / "opened.txt"
    editor = empty_bin / "myeditor"
    editor.write_text(f"#!/bin/sh\necho \"$@\" > {record}\n")
    editor.chmod(0o755)
    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue(EDITOR_KEY, "myeditor --goto {file}:{line}")
    pane.settings = settings
    assert pane.open_link(href) is None
    deadline = time.monotonic() + 5
    # the shell creates the file before echo writes to it: wait for the whole line
    while not (record.exists() and record.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert record.read_text().strip() == f"--goto {source}:2"
    pane.deleteLater()


def anchor_of(pane: LogPane) -> str | None:
    block = pane.text.document().firstBlock()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fmt = it.fragment().charFormat()
            if fmt.isAnchor():
                return fmt.anchorHref()
            it += 1
        block = block.next()
    return None


def test_ansi_yellow_warning_is_readable_in_the_light_theme(qapp):
    apply_theme("light")
    try:
        pane = LogPane(2)
        text = "\x1b[33mWARNING: disk almost full\x1b[0m\n"
        pane.feed_chunks([OutputChunk(Stream.STDOUT, text.encode(), text, 0.0)])
        pane.flush()
        it = pane.text.document().firstBlock().begin()
        colour = it.fragment().charFormat().foreground().color().name()
        base = QApplication.palette().color(QApplication.palette().ColorRole.Base).name()
        assert base == "#ffffff"
        assert contrast_ratio(colour, base) >= 4.5, colour
        assert contrast_ratio("#e5e510", base) < 2  # what ANSI yellow was on white
        pane.deleteLater()
    finally:
        apply_theme("system")


def test_a_pane_behind_another_draws_nothing_until_shown_and_loses_nothing(qapp, home):
    """100 chatty runs cost the layout of the pane in front only: a pane behind keeps its
    output (bounded) and draws it, all of it and in order, when it comes to the front."""
    code = ("import sys, time\ntime.sleep(0.3)\nfor i in range(500):\n    print(f'behind {i:04d}')\n"
            "sys.stdout.write('partial tail'); sys.stdout.flush()\ntime.sleep(60)\n")

    async def main():
        orch, win = await window_for(home)
        try:
            tabs = win.runs_view.log_tabs
            a = win.launch(RunSpec(PY, ("-S", "-c", code)), {"pattern": "long_running"})
            b = win.launch(RunSpec(PY, ("-S", "-c", "import time; print('in front'); time.sleep(60)")),
                           {"pattern": "long_running"})
            pane_a, pane_b = win.panes[a], win.panes[b]
            assert tabs.currentWidget() is pane_b and pane_a.behind() and not pane_b.behind()
            await until(lambda: pane_a.lines_received == 500 and "in front" in pane_b.plain_text(), timeout=30)
            await asyncio.sleep(0.2)  # past the pane's flush interval: a pane in front would have drawn by now
            before = (pane_a.flushes, pane_a.text.document().isEmpty())
            tabs.show_pane(a)
            QApplication.processEvents()
            after = pane_a.plain_text().split("\n")
            hidden, marker, limit = pane_a.hidden_lines, pane_a.marker.text(), pane_a.rebuild_lines
            orch.cancel(a)
            orch.cancel(b)
            await orch.wait(a)
            await orch.wait(b)
            return before, after, pane_a.flushes, hidden, marker, limit
        finally:
            await close(orch, win)

    before, after, flushes, hidden, marker, limit = run_qt(qapp, main())
    assert before == (0, True)
    shown = min(500, limit)  # a backlog is drawn like a burst in front: the newest screenfuls
    assert after[:-1] == [f"behind {i:04d}" for i in range(500 - shown, 500)] and after[-1] == "partial tail"
    assert hidden == 500 - shown and (hidden == 0 or f"{hidden:,} earlier lines not shown" in marker)
    assert flushes >= 1
