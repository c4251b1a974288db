"""How failed attempts are retried: which outcomes, how many times, how long to wait."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from prismq_desktop.core.models import Outcome, OutcomeKind


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed attempt is retried: exponential backoff with jitter, capped.

    `retry_on` holds outcome names ("failed", "timed_out", "failed_to_start") and/or exit
    codes; when it holds exit codes, "failed" runs are retried only for those codes.
    """

    max_retries: int = 0
    base: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    jitter: float = 0.25
    retry_on: tuple[str | int, ...] = ("failed", "timed_out")

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.base < 0 or self.factor < 1 or self.cap < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("backoff needs base >= 0, factor >= 1, cap >= 0 and 0 <= jitter <= 1")
        normalised: list[str | int] = []
        for item in self.retry_on:
            if isinstance(item, str):
                name = item.strip().lower().replace("-", "_")
                name = {"timeout": "timed_out", "exit_code": "failed"}.get(name, name)
                if name not in ("failed", "timed_out", "failed_to_start"):
                    raise ValueError(f"retry_on: unknown outcome {item!r} (failed, timed_out, failed_to_start or exit codes)")
                normalised.append(name)
            else:
                normalised.append(int(item))
        object.__setattr__(self, "retry_on", tuple(normalised))

    def matches(self, outcome: Outcome) -> bool:
        codes = {c for c in self.retry_on if isinstance(c, int)}
        if outcome.kind is OutcomeKind.FAILED:
            if codes:
                return outcome.exit_code in codes
            return "failed" in self.retry_on
        return outcome.kind.value in self.retry_on and outcome.kind in (OutcomeKind.TIMED_OUT, OutcomeKind.FAILED_TO_START)

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number `attempt + 1` (attempt counts from 1)."""
        raw = min(self.cap, self.base * self.factor ** (attempt - 1))
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, min(self.cap, raw * (1 + spread)))

    def to_dict(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries, "base": self.base, "factor": self.factor, "cap": self.cap,
                "jitter": self.jitter, "retry_on": list(self.retry_on)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        return cls(int(data.get("max_retries", 0)), float(data.get("base", 1.0)), float(data.get("factor", 2.0)),
                   float(data.get("cap", 60.0)), float(data.get("jitter", 0.25)),
                   tuple(data.get("retry_on", ("failed", "timed_out"))))
