"""The core must work where Qt is not installed (CI also runs tests/core without PySide6)."""

import subprocess
import sys
from pathlib import Path

import prismq_desktop

PACKAGE = Path(prismq_desktop.__file__).parent


def test_core_modules_do_not_import_qt():
    code = (
        "import sys, importlib, pkgutil\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('PySide6', 'shiboken6', 'qasync', 'PyQt5', 'PyQt6'):\n"
        "            raise ImportError('Qt import from core: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import prismq_desktop.core as core\n"
        "import prismq_desktop.cli\n"
        "for m in pkgutil.walk_packages(core.__path__, 'prismq_desktop.core.'):\n"
        "    if not m.name.endswith('winjob') or sys.platform == 'win32':\n"
        "        importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_no_qt_import_statements_in_core_sources():
    offenders = []
    for path in (PACKAGE / "core").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            s = line.strip()
            if s.startswith(("import ", "from ")) and any(q in s for q in ("PySide6", "shiboken6", "qasync", "PyQt")):
                offenders.append(f"{path.name}:{n}: {s}")
    assert not offenders
