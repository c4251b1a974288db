"""Which values look secret, and how they are shown: masked everywhere but in the child itself.

A variable is secret-looking by its name (TOKEN, SECRET, PASSWORD/PASSWD, CREDENTIAL, *_KEY,
*_PAT, API keys...); any value — env or argument — that carries credentials in a URL
(`postgres://user:pw@host`) has the password part masked; an argument like `--password=x`,
`--token x` or `-p x`-style secret options has its value masked. What is shown (logs' start
records, JSON output, exports, the window) uses these; the child gets the real values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

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
