"""No core module reaches into another's private names (`from prismq_desktop... import _x`)."""

from __future__ import annotations

import ast
from pathlib import Path

import prismq_desktop.core

CORE = Path(prismq_desktop.core.__file__).parent


def test_no_private_name_is_imported_across_modules():
    found = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prismq_desktop"):
                found += [f"{path.relative_to(CORE)}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert found == []
