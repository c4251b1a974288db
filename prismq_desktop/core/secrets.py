"""Which environment values look secret, and how they are shown: masked everywhere but the child."""

from __future__ import annotations

from collections.abc import Mapping

SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL")
MASK = "••••••"


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def masked_env(env: Mapping[str, str | None]) -> dict[str, str | None]:
    """A copy fit for logs, the registry's display and exports: secret-looking values masked."""
    return {k: (MASK if v is not None and looks_secret(k) else v) for k, v in env.items()}
