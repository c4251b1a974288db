"""Cross-machine guarantees over the broker's Redis: idempotency keys and schedule fire claims.

- Idempotency: ``SET prismq:idem:<key> <token|json> NX PX ttl``. The first submitter of a key
  holds it while its chain is pending (refreshed every ttl/3 by its orchestrator) and releases
  it at the end (a compare-and-delete script: only the holder's token deletes it). A holder
  that died stops refreshing, so its key *expires* after the TTL: nobody waits on a dead owner.
- Fire claims: ``SET prismq:fire:<schedule name>:<due> <host> NX EX 1 day`` per (schedule,
  fire slot). Schedules on different data dirs are told apart only by name, so two
  schedulers with the same schedule name and one Redis fire each slot once between them.

Redis is the source of truth here only for *who may act*; what happened is still recorded in
each data dir's own registry.
"""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

from prismq_desktop.core.remote.config import redis_client
from prismq_desktop.core.remote.protocol import PREFIX

IDEMPOTENCY_TTL = 60.0
FIRE_CLAIM_TTL = 86400

_RELEASE = "if string.sub(redis.call('get', KEYS[1]) or '', 1, string.len(ARGV[1])) == ARGV[1] then " \
           "return redis.call('del', KEYS[1]) else return 0 end"
_REFRESH = "if string.sub(redis.call('get', KEYS[1]) or '', 1, string.len(ARGV[1])) == ARGV[1] then " \
           "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_UPDATE = "if string.sub(redis.call('get', KEYS[1]) or '', 1, string.len(ARGV[1])) == ARGV[1] then " \
          "return redis.call('set', KEYS[1], ARGV[2], 'KEEPTTL') else return 0 end"


def idem_key(key: str) -> str:
    return f"{PREFIX}:idem:{key}"


def fire_key(schedule: str, due: float) -> str:
    return f"{PREFIX}:fire:{schedule}:{due:.6f}"


class DistributedLocks:
    """Idempotency keys and fire claims on one Redis (the broker's)."""

    def __init__(self, url: str, *, ttl: float = IDEMPOTENCY_TTL, client: Any = None) -> None:
        self.url = url
        self.ttl = ttl
        self.redis = client if client is not None else redis_client(url)
        self.host = socket.gethostname()

    # ------------------------------------------------------------------ idempotency
    def acquire(self, key: str, info: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """(token, {}) when this process now holds `key`; (None, the holder's info) when another does."""
        token = uuid.uuid4().hex
        value = f"{token}|{json.dumps({**info, 'host': self.host})}"
        if self.redis.set(idem_key(key), value, nx=True, px=int(self.ttl * 1000)):
            return token, {}
        raw = self.redis.get(idem_key(key))
        if raw is None:  # released or expired between the two calls: try once more
            if self.redis.set(idem_key(key), value, nx=True, px=int(self.ttl * 1000)):
                return token, {}
            raw = self.redis.get(idem_key(key)) or b"|{}"
        _tok, _, body = raw.decode(errors="replace").partition("|")
        try:
            holder = json.loads(body)
        except ValueError:
            holder = {}
        return None, holder if isinstance(holder, dict) else {}

    def update(self, key: str, token: str, info: dict[str, Any]) -> bool:
        """Replace the holder's info (the run id, once known), keeping the TTL; only by the holder."""
        value = f"{token}|{json.dumps({**info, 'host': self.host})}"
        return bool(self.redis.eval(_UPDATE, 1, idem_key(key), token, value))

    def refresh(self, key: str, token: str) -> bool:
        return bool(self.redis.eval(_REFRESH, 1, idem_key(key), token, int(self.ttl * 1000)))

    def release(self, key: str, token: str) -> bool:
        return bool(self.redis.eval(_RELEASE, 1, idem_key(key), token))

    # ------------------------------------------------------------------ schedule fires
    def claim_fire(self, schedule: str, due: float) -> bool:
        """True for exactly one caller per (schedule name, due time) across every machine."""
        return bool(self.redis.set(fire_key(schedule, due), self.host, nx=True, ex=FIRE_CLAIM_TTL))

    def close(self) -> None:
        try:
            self.redis.close()
        except Exception:  # noqa: BLE001 - closing a client that lost its server
            pass
