"""The function the functions benchmark runs: its module imports something heavy (hypothesis, ~0.5 s)."""

from __future__ import annotations

import hypothesis.strategies as st


def work(n: int) -> dict[str, int]:
    """Cheap on purpose: the benchmark measures the cost around the call, not the call."""
    return {"n": n, "squares": sum(i * i for i in range(n)), "strategies": len(dir(st))}
