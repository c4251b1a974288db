"""The broker URL the window uses: kept in the secret store, never in settings.ini in clear.

settings.ini holds only the vault reference (`prismq-secret:...`) under BROKER_KEY; the URL
itself (password and all) goes where secret env values go (`SecretVault`: the OS credential
store, else the 0600 secrets.json). Without a saved one, $PRISMQ_BROKER_URL is used, as the
command line does.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QSettings

from prismq_desktop.core.remote.config import BrokerError, broker_url, check_broker_url
from prismq_desktop.core.secrets import REF_PREFIX, SecretVault

BROKER_KEY = "remote/broker_url"
VAULT_NAME = "PRISMQ_BROKER_URL_PASSWORD"  # the name the value is stored under (it looks secret: it is)

log = logging.getLogger(__name__)


def save_broker_url(settings: QSettings, vault: SecretVault, url: str) -> None:
    """Store `url` (empty: none) as a vault reference. OSError (one line) when it can be kept nowhere."""
    url = url.strip()
    if not url:
        settings.remove(BROKER_KEY)
        settings.sync()
        return
    protected = vault.protect_env({VAULT_NAME: url})
    ref = (protected or {}).get(VAULT_NAME)
    if not ref or not ref.startswith(REF_PREFIX):  # never write the URL itself
        raise OSError("the broker URL cannot be kept in the secret store")
    settings.setValue(BROKER_KEY, ref)
    settings.sync()


def saved_broker_url(settings: QSettings, vault: SecretVault) -> tuple[str | None, str | None]:
    """(the saved URL or None, why it cannot be read or None)."""
    raw = str(settings.value(BROKER_KEY) or "").strip()
    if not raw:
        return None, None
    if not raw.startswith(REF_PREFIX):
        return None, "the saved broker URL is not a secret-store reference; set it again in Settings"
    try:
        revealed = vault.reveal_env({VAULT_NAME: raw}) or {}
    except Exception as exc:  # noqa: BLE001 - SecretMissing/SecretUnavailable: one line
        return None, f"the broker URL cannot be read: {exc}"
    return revealed.get(VAULT_NAME), None


def window_broker(settings: QSettings, vault: SecretVault) -> tuple[str | None, str | None]:
    """(the broker the window uses, a problem to tell): the saved one, else $PRISMQ_BROKER_URL."""
    url, problem = saved_broker_url(settings, vault)
    url = url or broker_url()
    if url is None:
        return None, problem
    try:
        return check_broker_url(url), problem
    except BrokerError as exc:
        return None, f"broker not used: {exc}"
