"""The real start-up (`prismq-desktop --data-dir D gui`, a fresh process) paints its window
without importing what only some users need: aiohttp (the local API, off by default), Celery,
Redis, kombu, keyring. They cost a third of the cold start (benchmarks/bench_gui.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

app = QApplication([sys.argv[0]])


class FirstPaint(QObject):
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint and obj.objectName() == "mainWindow" and not self.seen:
            self.seen = True
            heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))
            print("PAINTED " + json.dumps(heavy), flush=True)
            obj._quitting = True
            QTimer.singleShot(0, obj.close)  # the window's own quit path: the app ends
        return False


watcher = FirstPaint()
watcher.seen = False
app.installEventFilter(watcher)
from prismq_desktop.cli import main

sys.exit(main(["--data-dir", sys.argv[1], "gui"]))
"""

HEAVY = ["aiohttp", "celery", "kombu", "redis", "keyring", "multidict", "yarl"]


def start(home: Path, settings: str = "") -> tuple[list[str], subprocess.CompletedProcess[str]]:
    home.mkdir(parents=True, exist_ok=True)
    if settings:
        (home / "settings.ini").write_text(settings)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PRISMQ_SECRET_STORE="file")
    res = subprocess.run([sys.executable, "-c", CHILD, str(home), ",".join(HEAVY)], capture_output=True, text=True,
                         timeout=120, env=env)
    lines = [line for line in res.stdout.splitlines() if line.startswith("PAINTED ")]
    assert res.returncode == 0 and lines, (res.returncode, res.stdout[-2000:], res.stderr[-3000:])
    return json.loads(lines[0][len("PAINTED "):]), res


def test_the_window_paints_without_the_optional_heavy_modules(tmp_path: Path) -> None:
    heavy, _ = start(tmp_path / "data")
    assert heavy == []


def test_with_the_api_on_aiohttp_is_imported_and_the_api_serves(tmp_path: Path) -> None:
    # the same start with [api] listen set: the lazy import must still start the API
    heavy, res = start(tmp_path / "data", "[api]\nlisten=127.0.0.1:0\n")
    assert "aiohttp" in heavy
    log = (tmp_path / "data" / "logs" / "app.log").read_text()
    assert "API listening on" in log, (log[-2000:], res.stderr[-2000:])


def test_the_window_knows_the_api_setting_by_its_real_name() -> None:
    from prismq_desktop.core.services.api import SETTING_KEY
    from prismq_desktop.gui.app import API_SETTING

    assert API_SETTING == SETTING_KEY
