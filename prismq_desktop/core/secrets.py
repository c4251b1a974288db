"""Which values look secret, and how they are shown: masked everywhere but in the child itself.

A variable is secret-looking by its name (TOKEN, SECRET, PASSWORD/PASSWD, CREDENTIAL, *_KEY,
*_PAT, API keys...); any value — env or argument — that carries credentials in a URL
(`postgres://user:pw@host`) has the password part masked; an argument like `--password=x`,
`--token x` or `-p x`-style secret options has its value masked. What is shown (logs' start
records, JSON output, exports, the window) uses these; the child gets the real values.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MASK = "••••••"
SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "PRIVATE", "AUTH")
SECRET_SUFFIXES = ("KEY", "PAT", "PWD", "PASS", "CERT")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
_SECRET_OPTION = re.compile(r"^(?P<opt>--?[A-Za-z0-9_-]*(?:password|passwd|token|secret|api[-_]?key|auth)[A-Za-z0-9_-]*)"
                            r"(?P<eq>=)(?P<value>.+)$", re.IGNORECASE)


def looks_secret(name: str) -> bool:
    upper = name.upper().replace("-", "_")
    if any(marker in upper for marker in SECRET_MARKERS):
        return True
    parts = [p for p in upper.split("_") if p]
    return bool(parts) and (parts[-1] in SECRET_SUFFIXES or upper.endswith("APIKEY"))


def mask_text(value: str) -> str:
    """`value` with any password inside a URL masked (`postgres://app:••••••@db/x`)."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", value)


def masked_env(env: Mapping[str, str | None]) -> dict[str, str | None]:
    """A copy fit for logs, JSON output and exports: secret-looking values masked."""
    out: dict[str, str | None] = {}
    for key, value in env.items():
        if value is None:
            out[key] = None
        elif looks_secret(key):
            out[key] = MASK
        else:
            out[key] = mask_text(value)
    return out


def masked_argv(argv: Sequence[str]) -> list[str]:
    """Arguments fit to show: `--password=x` → `--password=••••••`, the value after a bare
    `--token`, and passwords inside URLs."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append(MASK)
            hide_next = False
            continue
        match = _SECRET_OPTION.match(arg)
        if match:
            shown.append(f"{match['opt']}={MASK}")
            continue
        if arg.startswith("-") and looks_secret(arg.lstrip("-")) and "=" not in arg:
            shown.append(arg)
            hide_next = True
            continue
        shown.append(mask_text(arg))
    return shown


def masked_spec_dict(spec: Mapping[str, object]) -> dict[str, object]:
    """A RunSpec's dict (`RunSpec.to_dict()`) fit for JSON output: env and args masked."""
    out = dict(spec)
    env = out.get("env")
    if isinstance(env, Mapping):
        out["env"] = masked_env({str(k): (None if v is None else str(v)) for k, v in env.items()})
    args = out.get("args")
    if isinstance(args, (list, tuple)):
        out["args"] = masked_argv([str(a) for a in args])
    elif isinstance(args, str):
        out["args"] = " ".join(masked_argv(args.split(" ")))
    return out


# ---------------------------------------------------------------------------- kept out of the registry

REF_PREFIX = "prismq-secret:"


class SecretMissing(ValueError):
    """A run refers to a secret value that is no longer kept (the vault file was removed)."""


class SecretVault:
    """Secret-looking env values kept out of the registry.

    What the registry stores (runs, schedules, dead letters) carries a reference
    (`prismq-secret:<digest>`) instead of the value; the value sits in `secrets.json` beside
    the registry, mode 0600, and is put back only when a run is launched. The same name and
    value always give the same reference, so reruns and schedules add nothing. (No OS
    credential store is used yet.)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._values: dict[str, str] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, str]:
        if self._values is None:
            try:
                data = json.loads(self.path.read_text("utf-8"))
                self._values = {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._values = {}
        return self._values

    def _save(self, values: dict[str, str]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(values, fh, sort_keys=True)
        os.replace(tmp, self.path)

    def protect_env(self, env: Mapping[str, str | None]) -> dict[str, str | None] | None:
        """`env` with secret-looking values replaced by references (None when there are none)."""
        if not any(v is not None and looks_secret(k) and not v.startswith(REF_PREFIX) for k, v in env.items()):
            return None
        with self._lock:
            values = dict(self._load())
            out: dict[str, str | None] = {}
            for key, value in env.items():
                if value is not None and looks_secret(key) and not value.startswith(REF_PREFIX):
                    ref = REF_PREFIX + hashlib.sha256(f"{key}\0{value}".encode("utf-8", "surrogateescape")).hexdigest()[:24]
                    values[ref] = value
                    out[key] = ref
                else:
                    out[key] = value
            if values != self._load():
                self._save(values)
                self._values = values
        return out

    def protect_dict(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """A RunSpec dict as it may be stored."""
        out = dict(spec)
        env = out.get("env")
        if isinstance(env, Mapping):
            protected = self.protect_env(env)
            if protected is not None:
                out["env"] = protected
        return out

    def reveal_env(self, env: Mapping[str, str | None]) -> dict[str, str | None] | None:
        """`env` with references replaced by their values (None when it has no references)."""
        if not any(isinstance(v, str) and v.startswith(REF_PREFIX) for v in env.values()):
            return None
        with self._lock:
            values = self._load()
        out: dict[str, str | None] = {}
        for key, value in env.items():
            if isinstance(value, str) and value.startswith(REF_PREFIX):
                if value not in values:
                    raise SecretMissing(f"the secret value of {key} is no longer kept ({self.path} lost it); "
                                        "set it again and rerun")
                out[key] = values[value]
            else:
                out[key] = value
        return out
