"""Where secret values live: the OS credential store when there is a real one, else a 0600 file.

The registry holds references (`prismq-secret:...`); this module keeps the values they stand
for, in one of two stores:

- `KeyringStore`: the OS credential store through the `keyring` package (Secret Service or
  KWallet on Linux, Windows Credential Manager, the macOS Keychain). One service name per data
  dir (`prismq-desktop:<data dir>`), so two data dirs never share values.
- `FileStore`: `secrets.json` beside the registry, mode 0600, merged under a file lock so two
  processes writing at once never drop each other's values.

`PRISMQ_SECRET_STORE` chooses: `auto` (default) uses the OS store only when keyring's backend is
a real one — never `fail`/`null`, an empty chainer or a plaintext `keyrings.alt` file;
`keyring` uses whatever keyring backend is configured (third-party ones too) and `file`
never asks keyring to write. Every call into keyring runs with a time limit, so a hung D-Bus
or a prompt nobody answers costs at most `timeout` seconds, never the app.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from prismq_desktop.core import paths

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

ENV_STORE = "PRISMQ_SECRET_STORE"
STORE_MODES = ("auto", "keyring", "file")
SERVICE_PREFIX = "prismq-desktop:"
DIGEST_KEY_USER = "digest-key"  # the per-data-dir HMAC key that makes references from values
DEFAULT_TIMEOUT = 10.0
# keyring's own backends that talk to a real OS credential store (the others: fail, null, chainer)
_OS_BACKEND_MODULES = ("SecretService", "kwallet", "libsecret", "Windows", "macOS")

T = TypeVar("T")
log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # with no logging set up (the CLI), the notice hooks are what the user sees


class StoreError(Exception):
    """A store could not do what was asked; the message says why in one line (never the value)."""


def store_mode(raw: str | None = None) -> tuple[str, str | None]:
    """(mode, complaint): `raw` (default: $PRISMQ_SECRET_STORE) as one of STORE_MODES; an unknown
    word means `auto`, with a sentence saying so."""
    value = os.environ.get(ENV_STORE, "") if raw is None else raw
    mode = value.strip().lower() or "auto"
    if mode in STORE_MODES:
        return mode, None
    return "auto", f"{ENV_STORE}={value!r} is not one of {', '.join(STORE_MODES)}; using auto"


def one_line(exc: BaseException, hide: str | None = None) -> str:
    """An exception as one short line, with `hide` (a value) masked should it appear in it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if hide and len(hide) >= 3 and hide in text:
        text = text.replace(hide, "••••••")
    name = type(exc).__name__
    return (text if text.startswith(name) else f"{name}: {text}")[:300]


