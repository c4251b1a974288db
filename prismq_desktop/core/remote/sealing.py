"""Secret values of a remote run travel sealed: Fernet-encrypted with a key both sides hold.

A run's message sits in Redis (and in its RDB/AOF files, if persistence is on) until a worker
takes it, and every client that can reach the broker can read it. So the values that would be
masked when shown (`secrets.masked_env`: secret-looking names, passwords inside URLs) and
arguments that carry secrets (``--password=x``) never go in clear: they are taken out of the
spec and put in the payload's ``sealed`` field as Fernet tokens (AES-128-CBC + HMAC-SHA256,
`cryptography`); the worker opens them just before it resolves the spec.

The key: ``PRISMQ_REMOTE_KEY`` (a Fernet key, 44 urlsafe-base64 characters), else the file
``remote.key`` in the data dir (0600; refused when others can read it). `make_key_file` writes
one (``prismq-desktop remote-key``); the user copies that file to every worker's data dir.
No key: a spec with secret values is refused before anything is sent (`SealError`, one line).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prismq_desktop.core.secrets import MASK, masked_argv, masked_env

ENV_KEY = "PRISMQ_REMOTE_KEY"
KEY_FILE = "remote.key"


class SealError(ValueError):
    """No usable key, or a token that this key cannot open; the message is one line for a person."""


def key_path(home: str | os.PathLike[str] | None) -> Path | None:
    return Path(home) / KEY_FILE if home is not None else None


def load_key(home: str | os.PathLike[str] | None) -> bytes | None:
    """The remote key (env beats file), None when neither is configured; SealError when unusable."""
    raw = (os.environ.get(ENV_KEY) or "").strip()
    where = ENV_KEY
    if not raw:
        path = key_path(home)
        if path is None or not path.exists():
            return None
        try:
            mode = path.stat().st_mode
            if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise SealError(f"{path} can be read by others (mode {stat.S_IMODE(mode):o}): chmod 600 it")
            raw = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SealError(f"cannot read the remote key {path}: {exc}") from None
        where = str(path)
    key = raw.encode("ascii", errors="replace")
    try:
        from cryptography.fernet import Fernet

        Fernet(key)
    except ImportError:
        raise SealError("sealing secret values needs the cryptography package (pip install 'prismq-desktop[remote]')") \
            from None
    except (ValueError, TypeError):
        raise SealError(f"{where} is not a remote key (make one with `prismq-desktop remote-key`)") from None
    return key


def make_key_file(home: str | os.PathLike[str]) -> tuple[Path, bool]:
    """(the key file, whether it was made now): a new Fernet key, 0600, never overwritten."""
    from cryptography.fernet import Fernet

    path = Path(home) / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path, False
    try:
        os.write(fd, Fernet.generate_key() + b"\n")
    finally:
        os.close(fd)
    return path, True


def _secret_env(env: Mapping[str, Any]) -> list[str]:
    """Names of the env entries that would be masked when shown (so: sealed when sent)."""
    plain = {str(k): None if v is None else str(v) for k, v in env.items()}
    shown = masked_env(plain)
    return [k for k, v in plain.items() if v is not None and shown[k] != v]


def _secret_args(args: Any) -> bool:
    items = args.split(" ") if isinstance(args, str) else [str(a) for a in args or ()]
    return masked_argv(items) != items


def secret_names(spec: Mapping[str, Any]) -> list[str]:
    """What in a spec dict (`RunSpec.to_dict()`) must not travel in clear: env names, and "args"."""
    names = _secret_env(spec.get("env") or {})
    if _secret_args(spec.get("args")):
        names.append("args")
    return names


def seal(spec: dict[str, Any], key: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the spec dict with secret values replaced by the mask, the sealed tokens) for the message."""
    from cryptography.fernet import Fernet

    f = Fernet(key)
    out = dict(spec)
    env = dict(out.get("env") or {})
    sealed_env = {}
    for name in _secret_env(env):
        sealed_env[name] = f.encrypt(str(env[name]).encode("utf-8")).decode("ascii")
        env[name] = MASK
    out["env"] = env
    sealed: dict[str, Any] = {"env": sealed_env}
    if _secret_args(out.get("args")):
        sealed["args"] = f.encrypt(json.dumps(out.get("args")).encode("utf-8")).decode("ascii")
        out["args"] = []
    return out, sealed


def unseal(spec: dict[str, Any], sealed: Mapping[str, Any], key: bytes | None) -> dict[str, Any]:
    """The spec dict with the sealed values put back (on the worker); SealError when it cannot."""
    if not sealed or (not sealed.get("env") and "args" not in sealed):
        return spec
    if key is None:
        raise SealError(f"the run carries sealed secret values and this worker has no remote key "
                        f"(set {ENV_KEY} or copy {KEY_FILE} into its data dir)")
    from cryptography.fernet import Fernet, InvalidToken

    f = Fernet(key)
    out = dict(spec)
    try:
        env = dict(out.get("env") or {})
        for name, token in dict(sealed.get("env") or {}).items():
            env[str(name)] = f.decrypt(str(token).encode("ascii")).decode("utf-8")
        out["env"] = env
        if "args" in sealed:
            out["args"] = json.loads(f.decrypt(str(sealed["args"]).encode("ascii")).decode("utf-8"))
    except (InvalidToken, ValueError, UnicodeError):
        raise SealError("the run's sealed secret values do not open with this worker's remote key "
                        "(it is not the submitter's key)") from None
    return out
