"""Start the real app on a prepared data dir and put it in a state worth a screenshot.

    python docs/screenshots/scenario.py DATA_DIR TAB [light|dark]

Used with the screenshot tool (a real X window under a window manager):
    ../shared/tools/screenshot OUT.png --wm --size 1024x700 --wait 9 -- python docs/screenshots/scenario.py D runs dark
It launches a few real runs (a progress bar, a failing script with a traceback, a tree that
is cancelled, one left running), schedules one, then shows TAB (runs, history, scheduler,
concurrency, pool).
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from prismq_desktop.core import RunSpec
from prismq_desktop.core.schedule.scheduler import make_trigger
from prismq_desktop.gui import app as gui_app
from prismq_desktop.gui.main_window import MainWindow

TABS = {"runs": 0, "history": 1, "scheduler": 2, "concurrency": 3, "pool": 4}
SCRIPTS = Path(tempfile.mkdtemp(prefix="prismq-shot-"))


def script(name: str, body: str) -> str:
    path = SCRIPTS / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def main() -> int:
    home, tab = Path(sys.argv[1]), sys.argv[2]
    theme = sys.argv[3] if len(sys.argv) > 3 else "light"
    home.mkdir(parents=True, exist_ok=True)
    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("view/theme", theme)
    settings.sync()
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
        QTimer.singleShot(2500, lambda: win.tabs.setCurrentIndex(TABS[tab]))

    QApplication.instance() or QApplication(sys.argv[:1])
    QTimer.singleShot(300, drive)
    return gui_app.main(str(home))


if __name__ == "__main__":
    sys.exit(main())
