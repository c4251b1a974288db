"""The broker URL, the Celery app factory and the settings every remote piece shares.

Celery is imported inside `make_app` only, so importing this module needs neither Celery nor
redis-py. Every knob that tests shorten (heartbeat interval, stream cap, TTLs) is read from the
environment once per call, so a test passes it to the worker subprocess it starts.

Delivery choice (documented in docs/architecture.md): ``task_acks_late=True`` with one message
prefetched per worker thread, so a worker that dies *before* it took a message does not lose
it (Redis gives the unacknowledged message back after the visibility timeout). A message a
worker already *started* is never run twice: the worker takes a start claim (``SET NX``) first,
and a redelivered message whose claim exists is dropped. A run whose worker died ends
``interrupted`` ("worker lost") on the submitting side; retrying it is the orchestrator's
retry policy (a new run), never a silent second execution.
"""

from __future__ import annotations

import os
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prismq_desktop.core.secrets import mask_text

mask_url = mask_text  # a broker URL as shown: its password masked

ENV_BROKER = "PRISMQ_BROKER_URL"
ENV_HEARTBEAT = "PRISMQ_REMOTE_HEARTBEAT"  # seconds between a worker's heartbeats (default 2)
ENV_STREAM_MAXLEN = "PRISMQ_REMOTE_STREAM_MAXLEN"  # entries a run's stream keeps at most (default 16384)
ENV_VISIBILITY = "PRISMQ_REMOTE_VISIBILITY_TIMEOUT"  # seconds before Redis redelivers an unacked message
ENV_CLAIM_TIMEOUT = "PRISMQ_REMOTE_CLAIM_TIMEOUT"  # seconds a run may wait with no live worker to take it

DEFAULT_HEARTBEAT = 2.0
DEFAULT_STREAM_MAXLEN = 16384  # entries of at most 64 KiB: at most 1 GiB for a run nobody reads
DEFAULT_VISIBILITY = 3600.0
#: 10 min: longer than a worker restart, a machine reboot or an autoscaler bringing one up (a
#: few minutes), short enough that a queue typo or a queue nobody serves is told the same hour.
#: The clock runs only while no live worker serves the queue (or it serves it and the queue is
#: empty, i.e. the message is gone): a run waiting behind others on a busy queue is not "lost".
DEFAULT_CLAIM_TIMEOUT = 600.0
STREAM_TTL = 7 * 86400  # a finished run's stream nobody consumed is deleted after a week
TASK_NAME = "prismq.run"
DEFAULT_QUEUE = "default"


class BrokerError(ValueError):
    """The broker URL is missing or unusable; the message is one line for a person."""


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if value > 0 else default


@dataclass(frozen=True)
class RemoteSettings:
    heartbeat: float = DEFAULT_HEARTBEAT
    stream_maxlen: int = DEFAULT_STREAM_MAXLEN
    visibility_timeout: float = DEFAULT_VISIBILITY
    claim_timeout: float = DEFAULT_CLAIM_TIMEOUT

    @classmethod
    def from_env(cls) -> RemoteSettings:
        return cls(
            heartbeat=_env_float(ENV_HEARTBEAT, DEFAULT_HEARTBEAT),
            stream_maxlen=int(_env_float(ENV_STREAM_MAXLEN, DEFAULT_STREAM_MAXLEN)),
            visibility_timeout=_env_float(ENV_VISIBILITY, DEFAULT_VISIBILITY),
            claim_timeout=_env_float(ENV_CLAIM_TIMEOUT, DEFAULT_CLAIM_TIMEOUT),
        )

    @property
    def claim_ttl(self) -> int:
        """How long a start claim lives: past any redelivery of its message."""
        return int(self.visibility_timeout * 2 + 86400)


def broker_url(explicit: str | None = None) -> str | None:
    """The broker: `explicit` (``--broker``), else ``PRISMQ_BROKER_URL``, else None."""
    url = (explicit or os.environ.get(ENV_BROKER) or "").strip()
    return url or None


def check_broker_url(url: str) -> str:
    """`url` if it is a redis:// or rediss:// URL this package can use, else `BrokerError`."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BrokerError(f"not a broker URL: {mask_url(url)} ({exc})") from None
    if parts.scheme not in ("redis", "rediss"):
        raise BrokerError(f"unsupported broker {mask_url(url)}: use redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://")
    if not parts.hostname:
        raise BrokerError(f"the broker URL names no host: {mask_url(url)}")
    if port is not None and not 0 < port < 65536:
        raise BrokerError(f"bad port in broker URL: {mask_url(url)}")
    return url


def require_broker(explicit: str | None = None) -> str:
    url = broker_url(explicit)
    if url is None:
        raise BrokerError(f"no broker configured: pass --broker redis://... or set {ENV_BROKER}")
    return check_broker_url(url)


def _ssl_options(url: str) -> dict[str, Any] | None:
    """rediss://: verify the server certificate unless the URL says otherwise (ssl_cert_reqs=...)."""
    if not url.startswith("rediss://"):
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    if "ssl_cert_reqs" in query:
        return None  # kombu/redis-py read it from the URL
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def redis_client(url: str) -> Any:
    """A redis-py client on `url` (bytes replies; TLS for rediss://). Imported here only."""
    import redis

    return redis.Redis.from_url(check_broker_url(url), socket_connect_timeout=5, health_check_interval=30,
                                **(_ssl_options(url) or {}))


def celery_priority(priority: int) -> int:
    """Our Priority (0 CRITICAL .. 3 LOW) as a Redis-transport priority (0 highest .. 9)."""
    return max(0, min(9, int(priority) * 3))


def make_app(url: str, settings: RemoteSettings | None = None, task: Callable[..., Any] | None = None) -> Any:
    """A Celery app on `url`; a worker passes its run task (worker.py's `run_task`) to register it
    under TASK_NAME, a submitter sends by that name and needs none."""
    from celery import Celery

    settings = settings or RemoteSettings.from_env()
    check_broker_url(url)
    app = Celery("prismq", broker=url, set_as_current=False)
    transport: dict[str, Any] = {
        "visibility_timeout": settings.visibility_timeout,
        "queue_order_strategy": "priority",
        "priority_steps": list(range(10)),
        "sep": ":",
    }
    app.conf.update(
        task_acks_late=True,  # see the module docstring: not lost before it started, never run twice after
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,  # results travel in the run's stream, not a result backend
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_default_queue=DEFAULT_QUEUE,
        task_create_missing_queues=True,
        broker_pool_limit=10,
    )
    ssl_opts = _ssl_options(url)
    if ssl_opts is not None:
        app.conf.broker_use_ssl = ssl_opts
    if task is not None:
        app.task(name=TASK_NAME, acks_late=True, ignore_result=True)(task)
    return app
