"""A plaintext keyring backend, like keyrings.alt's PlaintextKeyring (priority 0.5, values in clear
in a JSON file): what `auto` must refuse as an OS credential store and `keyring` may use.

Selected with PYTHON_KEYRING_BACKEND=plain_keyring.PlainKeyring (tests/scripts on PYTHONPATH);
the file is $PLAIN_KEYRING_FILE. $PLAIN_KEYRING_PRIORITY poses as a confident third-party backend.
"""

from __future__ import annotations

import json
import os

from keyring.backend import KeyringBackend
from keyring.compat import properties


class PlainKeyring(KeyringBackend):
    @properties.classproperty
    def priority(cls) -> float:
        return float(os.environ.get("PLAIN_KEYRING_PRIORITY", "0.5"))  # keyrings.alt's plaintext file: 0.5

    @property
    def _path(self) -> str:
        return os.environ["PLAIN_KEYRING_FILE"]

    def _load(self) -> dict[str, str]:
        try:
            with open(self._path, encoding="utf-8") as fh:
                return dict(json.load(fh))
        except FileNotFoundError:
            return {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}\0{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}\0{username}"] = password
        with open(self._path, "w", encoding="utf-8") as fh:
            json.dump(data, fh)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        data.pop(f"{service}\0{username}", None)
        with open(self._path, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
