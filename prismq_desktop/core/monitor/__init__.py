"""Resource monitoring: CPU/RSS of run trees and of the system, sampled off the loop.

- samples.py: what is published (`RunSample`, `SystemSample`) and returned (`RunUsage`,
  `MonitorStats`) - a leaf, stdlib only;
- monitor.py: `ResourceMonitor`, the sampler thread;
- watch.py: one watched run's state and the `TreeBackend` protocol;
- procfs.py / psutil_backend.py: the two ways of reading process trees;
- system.py: the machine's figures.

The sample types load with the package; the machinery (thread, backends, psutil) loads on first
use of `ResourceMonitor`, `Backend` or `HAS_PROCFS`, so importing `monitor.samples` (as the event
stream does) never pulls it in through this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from prismq_desktop.core.monitor.samples import MonitorStats, RunSample, RunUsage, SystemSample

if TYPE_CHECKING:
    from prismq_desktop.core.monitor.monitor import Backend, ResourceMonitor
    from prismq_desktop.core.monitor.procfs import HAS_PROCFS

_LAZY = {
    "Backend": "prismq_desktop.core.monitor.monitor",
    "ResourceMonitor": "prismq_desktop.core.monitor.monitor",
    "HAS_PROCFS": "prismq_desktop.core.monitor.procfs",
}

__all__ = ["HAS_PROCFS", "Backend", "MonitorStats", "ResourceMonitor", "RunSample", "RunUsage", "SystemSample"]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
