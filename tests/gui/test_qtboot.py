"""The byte scan that replaces PySide6's per-import source scan gives PySide6's own answer for
every kind of module: ours, the standard library's, builtins, extension modules, a module
whose source is gone, one in a legacy encoding, one that mentions PySide6 only in a string."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import prismq_desktop.gui  # noqa: F401 - installs the scan
from prismq_desktop.gui import qtboot


def pyside_own() -> object:
    feature = sys.modules["shibokensupport.feature"]
    fast = feature._mod_uses_pyside
    assert getattr(fast, qtboot._MARK, False), "the byte scan is not installed"
    return fast.original


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_loaded_module_gets_pysides_own_answer() -> None:
    import prismq_desktop.gui.main_window  # noqa: F401 - a realistic set: the window's modules

    original = pyside_own()
    fast = sys.modules["shibokensupport.feature"]._mod_uses_pyside
    modules = [m for m in list(sys.modules.values()) if isinstance(m, ModuleType)]
    assert len(modules) > 200
    differ = [m.__name__ for m in modules if fast(m) != original(m)]  # type: ignore[operator]
    assert differ == []
    assert fast(sys.modules["prismq_desktop.gui.main_window"]) is True
    assert fast(sys.modules["json"]) is False


def test_odd_modules(tmp_path: Path) -> None:
    original = pyside_own()
    fast = sys.modules["shibokensupport.feature"]._mod_uses_pyside
    latin = tmp_path / "latin.py"
    latin.write_bytes(b"# -*- coding: latin-1 -*-\nNAME = '\xe9t\xe9 PySide6'\n")
    mentions = tmp_path / "mentions.py"
    mentions.write_text("TEXT = 'not PySide6 really'\n")
    plain = tmp_path / "plain.py"
    plain.write_text("X = 1\n")
    gone = tmp_path / "gone.py"
    gone.write_text("Y = 'PySide6'\n")
    mods = [load(latin, "qtboot_latin"), load(mentions, "qtboot_mentions"), load(plain, "qtboot_plain"),
            load(gone, "qtboot_gone")]
    gone.unlink()  # its source is no longer there: PySide6's check decides, as before
    import _sqlite3  # an extension module

    for module in [*mods, sys, _sqlite3]:
        assert fast(module) == original(module), module  # type: ignore[operator]
    assert [fast(m) for m in mods[:3]] == [True, True, False]  # type: ignore[operator]


def test_installing_twice_keeps_one_wrapper() -> None:
    feature = sys.modules["shibokensupport.feature"]
    before = feature._mod_uses_pyside
    assert qtboot.install() is True
    assert feature._mod_uses_pyside is before
