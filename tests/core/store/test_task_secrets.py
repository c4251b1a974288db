"""Saved tasks keep secret values out of tasks.json: vault references, the real value at launch.

Real files, a real registry and a real child that prints what it got; the secret store is the
0600 file (the suite's PRISMQ_SECRET_STORE=file; tests/core/test_secret_store.py covers keyring).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from prismq_desktop.core import RunSpec
from prismq_desktop.core.engine import RunEngine
from prismq_desktop.core.models import OutcomeKind, RunMode
from prismq_desktop.core.secrets import REF_PREFIX
from prismq_desktop.core.services.history import delete_runs
from prismq_desktop.core.store.tasks import TaskStore

SECRET = "s3cr3t-task-value"
PY = sys.executable


def echo_spec() -> RunSpec:
    return RunSpec(PY, ("-S", "-c", "import os; print(os.environ['API_TOKEN'])"),
                   env={"API_TOKEN": SECRET, "MODE": "fast"})


def no_secret_bytes(home: Path) -> None:
    for f in home.rglob("*"):
        if f.is_file() and f.name != "secrets.json":
            assert SECRET.encode() not in f.read_bytes(), f


def test_a_saved_tasks_secret_is_a_reference_and_the_run_gets_the_value(home: Path) -> None:
    engine = RunEngine(home, mode=RunMode.LOCAL)
    try:
        store = TaskStore(home / "tasks.json", engine.registry.vault)
        store.put("deploy", echo_spec(), {})
        text = (home / "tasks.json").read_text()
        assert SECRET not in text and REF_PREFIX in text and '"MODE": "fast"' in text
        spec, _ = TaskStore(home / "tasks.json").get("deploy")  # a fresh store (next start) reads it back
        assert spec.env["API_TOKEN"].startswith(REF_PREFIX) and spec.env["MODE"] == "fast"
        handle = engine.run_blocking(spec)
        assert handle.run.outcome.kind is OutcomeKind.SUCCEEDED, handle.run.outcome
        assert SECRET in Path(handle.run.log_path).read_text(errors="replace")  # the child's own output
    finally:
        engine.close()


def test_deleting_the_last_run_keeps_a_value_a_saved_task_still_uses(home: Path) -> None:
    engine = RunEngine(home, mode=RunMode.LOCAL)
    try:
        store = TaskStore(home / "tasks.json", engine.registry.vault)
        store.put("deploy", echo_spec(), {})
        run = engine.run_blocking(store.get("deploy")[0])
        delete_runs(engine.registry, [run.id])
        assert engine.registry.count() == 0
        again = engine.run_blocking(store.get("deploy")[0])  # the value is still kept for the task
        assert again.run.outcome.kind is OutcomeKind.SUCCEEDED, again.run.outcome
    finally:
        engine.close()


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_an_older_file_with_clear_values_is_rewritten_with_references(home: Path) -> None:
    path = home / "tasks.json"
    path.write_text(json.dumps([{"name": "old", "spec": echo_spec().to_dict(), "options": {}}]))
    path.chmod(0o600)
    store = TaskStore(path)
    assert SECRET not in path.read_text()
    assert store.get("old")[0].env["API_TOKEN"].startswith(REF_PREFIX)
    export = home / "shared.json"
    assert store.export_file(export) == ["old: API_TOKEN"]  # references are left out of exports too
    assert "API_TOKEN" not in json.loads(export.read_text())[0]["spec"]["env"]
    no_secret_bytes(home)
