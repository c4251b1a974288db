"""Where PrismQ keeps its data: registry database and per-run logs."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_HOME = "PRISMQ_DESKTOP_HOME"


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """`--data-dir` beats `PRISMQ_DESKTOP_HOME`, which beats the platform's user data dir."""
    if override:
        path = Path(override).expanduser()
    elif os.environ.get(ENV_HOME):
        path = Path(os.environ[ENV_HOME]).expanduser()
    else:
        path = Path(platformdirs.user_data_dir("prismq-desktop", appauthor=False))
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    (path / "logs").mkdir(exist_ok=True)
    return path


def registry_path(home: Path) -> Path:
    return home / "registry.sqlite3"


def log_path(home: Path, run_id: int) -> Path:
    return home / "logs" / f"run-{run_id}.log"
