"""Which values look secret, and how they are shown: masked everywhere but in the child itself.

A variable is secret-looking by its name (TOKEN, SECRET, PASSWORD/PASSWD, CREDENTIAL, *_KEY,
*_PAT, API keys...); any value — env or argument — that carries credentials in a URL
(`postgres://user:pw@host`) has the password part masked; an argument like `--password=x`,
`--token x` or `-p x`-style secret options has its value masked. What is shown (logs' start
records, JSON output, exports, the window) uses these; the child gets the real values.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prismq_desktop.core import paths, secret_store

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # with no logging set up (the CLI), the notice hooks are what the user sees

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
KEYRING_REF_PREFIX = REF_PREFIX + "keyring:"  # the value is in the OS credential store
_REF = re.compile(r"prismq-secret:(?:keyring:)?[0-9a-f]{8,64}")
RETRY_KEYRING_AFTER = 60.0  # seconds a failed OS store is left alone before it is tried again
REWRITE_AFTER = 5.0  # seconds a stored value is trusted to still be in its store (see protect_env)

#: data dirs this process has told where their secret values went (one notice each)
_told: set[str] = set()
_told_lock = threading.Lock()


class SecretMissing(ValueError):
    """A run refers to a secret value that is no longer kept (the vault file was removed)."""


class SecretUnavailable(SecretMissing):
    """A run's secret value is in the OS credential store, which cannot be read right now."""


def references(text: str) -> set[str]:
    """Every vault reference in a stored spec's JSON."""
    return set(_REF.findall(text))


