"""TaskStore on real files: saved task definitions survive restarts, bad files are kept aside."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from prismq_desktop.core import RunSpec
from prismq_desktop.core.patterns import Priority, TaskPattern
from prismq_desktop.core.store.tasks import TaskStore, TaskStoreError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def path(home: Path) -> Path:
    return home / "tasks.json"


def spec(target: str = "job.py", **env: str) -> RunSpec:
    """An absolute script (a relative one is saved absolute: tests/core/test_cli_promises.py)."""
    return RunSpec(os.path.join(os.path.abspath(os.sep), "srv", "jobs", target), ("--fast",), env=env)


def test_put_get_remove_and_persist(path):
    store = TaskStore(path)
    assert store.names() == [] and store.get("nightly") is None and not path.exists()
    store.put("nightly", spec("a.py"), {"pattern": TaskPattern.LONG_RUNNING, "priority": Priority.HIGH})
    store.put("hourly", spec("b.py"), {})
    again = TaskStore(path)
    assert again.names() == ["nightly", "hourly"] and again.set_aside is None
    got_spec, options = again.get("nightly")
    assert got_spec == spec("a.py")
    assert options == {"pattern": TaskPattern.LONG_RUNNING.value, "priority": Priority.HIGH.value}  # enums stored as values
    again.remove("nightly")
    again.remove("no-such-task")
    assert TaskStore(path).names() == ["hourly"]


def test_same_name_replaces_and_duplicates_get_free_names(path):
    store = TaskStore(path)
    store.put("build", spec("old.py"), {})
    store.put("build", spec("new.py"), {"max_retries": 2})
    assert store.names() == ["build"] and store.get("build") == (spec("new.py"), {"max_retries": 2})
    assert store.duplicate("build") == "build (copy)"
    assert store.duplicate("build") == "build (copy 2)"
    assert store.duplicate("missing") is None
    assert TaskStore(path).names() == ["build", "build (copy)", "build (copy 2)"]
    assert TaskStore(path).get("build (copy 2)") == store.get("build")


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_files_are_private_and_written_atomically(path):
    path.write_text("[]")
    os.chmod(path, 0o644)  # e.g. from an older version
    store = TaskStore(path)
    store.put("t", spec(), {})
    assert mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["tasks.json"]  # no temp file left behind
    out = path.parent / "exported.json"
    store.export_file(out)
    assert mode(out) == 0o600 and json.loads(out.read_text()) == store.tasks


def test_secret_looking_env_values_are_kept_as_references_to_the_real_value(path):
    """A saved task must run again with its real environment, yet never holds a secret in clear."""
    TaskStore(path).put("deploy", spec(API_TOKEN="s3cr3t", MODE="fast"), {})
    assert "s3cr3t" not in path.read_text()
    store = TaskStore(path)
    env = store.get("deploy")[0].env
    assert env["MODE"] == "fast" and env["API_TOKEN"] != "s3cr3t"
    assert store.vault.reveal_env(env) == {"API_TOKEN": "s3cr3t", "MODE": "fast"}  # what a launch gives the child


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
@pytest.mark.parametrize("content", [b"{not json", b'{"name": "x"}', b"\xff\xfe not utf-8", b""])
def test_a_corrupt_file_is_kept_aside_not_lost(path, content):
    path.write_bytes(content)
    original = path.read_bytes()
    store = TaskStore(path)  # must not raise
    assert store.names() == []
    assert store.set_aside == path.with_name("tasks.json.corrupt")
    assert store.set_aside.read_bytes() == original and mode(store.set_aside) == 0o600
    store.put("fresh", spec(), {})
    assert store.set_aside.read_bytes() == original  # saving does not touch the kept copy
    assert TaskStore(path).names() == ["fresh"]
    path.write_text("[")  # corrupt again: the earlier copy is not overwritten
    assert TaskStore(path).set_aside == path.with_name("tasks.json.corrupt-2")
    assert path.with_name("tasks.json.corrupt").read_bytes() == original


def test_valid_entries_survive_next_to_invalid_ones(path):
    good = {"name": "good", "spec": spec().to_dict(), "options": {}}
    path.write_text(json.dumps([good, {"name": "no spec"}, {"spec": spec().to_dict()},
                                {"name": "bad kind", "spec": {"target": "x", "kind": "nonsense"}}, 7]))
    original = path.read_text()
    store = TaskStore(path)
    assert store.names() == ["good"]
    assert store.set_aside is not None and store.set_aside.read_text() == original
    assert TaskStore(path).names() == ["good"] and TaskStore(path).set_aside is None  # rewritten clean


def test_import_is_all_or_nothing_with_a_one_line_error(path, tmp_path):
    store = TaskStore(path)
    store.put("kept", spec(), {})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "new", "spec": spec().to_dict()}, {"name": "broken"}]))
    with pytest.raises(TaskStoreError) as info:
        store.import_file(bad)
    assert "task 2" in str(info.value) and "says nothing about what to run" in str(info.value) and "\n" not in str(info.value)
    assert TaskStore(path).names() == ["kept"]

    one = tmp_path / "one.json"
    one.write_text(json.dumps({"name": "single", "spec": spec("s.py").to_dict(), "options": {"priority": "low"}}))
    assert store.import_file(one) == 1
    exported = tmp_path / "all.json"
    store.export_file(exported)
    other = TaskStore(tmp_path / "other.json")
    assert other.import_file(exported) == 2
    assert other.names() == ["kept", "single"] and other.get("single") == (spec("s.py"), {"priority": "low"})
    with pytest.raises(OSError):
        store.import_file(tmp_path / "does-not-exist.json")


@pytest.mark.parametrize(("content", "words"), [
    ("not json", "not valid JSON (Expecting value at line 1, column 1)"),
    ('[{"name": "x"}]', "task 1 ('x') says nothing about what to run"),
    ('[{"name": "x", "spec": {"args": []}}]', "has no script, module or command to run"),
    ('[{"name": "x", "spec": {"target": "a.py", "soft_timeout": "abc"}}]', "soft timeout must be a number of seconds"),
    ('[{"name": "x", "spec": {"target": "a.py", "hard_timeout": NaN}}]', "hard timeout must be a number of seconds"),
    ('[{"name": "x", "spec": {"target": "a.py", "env": {"A": 1}}}]', "environment must map names to text values"),
    ('[{"spec": {"target": "a.py"}}]', "task 1 has no name"),
])
def test_a_bad_import_names_the_problem_in_words_and_changes_nothing(tmp_path, content, words):
    store = TaskStore(tmp_path / "tasks.json")
    store.put("keep", RunSpec("keep.py"), {})
    bad = tmp_path / "in.json"
    bad.write_text(content, "utf-8")
    with pytest.raises(TaskStoreError) as info:
        store.import_file(bad)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert store.names() == ["keep"] and TaskStore(tmp_path / "tasks.json").names() == ["keep"]
