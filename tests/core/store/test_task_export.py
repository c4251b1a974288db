"""A shared task file never carries secret values; an import says which ones to set again."""

from __future__ import annotations

import json

from prismq_desktop.core.models import RunSpec
from prismq_desktop.core.store.tasks import TaskStore


def test_export_leaves_secrets_out_and_import_names_them(tmp_path):
    store = TaskStore(tmp_path / "tasks.json")
    store.put("deploy", RunSpec("deploy.py", env={"API_TOKEN": "s3cr3t-value", "DB_PASSWORD": "hunter2", "MODE": "prod",
                                                  "DROP_ME": None}), {"priority": "high"})
    store.put("plain", RunSpec("plain.py", env={"A": "1"}), {})
    out = tmp_path / "shared.json"
    left_out = store.export_file(out)
    text = out.read_text("utf-8")
    assert "s3cr3t-value" not in text and "hunter2" not in text
    assert left_out == ["deploy: API_TOKEN", "deploy: DB_PASSWORD"]
    data = {t["name"]: t for t in json.loads(text)}
    assert data["deploy"]["spec"]["env"] == {"MODE": "prod", "DROP_ME": None}
    assert data["deploy"]["secrets_left_out"] == ["API_TOKEN", "DB_PASSWORD"]
    assert "secrets_left_out" not in data["plain"]
    # the store itself still has the values (a saved task must run again here)
    assert store.vault.reveal_env(store.get("deploy")[0].env)["API_TOKEN"] == "s3cr3t-value"
    other = TaskStore(tmp_path / "other" / "tasks.json")
    assert other.import_file(out) == 2
    assert other.missing_secrets == ["deploy: API_TOKEN", "deploy: DB_PASSWORD"]
    assert "API_TOKEN" not in other.get("deploy")[0].env
