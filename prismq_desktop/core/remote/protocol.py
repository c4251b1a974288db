"""Redis key names and the run stream's entry format (shared by worker and submitter; no Redis here).

One run = one remote id (a uuid made by the submitter; local run ids are per data dir and would
collide between machines). Keys, all with a TTL once the run ends:

    prismq:run:<rid>:out     the stream: every entry the worker wrote, replayable from id 0
    prismq:run:<rid>:ctl     a list of control requests (cancel, kill, pause, resume); RPUSH by the
                             submitter, BLPOP by the worker, so a request made before the start waits
    prismq:run:<rid>:claim   the start claim (SET NX): the worker host that started it, or
                             "cancelled" when the submitter cancelled it before any worker did,
                             "withdrawn" when no worker took it in the claim timeout
    prismq:worker:<host>     a hash: the worker's heartbeat (queues, concurrency, active runs, CPU/RSS)
    prismq:worker:<host>:trees  a hash rid -> JSON {pid, create_time, tag} of the trees it runs now
    prismq:workers           a set of worker host names ever seen (stale ones are marked, not removed)

Stream entries are flat field maps (bytes): ``k`` is the kind, ``n`` a sequence number from 0
(a gap tells the reader the stream was trimmed before it read it), ``d`` the payload:

    k=o / k=e   raw output bytes of stdout / stderr (at most 64 KiB, in the child's order)
    k=s         status, UTF-8 JSON: {"event": "claimed"|"started"|"paused"|"resumed"|"end"|
                "failed_to_start", ...} (started: pid, create_time, host, argv, cwd, heartbeat;
                end: outcome, exit_code, message, and "result" for a function task:
                the runner's report, stored by the submitter like a local one)
    k=h         heartbeat, UTF-8 JSON: {"t", "cpu", "rss", "host"} every heartbeat interval
"""

from __future__ import annotations

import json
from typing import Any

PREFIX = "prismq"
WORKERS_SET = f"{PREFIX}:workers"

OUT, ERR, STATUS, HEARTBEAT = b"o", b"e", b"s", b"h"
CONTROL_COMMANDS = ("cancel", "kill", "pause", "resume")
CANCELLED_CLAIM = "cancelled"
WITHDRAWN_CLAIM = "withdrawn"  # the submitter gave up waiting for a worker: none may start it later


def stream_key(rid: str) -> str:
    return f"{PREFIX}:run:{rid}:out"


def control_key(rid: str) -> str:
    return f"{PREFIX}:run:{rid}:ctl"


def claim_key(rid: str) -> str:
    return f"{PREFIX}:run:{rid}:claim"


def worker_key(host: str) -> str:
    return f"{PREFIX}:worker:{host}"


def trees_key(host: str) -> str:
    return f"{PREFIX}:worker:{host}:trees"


def encode(kind: bytes, seq: int, payload: bytes | dict[str, Any]) -> dict[bytes, bytes]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {b"k": kind, b"n": str(seq).encode(), b"d": data}


def decode(fields: dict[bytes, bytes]) -> tuple[bytes, int, bytes]:
    """(kind, sequence number, payload) of one entry; a malformed entry is ``(b"?", -1, b"")``."""
    try:
        return fields[b"k"], int(fields[b"n"]), fields.get(b"d", b"")
    except (KeyError, ValueError):
        return b"?", -1, b""


def decode_json(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def queue_keys(queue: str) -> list[str]:
    """The Redis lists of a Celery queue, one per priority step (kombu: ``name``, ``name:N``)."""
    return [queue, *(f"{queue}:{i}" for i in range(1, 10))]
