"""The monitor package's shape: the published records are a leaf the event stream imports alone."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import prismq_desktop.core.monitor as monitor_pkg

CORE = Path(monitor_pkg.__file__).parent.parent


def imported_modules(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_samples_is_a_stdlib_only_leaf():
    mods = imported_modules(CORE / "monitor" / "samples.py")
    assert {m.split(".")[0] for m in mods} <= set(sys.stdlib_module_names) | {"__future__"}, mods


def test_events_import_only_the_samples_of_the_monitor():
    mods = {m for m in imported_modules(CORE / "events.py") if m.startswith("prismq_desktop.core.monitor")}
    assert mods == {"prismq_desktop.core.monitor.samples"}


def test_package_exports_the_public_names():
    from prismq_desktop.core import ResourceMonitor, RunSample, RunUsage, SystemSample
    from prismq_desktop.core.monitor import HAS_PROCFS, MonitorStats
    from prismq_desktop.core.monitor.monitor import ResourceMonitor as Direct

    assert ResourceMonitor is Direct and isinstance(HAS_PROCFS, bool)
    assert {c.__module__ for c in (RunSample, RunUsage, SystemSample, MonitorStats)} == {"prismq_desktop.core.monitor.samples"}
