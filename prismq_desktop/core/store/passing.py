"""Registry refusals that pass: a lock held past the busy timeout, a full disk.

What the engine and the orchestrator own (a run's record, a dead letter, a retry's new run)
is kept and written again with backoff until the registry takes it, never announced before;
a one-shot command (CLI `schedule add`, a purge) says so in one line and stops instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from prismq_desktop.core.store.schema import RegistryFull, RegistryLocked

log = logging.getLogger(__name__)

PASSING = (RegistryLocked, RegistryFull)
RETRY_FIRST = 0.05  # a refused write is tried again after this...
RETRY_MAX = 2.0  # ...doubling up to this

T = TypeVar("T")


def next_delay(delay: float) -> float:
    return min(RETRY_MAX, delay * 2)


async def until_stored(write: Callable[[], T], what: str) -> T:
    """`write()` once the registry takes it: a passing refusal is logged once and retried
    with backoff (the loop goes on meanwhile); any other error is raised."""
    delay, warned = RETRY_FIRST, False
    while True:
        try:
            result = write()
        except PASSING as exc:
            if not warned:
                log.warning("%s: %s; kept and retried", what, exc)
                warned = True
            await asyncio.sleep(delay)
            delay = next_delay(delay)
            continue
        if warned:
            log.info("%s: stored", what)
        return result
