"""Start the window: one QApplication, one qasync loop, one instance per data dir.

The loop is started with `asyncio.Runner(loop_factory=...)` and no event-loop policy is
set (policies are deprecated in 3.14). Uncaught exceptions go to `app.log` in the data
dir and to a dialog - never a silent exit.

One instance per data dir: the first holds an exclusive lock on `window.lock` in it for
its lifetime (the kernel drops it when the process dies, however it dies); a second start
finds the lock taken, asks the first to come to the front over a local socket and ends.
The lock decides, so QtNetwork (the socket) is imported only by a second start, and by
the first one after its window is painted (issue 17).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import logging.handlers
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from prismq_desktop import APP_NAME, __version__
from prismq_desktop.core import paths
from prismq_desktop.gui import gcguard

if TYPE_CHECKING:
    from PySide6.QtNetwork import QLocalServer
    from PySide6.QtWidgets import QMessageBox

    from prismq_desktop.core.store.registry import RunRegistry

log = logging.getLogger("prismq_desktop")

#: core.services.api.SETTING_KEY, known here so a window without the API never imports aiohttp
API_SETTING = "api/listen"


def instance_key(home: Path) -> str:
    return "prismq-desktop-" + hashlib.sha1(str(home).encode()).hexdigest()[:12]


#: how long a second start keeps asking a first one that holds the lock but does not listen
#: yet (it listens once its window is painted)
SHOW_WAIT = 10.0


def ask_running_instance_to_show(key: str, wait: float = 0.0) -> bool:
    """True if an instance listens on `key` (it was asked to come to the front); tries for `wait` s."""
    from PySide6.QtNetwork import QLocalSocket

    deadline = time.monotonic() + wait
    while True:
        sock = QLocalSocket()
        sock.connectToServer(key)
        if sock.waitForConnected(300):
            sock.write(b"show\n")
            sock.waitForBytesWritten(300)
            sock.disconnectFromServer()
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


class InstanceLock:
    """An exclusive, non-blocking lock on `home/window.lock`, held until `release()` (flock on
    POSIX, msvcrt.locking on Windows; the OS releases it when the process ends, however)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd  # None: a file system that cannot lock, the socket alone decides

    @classmethod
    def take(cls, home: Path) -> InstanceLock | None:
        """The data dir's window lock, or None when another window holds it.

        A file system that cannot lock (some network mounts) falls back to the socket alone:
        an instance that answers on it owns the data dir."""
        import errno

        path = home / "window.lock"
        try:
            fd = paths.open_private(path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:  # a read-only data dir: the registry says what is wrong with it
            log.warning("cannot open %s (%s): the single-instance check uses the socket alone", path, exc)
            return None if ask_running_instance_to_show(instance_key(home)) else cls(None)
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK):
                return None
            log.warning("cannot lock %s (%s): the single-instance check uses the socket alone", path, exc)
            return None if ask_running_instance_to_show(instance_key(home)) else cls(None)
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def listen_for_show(key: str, window: Any) -> QLocalServer:
    """The server a second start asks to bring `window` to the front (we hold the lock: a
    socket left by a crashed instance is removed first)."""
    from PySide6.QtNetwork import QLocalServer

    server = QLocalServer(window)
    QLocalServer.removeServer(key)
    server.listen(key)

    def on_connection() -> None:
        sock = server.nextPendingConnection()
        if sock is not None:
            def show() -> None:
                sock.readAll()
                window.show_normal()

            sock.readyRead.connect(show)

    server.newConnection.connect(on_connection)
    return server


class _PrivateLogHandler(logging.handlers.RotatingFileHandler):
    """app.log (and each file it rotates to) is 0600 whatever the umask."""

    def _open(self) -> Any:
        fd = paths.open_private(self.baseFilename)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)  # noqa: SIM115


def setup_logging(home: Path) -> Path:
    path = home / "logs" / "app.log"
    handler = _PrivateLogHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for text in paths.notices():  # said before this log existed: keep it in app.log too
        log.warning("%s", text)
    # QSettings keeps the mode of the file it rewrites: start it 0600 and it stays so
    os.close(paths.open_private(home / "settings.ini"))
    return path


