"""What the Workers view shows, read from the broker: workers, their queues, heartbeats, queue depths.

Qt-free and blocking (call it off the UI thread, e.g. with ``asyncio.to_thread`` once a second).
A worker is *stale* when its last heartbeat is older than `STALE_AFTER` of its own heartbeat
intervals (it may be gone: SIGKILL, machine off); it stays listed until its record expires.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from prismq_desktop.core.remote import protocol as P
from prismq_desktop.core.remote.config import redis_client

STALE_AFTER = 2.0  # heartbeat intervals


@dataclass(frozen=True)
class WorkerInfo:
    host: str
    queues: tuple[str, ...]
    concurrency: int
    active_runs: int
    last_heartbeat: float | None  # unix time
    heartbeat: float  # its interval, seconds
    cpu_percent: float | None
    rss_bytes: int | None
    pid: int | None
    stale: bool

    def age(self, now: float | None = None) -> float | None:
        if self.last_heartbeat is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.last_heartbeat)


@dataclass(frozen=True)
class QueueInfo:
    name: str
    depth: int  # messages waiting (every priority level)
    workers: int  # live (not stale) workers that take from it


@dataclass(frozen=True)
class BrokerSnapshot:
    workers: tuple[WorkerInfo, ...]
    queues: tuple[QueueInfo, ...]
    error: str | None = None  # one line when the broker could not be read


def _num(value: Any, kind: type, default: Any = None) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        return default


def _worker(host: str, fields: dict[bytes, bytes], now: float) -> WorkerInfo:
    f = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()}
    try:
        queues = tuple(str(q) for q in json.loads(f.get("queues", "[]")))
        active = len(json.loads(f.get("active", "[]")))
    except (ValueError, TypeError):
        queues, active = (), 0
    last = _num(f.get("last"), float)
    hb = _num(f.get("heartbeat"), float, 2.0) or 2.0
    stale = last is None or now - last > STALE_AFTER * hb
    return WorkerInfo(host, queues, _num(f.get("concurrency"), int, 0), active, last, hb,
                      _num(f.get("cpu"), float), _num(f.get("rss"), int), _num(f.get("pid"), int), stale)


def queue_depth(client: Any, name: str) -> int:
    """Messages waiting in a Celery queue on Redis: the list per priority step (``name``, ``name:N``)."""
    keys = [name, *(f"{name}{':'}{i}" for i in range(1, 10))]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.llen(key)
    return int(sum(int(n or 0) for n in pipe.execute()))


def snapshot(url: str, *, client: Any = None, extra_queues: tuple[str, ...] = (), now: float | None = None) -> BrokerSnapshot:
    """Every worker ever seen (stale ones marked) and every queue they take from, with its depth."""
    now = time.time() if now is None else now
    own = client is None
    r = redis_client(url) if own else client
    try:
        hosts = sorted(h.decode(errors="replace") for h in r.smembers(P.WORKERS_SET))
        workers = []
        for host in hosts:
            fields = r.hgetall(P.worker_key(host))
            if not fields:
                r.srem(P.WORKERS_SET, host)  # its record expired: long gone
                continue
            workers.append(_worker(host, fields, now))
        names = sorted({q for w in workers for q in w.queues} | set(extra_queues))
        queues = tuple(QueueInfo(n, queue_depth(r, n), sum(1 for w in workers if n in w.queues and not w.stale))
                       for n in names)
        return BrokerSnapshot(tuple(workers), queues)
    except Exception as exc:  # noqa: BLE001 - the view shows one line, never a traceback
        return BrokerSnapshot((), (), f"broker unreachable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    finally:
        if own:
            try:
                r.close()
            except Exception:  # noqa: BLE001
                pass


def check_connection(url: str, *, timeout: float = 5.0) -> tuple[bool, str]:
    """(ok, one line): can this broker be used — the URL, the connection, the password, a PING.

    Blocking (call it off the UI thread). The line never holds the password."""
    from prismq_desktop.core.remote.config import BrokerError, check_broker_url, mask_url

    url = (url or "").strip()
    if not url:
        return False, "no broker URL: type redis://[:PASSWORD@]HOST[:PORT][/DB]"
    try:
        check_broker_url(url)
    except BrokerError as exc:
        return False, str(exc)
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 6379}"
    try:
        import redis
    except ImportError:
        return False, "the remote extra is not installed: pip install 'prismq-desktop[remote]'"
    try:
        client = redis_client(url)
    except (BrokerError, ValueError) as exc:  # e.g. a db that is not a number
        return False, f"not a usable broker URL: {mask_url(url)} ({_first_line(exc)})"
    try:
        client.connection_pool.connection_kwargs["socket_timeout"] = timeout
        client.ping()
        version = client.info("server").get("redis_version", "?")
    except redis.AuthenticationError as exc:
        text = _first_line(exc).lower()
        if "without any password" in text or "no password is set" in text:
            return False, f"{where} has no password set but the URL gives one: remove it from the URL (or set requirepass)"
        if "required" in text:
            return False, f"{where} needs a password: redis://:PASSWORD@{where}"
        return False, f"wrong password for {where} (the broker refused it)"
    except redis.ResponseError as exc:
        text = _first_line(exc)
        if "NOAUTH" in text:
            return False, f"{where} needs a password: redis://:PASSWORD@{where}"
        if "WRONGPASS" in text or "invalid password" in text.lower():
            return False, f"wrong password for {where} (the broker refused it)"
        return False, f"{where} answered with an error: {mask_url(text)}"
    except redis.TimeoutError:
        return False, f"{where} did not answer within {timeout:g} s (a firewall, or not a Redis server?)"
    except redis.ConnectionError as exc:
        text = _first_line(exc)
        low = text.lower()
        if "refused" in low:
            return False, f"connection refused at {where}: is redis-server running there?"
        if "name or service not known" in low or "nodename nor servname" in low or "getaddrinfo" in low:
            return False, f"unknown host {parts.hostname!r}"
        if "ssl" in low or "certificate" in low:
            return False, f"TLS to {where} failed: {mask_url(text)}"
        return False, f"cannot connect to {where}: {mask_url(text)}"
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        return False, f"cannot use {where}: {mask_url(_first_line(exc))}"
    finally:
        try:
            client.close()
        except Exception:  # noqa: BLE001
            pass
    return True, f"connected to {mask_url(url)} (Redis {version})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
