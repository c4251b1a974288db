"""Start the real app on a prepared data dir and put it in a state worth a screenshot.

    python docs/screenshots/scenario.py DATA_DIR TAB [light|dark]

Used with the screenshot tool (a real X window under a window manager):
    ../shared/tools/screenshot OUT.png --wm --size 1024x700 --wait 9 -- python docs/screenshots/scenario.py D runs dark
It launches a few real runs (a progress bar, a failing script with a traceback, a tree that
is cancelled, one left running), schedules one, then shows TAB (runs, history, scheduler,
concurrency, pool, workers, functions).

`workers` starts a real redis-server (password, free port) and two real `prismq-desktop worker`
processes (they die with this process: PR_SET_PDEATHSIG), saves the broker URL through the
secret store and sends a run to a queue. `functions` fills the launch panel with a Python
function and runs it (a return value and an exception).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from prismq_desktop.core import RunSpec
from prismq_desktop.core.schedule.scheduler import make_trigger
from prismq_desktop.gui import app as gui_app
from prismq_desktop.gui.main_window import MainWindow

TABS = {"runs": 0, "history": 1, "scheduler": 2, "concurrency": 3, "pool": 4, "workers": 5, "functions": 0}
SCRIPTS = Path(tempfile.mkdtemp(prefix="prismq-shot-"))


def script(name: str, body: str) -> str:
    path = SCRIPTS / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def _die_with_us() -> None:
    """preexec_fn: the child gets SIGTERM when this process ends (however it ends)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_broker(home: Path) -> str:
    """A real redis-server and two real workers (queues gpu and default); returns the broker URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://:shot-secret-pw@127.0.0.1:{port}/0"
    subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "shot-secret-pw",
                      "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, preexec_fn=_die_with_us)
    time.sleep(0.4)
    env = dict(os.environ, PRISMQ_BROKER_URL=url)
    for host, queue, n in (("gpu-box-1", "gpu", 2), ("cpu-box-2", "default", 4)):
        subprocess.Popen([sys.executable, "-m", "prismq_desktop.cli", "--data-dir", str(home / f"worker-{host}"),
                          "worker", "--queue", queue, "--hostname", host, "--concurrency", str(n)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_us)
    old = subprocess.Popen([sys.executable, "-m", "prismq_desktop.cli", "--data-dir", str(home / "worker-old"), "worker",
                            "--queue", "default", "--hostname", "old-box-3"], env=dict(env, PRISMQ_REMOTE_HEARTBEAT="1"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_us)
    threading.Timer(4.5, old.kill).start()  # a worker gone without a word: shown stale two heartbeats later
    return url


def main() -> int:
    home, tab = Path(sys.argv[1]), sys.argv[2]
    theme = sys.argv[3] if len(sys.argv) > 3 else "light"
    home.mkdir(parents=True, exist_ok=True)
    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("view/theme", theme)
    settings.sync()
    if tab == "workers":
        os.environ.setdefault("PRISMQ_SECRET_STORE", "file")  # a demo data dir: no keyring prompt under Xvfb
        from prismq_desktop.core.secrets import SecretVault
        from prismq_desktop.gui.broker import save_broker_url

        save_broker_url(settings, SecretVault(home / "secrets.json"), start_broker(home))
    funcs = script("thumbnails.py", """
        def resize(path, width=640):
            print("resizing", path, "to", width, flush=True)
            return {"path": path, "width": width, "bytes": 48213}

        def parse_row(row):
            return int(row)
    """)
    train = script("train_model.py", """
        import sys, time
        for epoch in range(1, 41):
            print(f"epoch {epoch}/40 loss={1/epoch:.4f}", flush=True)
            if epoch % 10 == 0:
                print(f"\\x1b[33mWARNING\\x1b[0m learning rate lowered at epoch {epoch}", flush=True)
            time.sleep(0.25)
    """)
    failing = script("import_orders.py", """
        import sys
        print("reading orders.csv")
        def parse(row):
            return int(row)
        parse("12x")
    """)
    quick = script("send_report.py", "print('report sent to team@example.com')\n")
    tree = script("crawl_sites.py", """
        import subprocess, sys, time
        kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(3)]
        print("crawling with", len(kids), "workers", flush=True)
        time.sleep(60)
    """)

    def drive() -> None:
        wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        if not wins:
            QTimer.singleShot(100, drive)
            return
        win = wins[0]
        win.launch(RunSpec(quick), {})
        win.launch(RunSpec(quick, name="send_report.py (pooled)"), {"pattern": "pooled"})
        win.launch(RunSpec(failing), {})
        crawl = win.launch(RunSpec(tree), {})
        QTimer.singleShot(1200, lambda: win.orch.cancel(crawl))
        QTimer.singleShot(1500, lambda: win.launch(RunSpec(train, name="train_model.py --epochs 40"), {}))
        if not win.orch.scheduler.all():
            win.orch.scheduler.add("nightly-report", RunSpec(quick), make_trigger(interval_seconds=3))
        if tab == "functions":
            from prismq_desktop.core.functions.payload import encode_call
            from prismq_desktop.core.models import TargetKind

            win.launch(RunSpec(f"{funcs}:parse_row", kind=TargetKind.FUNCTION, payload=encode_call(["12x"], {})), {})
            spec = RunSpec(f"{funcs}:resize", kind=TargetKind.FUNCTION, payload=encode_call([], {"path": "cat.png"}),
                           where="pool")
            QTimer.singleShot(1800, lambda: win.launch(spec, {}))
            win.launch_panel.set_spec(spec)
            win.launch_panel.args.setText('{"path": "cat.png", "width": 64')  # being typed: not valid yet
        if tab == "workers":
            remote = RunSpec(train, name="train_model.py (gpu)", where="remote:gpu")
            QTimer.singleShot(2000, lambda: win.launch(remote, {}))
            win.launch_panel.where.set_where("remote:gpu")
        QTimer.singleShot(2500, lambda: win.tabs.setCurrentIndex(TABS[tab]))

    QApplication.instance() or QApplication(sys.argv[:1])
    QTimer.singleShot(300, drive)
    return gui_app.main(str(home))


if __name__ == "__main__":
    sys.exit(main())
