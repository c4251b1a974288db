"""Files the app ships inside the package (so a non-editable install and the bundle find them)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def icon_path() -> Path:
    """The window icon, wherever the package was installed (wheel, editable, PyInstaller)."""
    return HERE / "prismq.png"
