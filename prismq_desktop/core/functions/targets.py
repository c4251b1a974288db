"""From a Python callable to the target a child imports ("pkg.mod:func" or "/abs/file.py:func").

Pure and import-free (beyond the stdlib), so the orchestrator's spec building can use it
without importing the decorator module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

_PY_SUFFIXES = (".py", ".pyw")


def is_function(obj: object) -> bool:
    """A `@task` wrapper or a plain function/method that another process can import by name."""
    if hasattr(obj, "__prismq_function__"):
        return True
    return callable(obj) and hasattr(obj, "__qualname__") and hasattr(obj, "__module__") and not isinstance(obj, type)


def unwrap(obj: Any) -> Callable[..., Any]:
    func = getattr(obj, "__prismq_function__", obj)
    if not callable(func):
        raise TypeError(f"{obj!r} is not callable")
    return func  # type: ignore[no-any-return]


def function_target(obj: Any) -> str:
    """The import path of `obj`; TypeError (one line) when another process could not import it."""
    func = unwrap(obj)
    qualname = getattr(func, "__qualname__", None)
    module = getattr(func, "__module__", None)
    if not qualname or not module:
        raise TypeError(f"{func!r} has no module and name to import it by; use a function defined at module level")
    if "<locals>" in qualname or "<lambda>" in qualname:
        raise TypeError(f"{qualname} is defined inside a function (or is a lambda): another process cannot import it; "
                        "define it at module level")
    if module in ("__main__", "__mp_main__"):
        main_file = getattr(sys.modules.get(module), "__file__", None)
        if not main_file:
            raise TypeError(f"{qualname} is defined in an interactive session: another process cannot import it; "
                            "put it in a module")
        return f"{os.path.abspath(main_file)}:{qualname}"
    return f"{module}:{qualname}"


def import_root(obj: Any) -> str | None:
    """The sys.path folder that `obj`'s module is imported from (so a child finds it), if known."""
    func = unwrap(obj)
    module_name = str(getattr(func, "__module__", "") or "")
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if not module_name or not path or module_name in ("__main__", "__mp_main__"):
        return None
    root: str = os.path.dirname(os.path.abspath(str(path)))
    depth = module_name.count(".") + (1 if os.path.basename(path).startswith("__init__.") else 0)
    for _ in range(depth):
        root = os.path.dirname(root)
    return root


def is_file_target(target: str) -> bool:
    return target.rpartition(":")[0].lower().endswith(_PY_SUFFIXES)
