"""Saved task definitions: a JSON file (`tasks.json`) in the data dir.

Each entry is `{"name": ..., "spec": RunSpec.to_dict(), "options": {...}}`, written atomically
with mode 0600. Secret-looking environment values are stored as the same vault references
the registry uses (the values live in the OS credential store or secrets.json; a run started
from the task gets the real value at launch), never in clear; a file from an older version
holding clear values is rewritten with references when loaded. A file that cannot be read is never overwritten: it is
renamed to `tasks.json.corrupt` (or `.corrupt-2`, ...) and `set_aside` says where it went.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from prismq_desktop.core.models import RunSpec, absolute_spec
from prismq_desktop.core.secrets import SecretVault, looks_secret
from prismq_desktop.core.store.atomic import PRIVATE_MODE, atomic_write_text

log = logging.getLogger(__name__)


class TaskStoreError(ValueError):
    """A task file (saved or imported) that is not a list of valid task entries."""


def _check_entry(item: object, where: str) -> dict[str, Any]:
    """The entry in its stored form; TaskStoreError (one line) when it is not a valid task."""
    if not isinstance(item, dict):
        raise TaskStoreError(f"{where}: expected an object with name and spec, got {type(item).__name__}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TaskStoreError(f"{where} has no name (every task needs a non-empty \"name\")")
    spec = item.get("spec")
    if not isinstance(spec, dict):
        raise TaskStoreError(f"{where} ({name!r}) says nothing about what to run (no \"spec\" object)")
    options = item.get("options", {})
    if not isinstance(options, dict):
        raise TaskStoreError(f"{where} ({name!r}): its options must be an object of name: value pairs")
    target = spec.get("target")
    if not isinstance(target, str) or not target.strip():
        raise TaskStoreError(f"{where} ({name!r}) has no script, module or command to run (\"target\" is missing)")
    for key, label in (("soft_timeout", "soft timeout"), ("hard_timeout", "hard timeout"), ("grace_period", "grace period")):
        value = spec.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise TaskStoreError(f"{where} ({name!r}): the {label} must be a number of seconds, not {value!r}")
    env = spec.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in env.items()):
        raise TaskStoreError(f"{where} ({name!r}): the environment must map names to text values")
    try:
        RunSpec.from_dict(spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise TaskStoreError(f"{where} ({name!r}) cannot be read as a run: {exc}") from None
    return {"name": name, "spec": spec, "options": options}


def _plain_options(options: dict[str, Any]) -> dict[str, Any]:
    """Enums (pattern, priority, ...) as their values, so the file is plain JSON."""
    return {k: (v.value if hasattr(v, "value") else v) for k, v in options.items()}


class TaskStore:
    """Saved task definitions, one JSON file, written atomically (mode 0600) on every change."""

    def __init__(self, path: str | os.PathLike[str], vault: SecretVault | None = None) -> None:
        self.path = Path(path)
        # the registry's vault (same data dir: same secrets.json and keyring service)
        self.vault = vault if vault is not None else SecretVault(self.path.parent / "secrets.json")
        self.tasks: list[dict[str, Any]] = []
        self.set_aside: Path | None = None  # where an unreadable file was moved on load
        self.missing_secrets: list[str] = []  # "task: VAR" left out of the last imported file
        self._load()

    # -- loading
    def _load(self) -> None:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            self._set_aside(f"cannot read it: {exc}")
            return
        try:
            data = json.loads(text)
        except ValueError as exc:
            self._set_aside(f"not JSON: {exc}")
            return
        if not isinstance(data, list):
            self._set_aside(f"expected a list of tasks, got {type(data).__name__}")
            return
        good: list[dict[str, Any]] = []
        bad: list[str] = []
        for i, item in enumerate(data, 1):
            try:
                entry = _check_entry(item, f"entry {i}")
            except TaskStoreError as exc:
                bad.append(str(exc))
                continue
            good = [t for t in good if t["name"] != entry["name"]] + [entry]
        self.tasks = good
        clear = [t for t in good if self._protected(t["spec"]) is not t["spec"]]
        if clear and not bad:  # an older file with secret values in clear: references from now on
            for task in clear:
                task["spec"] = self._protected(task["spec"])
            try:
                self.save()
            except (OSError, TaskStoreError) as exc:
                log.error("saved tasks in %s hold secret values in clear and cannot be rewritten: %s", self.path, exc)
        if bad:
            # keep the whole original aside, then write back the entries that are fine
            self._set_aside("; ".join(bad))
            if good:
                self.save()

    def _set_aside(self, reason: str) -> None:
        target = self.path.with_name(self.path.name + ".corrupt")
        n = 2
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{n}")
            n += 1
        try:
            os.replace(self.path, target)
            os.chmod(target, PRIVATE_MODE)
        except OSError as exc:
            # cannot move it: keep it where it is and refuse to overwrite it this session
            log.error("saved tasks in %s are unreadable (%s) and cannot be set aside: %s", self.path, reason, exc)
            self.set_aside = self.path
            return
        self.set_aside = target
        log.warning("saved tasks in %s are unreadable (%s); the file was kept as %s", self.path, reason, target)

    # -- writing
    def save(self) -> None:
        if self.set_aside == self.path:
            raise TaskStoreError(f"{self.path} is unreadable and was not moved aside; not overwriting it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.tasks, indent=2))

    # -- queries and changes
    def names(self) -> list[str]:
        return [str(t["name"]) for t in self.tasks]

    def __contains__(self, name: object) -> bool:
        return any(t["name"] == name for t in self.tasks)

    def put(self, name: str, spec: RunSpec, options: dict[str, Any]) -> None:
        """Add a task, or replace the one with this name (names are unique)."""
        self._put(name, absolute_spec(spec).to_dict(), _plain_options(options))  # runs later, from anywhere
        self.save()

    def _protected(self, spec: dict[str, Any]) -> dict[str, Any]:
        """`spec` with secret-looking env values as vault references (the same dict when none).
        TaskStoreError (one line) when the value can be kept nowhere (a full disk)."""
        env = spec.get("env") or {}
        try:
            protected = self.vault.protect_env(env)
        except OSError as exc:
            raise TaskStoreError(f"cannot keep the task's secret values: {exc}") from None
        return spec if protected is None else {**spec, "env": protected}

    def _put(self, name: str, spec: dict[str, Any], options: dict[str, Any]) -> None:
        entry = {"name": name, "spec": self._protected(spec), "options": options}
        for i, task in enumerate(self.tasks):
            if task["name"] == name:
                self.tasks[i] = entry
                break
        else:
            self.tasks.append(entry)

    def get(self, name: str) -> tuple[RunSpec, dict[str, Any]] | None:
        for task in self.tasks:
            if task["name"] == name:
                return RunSpec.from_dict(task["spec"]), dict(task.get("options", {}))
        return None

    def remove(self, name: str) -> None:
        self.tasks = [t for t in self.tasks if t["name"] != name]
        self.save()

    def copy_name(self, name: str) -> str:
        """A free name for a copy of `name`: "name (copy)", then "name (copy 2)", ..."""
        candidate = f"{name} (copy)"
        n = 2
        while candidate in self:
            candidate = f"{name} (copy {n})"
            n += 1
        return candidate

    def duplicate(self, name: str) -> str | None:
        """Save a copy of the task under a free name; the new name, or None if there is no such task."""
        found = self.get(name)
        if found is None:
            return None
        new_name = self.copy_name(name)
        self.put(new_name, *found)
        return new_name

    # -- import and export
    def import_file(self, path: str | os.PathLike[str]) -> int:
        """Add (or replace by name) the tasks in a file of one task or a list; all or nothing."""
        try:
            data = json.loads(Path(path).read_text("utf-8"))
        except UnicodeDecodeError:
            raise TaskStoreError("not a text file (expected JSON exported by PrismQ Desktop)") from None
        except json.JSONDecodeError as exc:
            raise TaskStoreError(f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
        items = data if isinstance(data, list) else [data]
        entries = [_check_entry(item, f"task {i}") for i, item in enumerate(items, 1)]
        self.missing_secrets = [f"{item['name']}: {key}" for item in items if isinstance(item, dict)
                                for key in item.get("secrets_left_out", []) or []]
        for entry in entries:
            self._put(entry["name"], RunSpec.from_dict(entry["spec"]).to_dict(), dict(entry["options"]))
        self.save()
        return len(entries)

    def export_file(self, path: str | os.PathLike[str]) -> list[str]:
        """Write every task to a file to share; secret-looking env values are left out.

        An exported file leaves this machine's private data dir, so a value whose name looks
        secret (TOKEN, PASSWORD, KEY...) is not written: the entry lists it under
        `secrets_left_out` and an import says which ones to set again. Returns those names.
        """
        left_out: list[str] = []
        shared = []
        for task in self.tasks:
            spec = dict(task["spec"])
            env = dict(spec.get("env") or {})
            secret = sorted(k for k, v in env.items() if v is not None and looks_secret(k))
            for key in secret:
                del env[key]
            spec["env"] = env
            entry = {**task, "spec": spec}
            if secret:
                entry["secrets_left_out"] = secret
                left_out += [f"{task['name']}: {key}" for key in secret]
            shared.append(entry)
        atomic_write_text(path, json.dumps(shared, indent=2))
        return left_out
