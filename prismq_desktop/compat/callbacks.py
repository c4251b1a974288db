"""Delivering a finished task to a callback address (`tcp://host:port` or an `http(s)://` URL).

One JSON document per task: over TCP one line (UTF-8, ending in a newline) on a fresh
connection; over HTTP one POST with `Content-Type: application/json`. A refused connection, a
failed send, a timeout or an HTTP 5xx is retried with backoff; a 2xx (or a TCP line fully
sent) ends the delivery, so it happens once. An HTTP 4xx is final.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

ATTEMPTS = 5
FIRST_DELAY = 0.2  # seconds, doubled per attempt
TIMEOUT = 5.0


class CallbackUndelivered(RuntimeError):
    """Every attempt to deliver to the address failed (the message says the last reason)."""


def check_address(address: str) -> str:
    """`address` if it is a `tcp://host:port` or `http(s)://` URL, else ValueError (one line)."""
    parts = urllib.parse.urlsplit(address)
    if parts.scheme == "tcp":
        if not parts.hostname or parts.port is None:
            raise ValueError(f"callback address {address!r} needs a host and a port: tcp://host:port")
        return address
    if parts.scheme in ("http", "https") and parts.hostname:
        return address
    raise ValueError(f"callback address {address!r} must be tcp://host:port or an http:// URL")


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, default=repr, ensure_ascii=False).encode("utf-8")


async def deliver(address: str, payload: dict[str, Any], *, attempts: int = ATTEMPTS,
                  first_delay: float = FIRST_DELAY, timeout: float = TIMEOUT) -> int:
    """Send `payload` to `address`; the number of attempts it took. CallbackUndelivered after the last."""
    check_address(address)
    body = encode(payload)
    delay = first_delay
    last = "no attempt made"
    for attempt in range(1, attempts + 1):
        try:
            if address.startswith("tcp://"):
                await _tcp(address, body, timeout)
            else:
                final = await asyncio.to_thread(_http, address, body, timeout)
                if final is not None:  # a 4xx: the receiver refused it; trying again would not help
                    raise CallbackUndelivered(f"callback {address} refused the result: {final}")
            return attempt
        except CallbackUndelivered:
            raise
        except (OSError, TimeoutError, urllib.error.URLError, _Retry) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if attempt < attempts:
            await asyncio.sleep(delay)
            delay *= 2
    raise CallbackUndelivered(f"callback {address} not delivered after {attempts} attempts ({last})")


class _Retry(Exception):
    """An HTTP 5xx: the receiver may take it later."""


async def _tcp(address: str, body: bytes, timeout: float) -> None:
    parts = urllib.parse.urlsplit(address)
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port), timeout)
    try:
        writer.write(body + b"\n")
        await asyncio.wait_for(writer.drain(), timeout)
        if writer.can_write_eof():
            writer.write_eof()
        # sent: from here on it counts as delivered (retrying could deliver it twice); give the
        # receiver a moment to close its end so it is not cut off mid-read
        try:
            await asyncio.wait_for(reader.read(), timeout)
        except (OSError, TimeoutError):
            pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


def _http(url: str, body: bytes, timeout: float) -> str | None:
    """POST the body; None when accepted, the reason when refused (4xx); _Retry for a 5xx."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the caller's own URL
            response.read()
        return None
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise _Retry(f"HTTP {exc.code}") from None
        return f"HTTP {exc.code} {exc.reason}"