class SecretVault:
    """Secret-looking env values kept out of the registry.

    What the registry stores (runs, schedules, dead letters) carries a reference instead of
    the value, and the value is put back only when a run is launched (reruns and schedules
    still get it). The value lives in the OS credential store when there is a real one
    (`prismq-secret:keyring:<id>`), else — or when that store fails for a write — in
    `secrets.json` beside the registry, 0600 (`prismq-secret:<id>`, the older form, still
    read), and the user is told once per process. A reference is read from the store it
    names, whatever `PRISMQ_SECRET_STORE` says now. The same name and value give the same
    reference, so reruns and schedules add nothing.
    """

    def __init__(self, path: str | os.PathLike[str], *, store: str | None = None,
                 timeout: float = secret_store.DEFAULT_TIMEOUT) -> None:
        """`path`: the secrets.json file (its folder is the data dir); `store`: auto, keyring or
        file (default: $PRISMQ_SECRET_STORE, else auto); `timeout`: seconds per keyring call."""
        self.path = Path(path)
        self.mode, self._bad_mode = secret_store.store_mode(store)
        self.timeout = timeout
        self.file = secret_store.FileStore(self.path)
        #: called with each notice sentence (the engine publishes it as a Notice: the window's status bar)
        self.on_notice: Callable[[str], object] | None = None
        self._keyring: secret_store.KeyringStore | None = None
        self._keyring_why: str | None = None  # why there is no OS store (when last looked for)
        self._looked_at = 0.0
        self._keyring_down_until = 0.0
        # (name, value) -> (its reference, when it was last put in its store), this process
        self._written: dict[tuple[str, str], tuple[str, float]] = {}
        self._revealed: dict[str, str] = {}  # reference -> value, this process
        self._lock = threading.RLock()

    # -- where values go

    @property
    def home(self) -> Path:
        return self.path.parent

    def _tell(self, text: str, key: str | None = None) -> None:
        """One line, once per process and data dir: stderr in the CLI, the window's status bar."""
        key = key or str(self.home.absolute())
        with _told_lock:
            if key in _told:
                return
            _told.add(key)
        log.warning("%s", text)
        for hook in (paths.notice, self.on_notice):
            if hook is not None:
                try:
                    hook(text)
                except Exception:  # noqa: BLE001 - telling must never cost the value
                    log.exception("a secret-store notice hook failed")

    def _find_keyring(self) -> secret_store.KeyringStore | None:
        """The OS store to read keyring references from (looked for again a minute after none was found:
        a desktop's keyring daemon may start after the app)."""
        if self._keyring is None and (self._keyring_why is None
                                      or time.monotonic() - self._looked_at > RETRY_KEYRING_AFTER):
            self._looked_at = time.monotonic()
            mode = "keyring" if self.mode == "keyring" else "auto"
            try:
                backend, why = secret_store.bounded(lambda: secret_store.find_backend(mode), self.timeout,
                                                    "looking for the OS credential store")
            except secret_store.StoreError as exc:
                backend, why = None, str(exc)
            if backend is None:
                self._keyring_why = why
            else:
                self._keyring = secret_store.KeyringStore(secret_store.service_name(self.home), backend, self.timeout)
        return self._keyring

    def _write_keyring(self) -> secret_store.KeyringStore | None:
        """The OS store new values go to, or None: the file (saying why, once)."""
        if self._bad_mode:
            self._tell(self._bad_mode, key=f"mode:{self._bad_mode}")
        if self.mode == "file":
            return None
        if time.monotonic() < self._keyring_down_until:
            return None
        store = self._find_keyring()
        if store is None:
            self._tell(f"secret values are kept in {self.path} (0600): {self._keyring_why}; "
                       f"set {secret_store.ENV_STORE}=file to choose that")
        return store

    @property
    def store_kind(self) -> str:
        """Where the next new value goes now: "keyring" or "file"."""
        with self._lock:
            if self.mode == "file" or time.monotonic() < self._keyring_down_until:
                return "file"
            return "file" if self._find_keyring() is None else "keyring"

    # -- storing

    def protect_env(self, env: Mapping[str, str | None], *, refresh: bool = True) -> dict[str, str | None] | None:
        """`env` with secret-looking values replaced by references (None when there are none).

        A value this process stored is not stored again for a snapshot update (`refresh=False`)
        or within REWRITE_AFTER seconds (a burst of runs); a new row past that stores it again,
        in case another process released it meanwhile (it deleted the last row using it).
        Raises OSError (one line) only when the value can be kept nowhere (the file store's
        disk is full): then nothing is stored and the caller stores nothing either."""
        if not any(v is not None and looks_secret(k) and not v.startswith(REF_PREFIX) for k, v in env.items()):
            return None
        with self._lock:
            out: dict[str, str | None] = {}
            to_file: dict[str, str] = {}
            new: dict[tuple[str, str], str] = {}
            for key, value in env.items():
                if value is None or not looks_secret(key) or value.startswith(REF_PREFIX):
                    out[key] = value
                    continue
                ref = new.get((key, value))
                known = self._written.get((key, value))
                if ref is None and known is not None and (not refresh or time.monotonic() - known[1] < REWRITE_AFTER):
                    ref = known[0]
                if ref is None:
                    ref = self._put_keyring(key, value)
                if ref is None:
                    ref = REF_PREFIX + hashlib.sha256(f"{key}\0{value}".encode("utf-8", "surrogateescape")).hexdigest()[:24]
                    to_file[ref] = value  # keyed by the whole reference, as secrets.json always was
                new[(key, value)] = ref
                out[key] = ref
            if to_file:
                self.file.put_many(to_file)  # OSError: nothing is remembered as written
            now = time.monotonic()
            for pair, ref in new.items():
                self._written[pair] = (ref, now)
                self._revealed[ref] = pair[1]
        return out

    def _put_keyring(self, key: str, value: str) -> str | None:
        """The value into the OS store: its reference, or None (the file takes it, said once)."""
        store = self._write_keyring()
        if store is None:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 (surrogate-escaped): OS stores take text only
            self._tell(f"a secret value that is not UTF-8 text is kept in {self.path} (0600)")
            return None
        try:
            digest = hmac.new(store.digest_key(), f"{key}\0{value}".encode("utf-8", "surrogateescape"),
                              hashlib.sha256).hexdigest()[:24]
            store.put(digest, value)
        except secret_store.StoreError as exc:
            self._keyring_down_until = time.monotonic() + RETRY_KEYRING_AFTER
            self._tell(f"the OS credential store failed ({exc}); secret values are kept in {self.path} (0600) instead")
            return None
        return KEYRING_REF_PREFIX + digest

    def protect_dict(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """A RunSpec dict as it may be stored."""
        out = dict(spec)
        env = out.get("env")
        if isinstance(env, Mapping):
            protected = self.protect_env(env)
            if protected is not None:
                out["env"] = protected
        return out

    # -- reading

    def reveal_env(self, env: Mapping[str, str | None]) -> dict[str, str | None] | None:
        """`env` with references replaced by their values (None when it has no references).

        Raises SecretMissing (the value is gone) or SecretUnavailable (its store cannot be
        read now), each one line that names the variable, never a value."""
        if not any(isinstance(v, str) and v.startswith(REF_PREFIX) for v in env.values()):
            return None
        out: dict[str, str | None] = {}
        with self._lock:
            for key, value in env.items():
                if isinstance(value, str) and value.startswith(REF_PREFIX):
                    out[key] = self._reveal(key, value)
                else:
                    out[key] = value
        return out

    def _reveal(self, key: str, ref: str) -> str:
        if ref in self._revealed:
            return self._revealed[ref]
        if ref.startswith(KEYRING_REF_PREFIX):
            store = self._find_keyring()
            if store is None:
                raise SecretUnavailable(f"the secret value of {key} is in the OS credential store, which is not "
                                        f"available now ({self._keyring_why}); unlock it and rerun")
            try:
                value = store.get(ref[len(KEYRING_REF_PREFIX):])
            except secret_store.StoreError as exc:
                raise SecretUnavailable(f"the secret value of {key} is in the OS credential store, which cannot be "
                                        f"read now ({exc}); unlock it and rerun") from None
            if value is None:
                raise SecretMissing(f"the secret value of {key} is no longer in the OS credential store "
                                    f"({store.service}); set it again and rerun")
        else:
            value = self.file.get(ref)
            if value is None:
                raise SecretMissing(f"the secret value of {key} is no longer kept ({self.path} lost it); "
                                    "set it again and rerun")
        self._revealed[ref] = value
        return value

    # -- forgetting

    def forget(self, refs: set[str]) -> int:
        """Remove these references' values from their stores (the registry no longer uses them);
        how many were released. A store that cannot be reached keeps them (logged): deleting
        history never fails because of it."""
        if not refs:
            return 0
        removed = 0
        with self._lock:
            file_refs = {r for r in refs if not r.startswith(KEYRING_REF_PREFIX)}
            keyring_ids = {r[len(KEYRING_REF_PREFIX):] for r in refs if r.startswith(KEYRING_REF_PREFIX)}
            if file_refs:
                try:
                    removed += self.file.delete_many(file_refs)
                except OSError as exc:
                    log.warning("unused secret values stay in %s: %s", self.path, exc)
            if keyring_ids:
                store = self._find_keyring()
                for ident in sorted(keyring_ids):
                    if store is None:
                        log.warning("unused secret values stay in the OS credential store: %s", self._keyring_why)
                        break
                    try:
                        store.delete(ident)
                        removed += 1
                    except secret_store.StoreError as exc:
                        log.warning("unused secret values stay in the OS credential store: %s", exc)
                        break
            self._written = {pair: known for pair, known in self._written.items() if known[0] not in refs}
            for ref in refs:
                self._revealed.pop(ref, None)
        return removed