def install_excepthook(log_path: Path) -> None:
    def hook(exc_type: Any, exc: BaseException, tb: Any) -> None:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("uncaught exception:\n%s", text)
        app = QApplication.instance()
        if app is not None:
            from PySide6.QtWidgets import QMessageBox

            box = QMessageBox(QMessageBox.Icon.Critical, f"{APP_NAME}: unexpected error",
                              f"{exc_type.__name__}: {exc}\n\nThe details are in {log_path}.")
            box.setDetailedText(text)
            box.setObjectName("errorDialog")
            box.show()  # not exec(): the loop keeps running
            _keep.append(box)

    sys.excepthook = hook


_keep: list[Any] = []


def apply_saved_retention(registry: RunRegistry, settings: QSettings) -> int:
    """At start-up: delete finished runs beyond the saved retention setting (and their logs).

    Returns the number of runs deleted; a setting that is not a number is logged and skipped.
    """
    from prismq_desktop.core.services.history import RetentionPolicy, apply_retention

    try:
        policy = RetentionPolicy.from_settings(settings.value("history/keep_days"), settings.value("history/keep_runs"))
    except ValueError as exc:
        log.warning("history retention not applied: %s", exc)
        return 0
    removed = apply_retention(registry, policy)
    for error in removed.log_errors:
        log.warning("retention: cannot remove a log file: %s", error)
    if removed.runs:
        log.info("retention (%s) removed %d run(s) and %d log file(s)", policy.describe(), removed.runs, removed.logs)
    return removed.runs


async def run_window(app: QApplication, home: Path, key: str | None = None) -> int:
    """The window's life on the loop; `key`: the local socket name to listen on for "show"
    (after the first paint), None for no listening (tests)."""
    from prismq_desktop.core.orchestrator.orchestrator import DEFAULT_MAX_CONCURRENT, TaskOrchestrator
    from prismq_desktop.core.secrets import SecretVault
    from prismq_desktop.gui.broker import window_broker
    from prismq_desktop.gui.main_window import MainWindow
    from prismq_desktop.gui.settings_dialog import value as setting

    loop = asyncio.get_running_loop()

    def loop_error(_loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if exc is not None:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        else:
            log.error("event loop: %s", context.get("message"))

    loop.set_exception_handler(loop_error)
    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    # an empty or zero value is not "no runs at all": the core's own default
    limit = int(setting(settings, "run/max_concurrent") or 0) or DEFAULT_MAX_CONCURRENT
    closed = asyncio.Event()
    broker, broker_problem = window_broker(settings, SecretVault(home / "secrets.json"))
    if broker_problem:
        log.warning("%s", broker_problem)
    async with TaskOrchestrator(home, max_concurrent=limit, broker=broker) as orch:
        apply_saved_retention(orch.registry, settings)
        window = MainWindow(orch, settings, broker=broker)
        if broker_problem:
            window.statusBar().showMessage(broker_problem, 15000)
        if broker is not None:
            reattached = orch.engine.reattach_remote()  # remote runs a dead window was following
            if reattached:
                log.info("following again %d remote run(s) a previous app left", len(reattached))
                for handle in reattached:
                    window.runs_view.on_run_changed(handle.run)
                    window.runs_view.log_tabs.ensure_pane(handle.run.id, focus=False)
        # The loop's main coroutine ends when the user quits; Qt must not stop the loop itself
        # (that is "Event loop stopped before Future completed"), so Qt never quits on its own.
        app.setQuitOnLastWindowClosed(False)
        window.quitRequested.connect(closed.set)
        app.aboutToQuit.connect(closed.set)

        if key is not None:  # a second start's "show": QtNetwork is not needed to paint (issue 17)
            window.after_first_paint.append(lambda: setattr(window, "instance_server", listen_for_show(key, window)))

        def terminate() -> None:
            """SIGTERM/SIGINT/SIGHUP (logout, kill, Ctrl+C): stop every run's tree, then quit."""
            log.info("terminating on a signal: cancelling %d active run(s)", len(orch.engine.active()))
            window._quitting = True
            orch.cancel_all()
            closed.set()

        import signal

        for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                try:
                    loop.add_signal_handler(sig, terminate)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass  # Windows: the console handler and the close dialog cover it
        window.after_first_paint.append(orch.scheduler.start)  # not needed to paint (issue 17)
        api = None
        listen = settings.value(API_SETTING, "")
        if str(listen or "").strip():  # aiohttp (a third of the start-up's imports) only when the API is on
            from prismq_desktop.core.services.api import start_from_setting

            api = await start_from_setting(orch, listen)  # off unless set (HOST:PORT)
        window.show()
        await closed.wait()
        if api is not None:
            await api.stop()
        window.bridge.close()
    return 0


def main(data_dir: str | None = None) -> int:
    home = paths.data_dir(data_dir)
    log_path = setup_logging(home)
    if sys.platform == "win32":  # the installer's AppMutex: it will not replace files while we run
        from prismq_desktop.core.process import winjob

        winjob.hold_mutex()
    # a QApplication, never a bare QCoreApplication, exists in this process (the window needs one)
    app = cast(QApplication, QApplication.instance() or QApplication(sys.argv[:1]))
    from prismq_desktop.core.process.launch import restore_dll_search_path

    restore_dll_search_path()  # after Qt loaded its platform plugin, before any run starts (launch.py)
    # before any thread starts: cycles holding Qt objects are freed on this thread only (gcguard.py)
    gcguard.install(app)
    app.setApplicationName("prismq-desktop")
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("prismq-desktop")
    from prismq_desktop.resources import icon_path

    icon = icon_path()
    if icon.exists():
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(icon)))
    lock = _take_or_show(home)
    if not isinstance(lock, InstanceLock):
        return lock
    install_excepthook(log_path)
    import qasync

    from prismq_desktop.core.store.schema import RegistryError

    try:
        while True:
            try:
                with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
                    return runner.run(run_window(app, home, instance_key(home)))
            except RegistryError as exc:  # damaged, locked, read-only, newer, full: say it, offer a way out
                log.error("registry: %s", exc)
                box = registry_problem_box(exc)
                box.exec()  # not inside a coroutine: the loop has ended
                choice = box.property("choice")
                if choice == "other":
                    from PySide6.QtWidgets import QFileDialog

                    picked = QFileDialog.getExistingDirectory(None, "Open another data dir", str(home.parent))
                    if not picked:
                        return 1
                    home = paths.data_dir(picked)
                    lock.release()
                    taken = _take_or_show(home)
                    if not isinstance(taken, InstanceLock):
                        return taken
                    lock = taken
                elif choice == "aside":
                    from prismq_desktop.core.store.database import move_aside

                    moved = move_aside(cast(Path, getattr(exc, "path", None)))
                    log.warning("moved the unusable registry aside to %s", moved)
                elif choice != "retry":
                    return 1
    finally:
        lock.release()


