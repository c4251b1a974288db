"""A cheaper answer to the question PySide6 asks of every module imported after it.

shiboken's import hook (`shibokensupport.feature.feature_imported`, PYSIDE-2029) decides
for each newly imported module whether `from __feature__ import ...` switching applies to
it: "does its source contain the string PySide6?". It answers with `inspect.getsource`
(the linecache, the encoding cookie, the module lookup): ~0.4 ms a module, and the window
imports ~250 modules after PySide6 - a fifth of its cold start (issue 17). The same
question is answered here by reading the module's .py file as bytes; anything that is not
a readable .py file goes to PySide6's own check, so the answer never differs.

Nothing here is needed for correctness: a PySide6 without the hook (or another layout)
leaves it as it is.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

_MARK = "_prismq_fast_scan"


def uses_pyside(module: ModuleType, fallback: Callable[[ModuleType], bool]) -> bool:
    """"PySide6" in the module's source, read as bytes from its .py file (else `fallback`)."""
    path = getattr(module, "__file__", None)
    if isinstance(path, str) and path.endswith(".py"):
        try:
            with open(path, "rb") as fh:
                source = fh.read()
        except OSError:
            return fallback(module)
        try:
            return "PySide6" in source.decode("utf-8")
        except UnicodeDecodeError:  # a legacy encoding cookie: PySide6's own check decodes it
            return fallback(module)
    return fallback(module)


def install() -> bool:
    """Put the byte scan in place of PySide6's source scan; True if it is (now or already) in place."""
    try:
        import shiboken6  # noqa: F401 - loads shibokensupport, whose feature module holds the hook
    except ImportError:
        return False
    feature: Any = sys.modules.get("shibokensupport.feature") or sys.modules.get("PySide6.support.feature")
    original = getattr(feature, "_mod_uses_pyside", None)
    if original is None or not callable(original):
        return False
    if getattr(original, _MARK, False):
        return True

    def _mod_uses_pyside(module: ModuleType) -> bool:
        return uses_pyside(module, original)

    setattr(_mod_uses_pyside, _MARK, True)
    _mod_uses_pyside.original = original  # type: ignore[attr-defined]
    feature._mod_uses_pyside = _mod_uses_pyside
    return True
