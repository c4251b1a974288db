"""The window's answer to a registry it cannot use: one line and the ways out (offscreen)."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from prismq_desktop.core import RunRegistry
from prismq_desktop.core.store import RegistryCorrupt, RegistryError, RegistryLocked
from prismq_desktop.core.store.database import move_aside
from prismq_desktop.gui.app import registry_problem_box


def buttons(box: QMessageBox) -> dict[str, object]:
    return {b.text(): b for b in box.buttons()}


def test_a_damaged_file_can_be_moved_aside_and_a_fresh_one_made(qtbot, tmp_path: Path) -> None:
    db = tmp_path / "registry.sqlite"
    junk = os.urandom(8192)
    db.write_bytes(junk)
    try:
        RunRegistry(db)
    except RegistryCorrupt as exc:
        err = exc
    else:
        raise AssertionError("random bytes opened as a registry")
    box = registry_problem_box(err)
    qtbot.addWidget(box)
    assert "is damaged" in box.informativeText() and "\n" not in box.informativeText()
    found = buttons(box)
    assert set(found) == {"Open another data dir…", "Move the file aside", "Quit"}
    assert box.property("choice") == "quit"
    found["Move the file aside"].click()
    assert box.property("choice") == "aside"
    moved = move_aside(err.path, when=0)
    assert not db.exists() and moved.read_bytes() == junk  # renamed, never deleted
    assert moved.name.startswith("registry.sqlite.unusable-19")
    assert move_aside(_make(db)).name != moved.name  # a second one never overwrites the first
    RunRegistry(db).close()  # and a fresh registry opens


def _make(db: Path) -> Path:
    db.write_bytes(b"again")
    return db


def test_a_lock_offers_to_try_again(qtbot) -> None:
    box = registry_problem_box(RegistryLocked("the registry x is locked by another process for over 30s; close it"))
    qtbot.addWidget(box)
    found = buttons(box)
    assert "Try again" in found and "Move the file aside" not in found
    found["Try again"].click()
    assert box.property("choice") == "retry"


def test_other_problems_offer_another_data_dir(qtbot) -> None:
    box = registry_problem_box(RegistryError("the registry x failed: disk I/O error"))
    qtbot.addWidget(box)
    buttons(box)["Open another data dir…"].click()
    assert box.property("choice") == "other"