def _take_or_show(home: Path) -> InstanceLock | int:
    """This data dir's window lock, or the exit status when another window has it (asked to come
    to the front: 0; it did not answer: 1, said on stderr)."""
    lock = InstanceLock.take(home)
    if lock is not None:
        return lock
    if ask_running_instance_to_show(instance_key(home), wait=SHOW_WAIT):
        print(f"{APP_NAME} is already running on {home}; it was brought to the front.")
        return 0
    print(f"{APP_NAME} is already running on {home} (it did not answer within {SHOW_WAIT:.0f} s).", file=sys.stderr)
    return 1


def registry_problem_box(exc: Exception) -> QMessageBox:
    """The dialog for a registry that cannot be used: what is wrong (one line) and the ways out.

    Its "choice" property is set to "other" (open another data dir), "aside" (move the bad file
    aside, renamed with a timestamp; offered for a file that is itself the problem), "retry"
    (a lock or a full disk may pass) or "quit"."""
    from PySide6.QtWidgets import QMessageBox

    from prismq_desktop.core.store.schema import RegistryLocked, RegistryUnusable

    box = QMessageBox(QMessageBox.Icon.Critical, APP_NAME, "The run registry cannot be used.")
    box.setInformativeText(str(exc))
    box.setProperty("choice", "quit")
    buttons = {"other": box.addButton("Open another data dir…", QMessageBox.ButtonRole.AcceptRole)}
    path = getattr(exc, "path", None)
    if isinstance(exc, RegistryUnusable) and path is not None and Path(path).is_file():
        buttons["aside"] = box.addButton("Move the file aside", QMessageBox.ButtonRole.DestructiveRole)
    if not isinstance(exc, RegistryUnusable) or isinstance(exc, RegistryLocked):
        buttons["retry"] = box.addButton("Try again", QMessageBox.ButtonRole.ActionRole)
    quit_button = box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(quit_button)
    for name, button in buttons.items():
        button.clicked.connect(lambda _=False, n=name: box.setProperty("choice", n))
    return box