def bounded(fn: Callable[[], T], timeout: float, what: str, hide: str | None = None) -> T:
    """fn() on a helper thread, at most `timeout` seconds; every failure becomes StoreError."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - whatever the backend raises is reported, never lost
            box["error"] = exc

    thread = threading.Thread(target=target, name="prismq-secret-store", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():  # a hung D-Bus, a prompt nobody answers: left behind (daemon thread)
        raise StoreError(f"{what} did not answer within {timeout:g} s")
    if "error" in box:
        exc = box["error"]
        assert isinstance(exc, BaseException)
        raise StoreError(one_line(exc, hide)) from exc
    return box["value"]  # type: ignore[return-value]


# ---------------------------------------------------------------------------- choosing a backend


def _describe(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _priority(backend: object) -> float | None:
    try:
        value = type(backend).priority  # type: ignore[attr-defined]
        return float(value)
    except Exception:  # noqa: BLE001 - a backend that cannot say is not usable
        return None


def _is_os_store(backend: object) -> bool:
    module = type(backend).__module__
    return any(module == f"keyring.backends.{name}" or module.startswith(f"keyring.backends.{name}.")
               for name in _OS_BACKEND_MODULES)


def find_backend(mode: str = "auto") -> tuple[KeyringBackend | None, str]:
    """(backend, description): the keyring backend to keep values in, or (None, why there is none).

    Asked afresh on every call (keyring's own choice is cached for the process): the user's
    configured backend (PYTHON_KEYRING_BACKEND, keyringrc.cfg) if any, else the viable backends
    by priority. `auto` accepts only keyring's OS backends; `keyring` any that is not fail/null.
    Only keyring's own backends are imported in `auto`, which skips the entry-point scan
    (~0.13 s here).
    """
    try:
        from keyring import backend as kb
        from keyring import core
        from keyring.backends import chainer, fail, null
    except Exception as exc:  # noqa: BLE001 - a broken install is a reason, not a crash
        return None, f"the keyring package cannot be loaded ({one_line(exc)})"
    try:
        explicit = core.load_env() or core.load_config()
    except Exception as exc:  # noqa: BLE001 - a configured backend that is not viable here
        return None, f"the configured keyring backend cannot be used ({one_line(exc)})"
    if explicit is not None:
        found: list[KeyringBackend] = [explicit]
    elif mode == "keyring":
        found = list(kb.get_all_keyring())  # includes third-party backends (entry points)
    else:
        for name in _OS_BACKEND_MODULES:
            with contextlib.suppress(Exception):
                importlib.import_module(f"keyring.backends.{name}")
        found = []
        for cls in kb.KeyringBackend.get_viable_backends():
            with contextlib.suppress(Exception):
                found.append(cls())
    candidates: list[KeyringBackend] = []
    for backend in found:
        if isinstance(backend, chainer.ChainerBackend):
            candidates.extend(b for b in backend.backends if not isinstance(b, chainer.ChainerBackend))
        else:
            candidates.append(backend)
    usable: list[tuple[float, KeyringBackend]] = []
    rejected: list[str] = []
    for backend in candidates:
        priority = _priority(backend)
        if isinstance(backend, (fail.Keyring, null.Keyring)) or priority is None or priority <= 0:
            continue
        if mode == "auto" and (priority < 1 or not _is_os_store(backend)):
            rejected.append(_describe(backend))
        else:
            usable.append((priority, backend))
    if usable:
        best = max(usable, key=lambda pair: pair[0])[1]
        return best, _describe(best)
    if rejected:
        return None, f"no OS credential store was found ({', '.join(dict.fromkeys(rejected))} is not one)"
    return None, "no OS credential store was found"


def service_name(data_dir: str | os.PathLike[str]) -> str:
    """The keyring service for one data dir: its absolute path, so two data dirs never share."""
    return SERVICE_PREFIX + str(Path(data_dir).absolute())


# ---------------------------------------------------------------------------- the two stores


class KeyringStore:
    """Values in the OS credential store, one item per reference id under one service name."""

    kind = "keyring"

    def __init__(self, service: str, backend: KeyringBackend, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.service = service
        self.backend = backend
        self.timeout = timeout
        self._digest_key: bytes | None = None

    @property
    def description(self) -> str:
        return _describe(self.backend)

    def get(self, ident: str) -> str | None:
        value = bounded(lambda: self.backend.get_password(self.service, ident), self.timeout,
                        "the OS credential store")
        return value if value is None else str(value)

    def put(self, ident: str, value: str) -> None:
        bounded(lambda: self.backend.set_password(self.service, ident, value), self.timeout,
                "the OS credential store", hide=value)

    def delete(self, ident: str) -> None:
        """Remove one item; one that is already gone is no error."""
        from keyring.errors import PasswordDeleteError

        def remove() -> None:
            try:
                self.backend.delete_password(self.service, ident)
            except PasswordDeleteError:
                pass

        bounded(remove, self.timeout, "the OS credential store")

    def digest_key(self) -> bytes:
        """The random key references are derived with (made on first use, kept in the store):
        a reference never lets someone holding the registry test guesses of a value."""
        if self._digest_key is None:
            key = self.get(DIGEST_KEY_USER)
            if not key:
                key = os.urandom(32).hex()
                self.put(DIGEST_KEY_USER, key)
            self._digest_key = key.encode("ascii", "replace")
        return self._digest_key


class FileStore:
    """Values in one JSON file, 0600, keyed by their whole reference (`prismq-secret:<digest>`,
    as the file has always been); every change re-reads and merges under a lock file."""

    kind = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._values: dict[str, str] | None = None

    def _read(self, *, for_change: bool = False) -> dict[str, str]:
        """The values on disk. Before a change, a file that cannot be read as ours (damaged by
        hand, not ours) is moved aside, never overwritten: what it held stays recoverable."""
        try:
            data = json.loads(self.path.read_text("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            if for_change:
                aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
                with contextlib.suppress(OSError):
                    os.replace(self.path, aside)
                    log.warning("%s could not be read (%s); moved to %s", self.path, one_line(exc), aside)
            return {}
        return {str(k): str(v) for k, v in data.items()}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock across processes (flock on POSIX, msvcrt on Windows)."""
        fd = paths.open_private(self.path.with_name(f".{self.path.name}.lock"), os.O_RDWR | os.O_CREAT)
        try:
            if os.name == "posix":
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            else:  # pragma: no cover - Windows
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]
            yield
        finally:
            os.close(fd)  # closing releases either lock

    def _save(self, values: Mapping[str, str]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            fd = paths.open_private(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(dict(values), fh, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise OSError(exc.errno, f"secret values cannot be saved in {self.path} "
                                     f"({exc.strerror or exc}); nothing was stored") from None

    def get(self, ident: str) -> str | None:
        if self._values is None or ident not in self._values:
            self._values = self._read()  # another process may have added it since
        return self._values.get(ident)

    def put_many(self, items: Mapping[str, str]) -> None:
        with self._locked():
            values = self._read(for_change=True)
            if all(values.get(k) == v for k, v in items.items()):
                self._values = values
                return
            values.update(items)
            self._save(values)
            self._values = values

    def delete_many(self, idents: set[str]) -> int:
        with self._locked():
            values = self._read(for_change=True)
            doomed = idents & values.keys()
            if doomed:
                for ident in doomed:
                    del values[ident]
                self._save(values)
            self._values = values
        return len(doomed)
