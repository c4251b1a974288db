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
import sys
import traceback
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QMessageBox

from prismq_desktop import APP_NAME, __version__
from prismq_desktop.core import paths

log = logging.getLogger("prismq_desktop")


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


def setup_logging(home: Path) -> Path:
    path = home / "logs" / "app.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
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


async def run_window(app: QApplication, home: Path, server: QLocalServer) -> int:
    from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
    from prismq_desktop.gui.main_window import MainWindow

    loop = asyncio.get_running_loop()

    def loop_error(_loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if exc is not None:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        else:
            log.error("event loop: %s", context.get("message"))

    loop.set_exception_handler(loop_error)
    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    limit = int(settings.value("run/max_concurrent", 4))
    closed = asyncio.Event()
    async with TaskOrchestrator(home, max_concurrent=limit) as orch:
        keep_days = settings.value("history/keep_days")
        keep_runs = settings.value("history/keep_runs")
        if keep_days or keep_runs:
            for path in orch.registry.apply_retention(keep_days=float(keep_days) if keep_days else None,
                                                      keep_runs=int(keep_runs) if keep_runs else None):
                Path(path).unlink(missing_ok=True)
        window = MainWindow(orch, settings)
        app.aboutToQuit.connect(closed.set)
        app.lastWindowClosed.connect(closed.set)

        def on_connection() -> None:
            sock = server.nextPendingConnection()
            if sock is not None:
                sock.readyRead.connect(lambda: (sock.readAll(), window.show_normal()))

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
        orch.scheduler.start()
        window.show()
        await closed.wait()
        window.bridge.close()
    return 0


def main(data_dir: str | None = None) -> int:
    home = paths.data_dir(data_dir)
    log_path = setup_logging(home)
    from prismq_desktop.core.process.launch import restore_dll_search_path

    restore_dll_search_path()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("prismq-desktop")
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("prismq-desktop")
    icon = Path(__file__).resolve().parent.parent.parent / "resources" / "prismq.png"
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

    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        return runner.run(run_window(app, home, server))  # type: ignore[arg-type]
