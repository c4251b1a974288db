"""The window's own files in the data dir (app.log and its rotations, settings.ini) are 0600."""

from __future__ import annotations

import logging
import logging.handlers
import os
import stat
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from prismq_desktop.core import paths
from prismq_desktop.gui.app import setup_logging

pytestmark = pytest.mark.posix_only  # POSIX-only: POSIX file modes and umask


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(os.stat(path).st_mode))


def test_app_log_rotations_and_settings_are_private_under_umask_022(tmp_path: Path) -> None:
    old = os.umask(0o022)
    root = logging.getLogger()
    level = root.level
    try:
        home = paths.data_dir(tmp_path / "data")
        log_path = setup_logging(home)
        handler = root.handlers[-1]
        try:
            logging.getLogger("prismq_desktop").warning("hello")
            assert isinstance(handler, logging.handlers.RotatingFileHandler)
            handler.doRollover()
            logging.getLogger("prismq_desktop").warning("after the rollover")
            handler.flush()
        finally:
            root.removeHandler(handler)
            handler.close()
        settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
        settings.setValue("run/max_concurrent", 3)
        settings.sync()
        assert settings.status() == QSettings.Status.NoError
    finally:
        os.umask(old)
        root.setLevel(level)
    rotated = Path(f"{log_path}.1")
    assert "hello" in rotated.read_text() and "after the rollover" in log_path.read_text()
    assert {p.name: mode(p) for p in (log_path, rotated, home / "settings.ini")} == {
        "app.log": "0o600", "app.log.1": "0o600", "settings.ini": "0o600"}
    assert mode(home) == "0o700" and mode(home / "logs") == "0o700"
