"""Where a live window or scheduler of a data dir listens, and its token file's name.

Kept apart from the API server (aiohttp, the orchestrator) so that `prismq-desktop submit`,
one short process per run, reads the endpoint without importing the server: ~1 s less a call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prismq_desktop.core.liveness import process_alive

TOKEN_FILE = "api-token"
ENDPOINT_FILE = "api-endpoint"

__all__ = ["ENDPOINT_FILE", "TOKEN_FILE", "process_alive", "read_endpoint"]


def read_endpoint(home: Path) -> dict[str, Any] | None:
    """Where a live window or scheduler of this data dir listens ({"url", "pid", ...}), else None."""
    try:
        data = json.loads((Path(home) / ENDPOINT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None
    if not process_alive(data.get("pid"), data.get("create_time")):
        return None
    return data
