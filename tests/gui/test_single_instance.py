"""One window per data dir, in real processes: the first start holds `window.lock` from before
its window exists; a second start on the same data dir brings the first to the front and ends
without a window; a first start SIGKILLed leaves nothing that stops the next one. The socket a
second start talks to is opened only after the first paint (issue 17), so a second start that
comes early keeps asking."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from prismq_desktop.gui import app as gui_app

PY = sys.executable

# the real entry point (the CLI's main) with a probe: prints READY once the window is painted and
# listening for a second start, SHOWN when a second start asked it to come to the front
FIRST = textwrap.dedent("""
    import sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from prismq_desktop.gui.main_window import MainWindow

    def probe():
        wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        if not wins or getattr(wins[0], "instance_server", None) is None:
            QTimer.singleShot(20, probe)
            return
        win = wins[0]
        shown = win.show_normal

        def show_normal():
            print("SHOWN", flush=True)
            shown()
            if sys.argv[2] == "quit-when-shown":
                win._quitting = True
                QTimer.singleShot(0, win.close)

        win.show_normal = show_normal
        print("READY", win.instance_server.fullServerName(), flush=True)

    QApplication.instance() or QApplication(sys.argv[:1])
    QTimer.singleShot(0, probe)
    from prismq_desktop.cli import main
    sys.exit(main(["--data-dir", sys.argv[1], "gui"]))
""")


def env() -> dict[str, str]:
    return dict(os.environ, QT_QPA_PLATFORM="offscreen", PRISMQ_SECRET_STORE="file")


class First:
    """The first start, its stdout read line by line on a thread."""

    def __init__(self, home: Path, mode: str = "quit-when-shown") -> None:
        self.proc = subprocess.Popen([PY, "-c", FIRST, str(home), mode], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env())
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def expect(self, word: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            if line.startswith(word):
                return line
        err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        raise AssertionError(f"{word!r} not seen (exit {self.proc.poll()}): {err[-3000:]}")

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


def second(home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "prismq_desktop", "--data-dir", str(home), "gui"], capture_output=True,
                          text=True, timeout=timeout, env=env())


def no_leftovers(home: Path, *procs: subprocess.Popen[str]) -> None:
    """The processes ended, and nothing that names the data dir is left running."""
    for proc in procs:
        assert proc.poll() is not None
    left = []
    for p in psutil.process_iter(["cmdline", "status"]):
        if p.info["status"] != psutil.STATUS_ZOMBIE and any(str(home) in part for part in p.info["cmdline"] or []):
            left.append(p)
    assert not left, left


def test_a_second_start_brings_the_first_to_the_front_and_ends(tmp_path: Path) -> None:
    home = tmp_path / "data"
    first = First(home)
    try:
        first.expect("READY")
        res = second(home)
        assert res.returncode == 0, res.stderr[-3000:]
        assert "already running" in res.stdout and str(home) in res.stdout
        first.expect("SHOWN")  # and it quits, as the probe asks
        assert first.proc.wait(30) == 0
    finally:
        first.end()
    no_leftovers(home, first.proc)


def test_the_lock_decides_even_before_the_first_window_listens(tmp_path: Path, qapp) -> None:
    """Another holder of the lock that is not listening yet: a second start keeps asking, opens
    no window of its own, and ends once the holder answers (here, 1 s later)."""
    from PySide6.QtNetwork import QLocalServer

    home = tmp_path / "data"
    home.mkdir(mode=0o700)
    lock = gui_app.InstanceLock.take(home)
    assert lock is not None
    proc = None
    try:
        assert gui_app.InstanceLock.take(home) is None  # the same process cannot take it twice either
        proc = subprocess.Popen([PY, "-m", "prismq_desktop", "--data-dir", str(home), "gui"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env())
        time.sleep(1.0)
        assert proc.poll() is None  # still asking: it did not start a window (it would run until closed)
        server = QLocalServer()
        QLocalServer.removeServer(gui_app.instance_key(home))
        assert server.listen(gui_app.instance_key(home))
        assert server.waitForNewConnection(30_000)
        sock = server.nextPendingConnection()
        sock.waitForReadyRead(10_000)
        assert bytes(sock.readAll().data()).startswith(b"show")
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-3000:]
        assert "already running" in out
        server.close()
    finally:
        lock.release()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc is not None
    no_leftovers(home, proc)
    assert gui_app.InstanceLock.take(home) is not None  # released: the next start gets it


def test_no_answer_is_said_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The lock is held but nobody ever answers (a hung first window): one line on stderr,
    status 1, no window."""
    home = tmp_path / "data"
    home.mkdir(mode=0o700)
    holder = subprocess.Popen([PY, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from prismq_desktop.gui.app import InstanceLock
        lock = InstanceLock.take(Path({str(home)!r}))
        print("HELD" if lock else "NOT", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True, env=env())
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HELD"
        monkeypatch.setattr(gui_app, "SHOW_WAIT", 0.5)
        assert gui_app._take_or_show(home) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "already running" in err[0] and "did not answer" in err[0], err
    finally:
        holder.kill()
        holder.wait(10)
    no_leftovers(home, holder)


def test_a_first_start_killed_does_not_block_the_next(tmp_path: Path) -> None:
    """SIGKILL leaves the socket file behind and no lock: the next start gets the data dir."""
    home = tmp_path / "data"
    first = First(home, mode="stay")
    try:
        name = first.expect("READY").split(maxsplit=1)[1]
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(30)
    finally:
        first.end()
    assert Path(name).exists()  # the crashed instance's socket is still there
    again = First(home)
    try:
        again.expect("READY")
        res = second(home)
        assert res.returncode == 0 and "already running" in res.stdout, res.stderr[-3000:]
        again.expect("SHOWN")
        assert again.proc.wait(30) == 0
    finally:
        again.end()
    no_leftovers(home, first.proc, again.proc)
