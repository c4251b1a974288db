"""PrismQ Desktop: a desktop task monitor over a Qt-free run engine."""

from typing import Any

__version__ = "0.1.0"
APP_NAME = "PrismQ Desktop"


__all__ = ["APP_NAME", "__version__", "background", "task"]


def __getattr__(name: str) -> Any:
    """`prismq_desktop.task` / `background` without importing the core on `import prismq_desktop`."""
    if name in ("task", "background", "TaskFailed", "set_orchestrator"):
        from prismq_desktop import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module 'prismq_desktop' has no attribute {name!r}")
