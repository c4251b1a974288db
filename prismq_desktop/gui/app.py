"""Start the window: one QApplication, one qasync loop, one instance per data dir.

The loop is started with `asyncio.Runner(loop_factory=...)` and no event-loop policy is
set (policies are deprecated in 3.14). Uncaught exceptions go to `app.log` in the data
dir and to a dialog - never a silent exit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import logging.handlers
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import QSettings
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QMessageBox

from prismq_desktop import APP_NAME, __version__
from prismq_desktop.core import paths
from prismq_desktop.gui import gcguard

if TYPE_CHECKING:
    from prismq_desktop.core.store.registry import RunRegistry

log = logging.getLogger("prismq_desktop")

#: core.services.api.SETTING_KEY, known here so a window without the API never imports aiohttp
API_SETTING = "api/listen"


def instance_key(home: Path) -> str:
    return "prismq-desktop-" + hashlib.sha1(str(home).encode()).hexdigest()[:12]


def ask_running_instance_to_show(key: str) -> bool:
    """True if another instance owns this data dir (it was asked to come to the front)."""
    sock = QLocalSocket()
    sock.connectToServer(key)
    if not sock.waitForConnected(300):
        return False
    sock.write(b"show\n")
    sock.waitForBytesWritten(300)
    sock.disconnectFromServer()
    return True


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


async def run_window(app: QApplication, home: Path, server: QLocalServer) -> int:
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

        def on_connection() -> None:
            sock = server.nextPendingConnection()
            if sock is not None:
                def show() -> None:
                    sock.readAll()
                    window.show_normal()

                sock.readyRead.connect(show)

        server.newConnection.connect(on_connection)

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
    key = instance_key(home)
    if ask_running_instance_to_show(key):
        print(f"{APP_NAME} is already running on {home}; it was brought to the front.")
        return 0
    server = QLocalServer()
    QLocalServer.removeServer(key)  # a stale socket from a crashed instance
    server.listen(key)
    install_excepthook(log_path)
    import qasync

    from prismq_desktop.core.store.schema import RegistryError

    while True:
        try:
            with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
                return runner.run(run_window(app, home, server))
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
            elif choice == "aside":
                from prismq_desktop.core.store.database import move_aside

                moved = move_aside(cast(Path, getattr(exc, "path", None)))
                log.warning("moved the unusable registry aside to %s", moved)
            elif choice != "retry":
                return 1


def registry_problem_box(exc: Exception) -> QMessageBox:
    """The dialog for a registry that cannot be used: what is wrong (one line) and the ways out.

    Its "choice" property is set to "other" (open another data dir), "aside" (move the bad file
    aside, renamed with a timestamp; offered for a file that is itself the problem), "retry"
    (a lock or a full disk may pass) or "quit"."""
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
