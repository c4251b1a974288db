"""The six execution patterns and PatternAdvisor, which picks one and says why.

The advisor follows the pattern guide's flowchart: schedule → PERIODIC; streaming →
LONG_RUNNING; several tasks → CONCURRENT; no result needed → FIRE_AND_FORGET;
high frequency → POOLED; otherwise SIMPLE (with a nudge to LONG_RUNNING past 60 s).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class TaskPattern(enum.StrEnum):
    SIMPLE = "simple"
    LONG_RUNNING = "long_running"
    CONCURRENT = "concurrent"
    FIRE_AND_FORGET = "fire_and_forget"
    PERIODIC = "periodic"
    POOLED = "pooled"

    @classmethod
    def parse(cls, value: str | TaskPattern | Recommendation) -> TaskPattern:
        if isinstance(value, TaskPattern):
            return value
        if isinstance(value, Recommendation):  # `pattern=PatternAdvisor.recommend(...)`, as the guide passes it
            return value.pattern
        key = value.strip().lower().replace("-", "_").replace(" ", "_")
        try:
            return cls(key)
        except ValueError:
            allowed = ", ".join(p.value for p in cls)
            raise ValueError(f"unknown pattern {value!r} (choose from {allowed})") from None


class Priority(enum.IntEnum):
    """Lower runs first; FIFO within one priority."""

    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3

    @classmethod
    def parse(cls, value: str | int | Priority) -> Priority:
        if isinstance(value, Priority):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.strip().upper()]
        except KeyError:
            allowed = ", ".join(p.name.lower() for p in cls)
            raise ValueError(f"unknown priority {value!r} (choose from {allowed})") from None


@dataclass(frozen=True)
class Recommendation:
    """A recommended pattern with its one-line reason; usable wherever a pattern is
    (`pattern=`, and it equals its TaskPattern)."""

    pattern: TaskPattern
    reason: str

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Recommendation):
            return (self.pattern, self.reason) == (other.pattern, other.reason)
        if isinstance(other, str):  # a TaskPattern is a str
            return self.pattern == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __str__(self) -> str:
        return self.pattern.value


@dataclass(frozen=True)
class PatternInfo:
    pattern: TaskPattern
    name: str
    when_to_use: str
    benefits: tuple[str, ...]
    limitations: tuple[str, ...]


_INFO: dict[TaskPattern, PatternInfo] = {
    TaskPattern.SIMPLE: PatternInfo(
        TaskPattern.SIMPLE, "Simple",
        "A task that finishes in under a minute and whose whole output you want at the end.",
        ("just call and await", "exit code, stdout and stderr in one result", "easy to reason about"),
        ("waits until the end", "no live progress", "not for long tasks"),
    ),
    TaskPattern.LONG_RUNNING: PatternInfo(
        TaskPattern.LONG_RUNNING, "Long-running",
        "A task that takes minutes or hours and should show output and progress while it runs.",
        ("live output and progress events", "cancellable from anywhere", "still returns the final result"),
        ("you handle a stream of events", "slightly more overhead than Simple"),
    ),
    TaskPattern.CONCURRENT: PatternInfo(
        TaskPattern.CONCURRENT, "Concurrent",
        "Many independent runs of the same script (a batch) that may run side by side.",
        ("parallel speed-up", "a cap on how many run at once", "results in input order"),
        ("uses more memory and CPU", "one result per item to check"),
    ),
    TaskPattern.FIRE_AND_FORGET: PatternInfo(
        TaskPattern.FIRE_AND_FORGET, "Fire-and-forget",
        "Start something in the background and look at its status later, if at all.",
        ("returns at once", "status kept in the run registry, also after a restart"),
        ("no result unless you ask for it later", "failures are easy to miss without notifications"),
    ),
    TaskPattern.PERIODIC: PatternInfo(
        TaskPattern.PERIODIC, "Periodic",
        "A task that runs on a schedule: an interval or a cron expression.",
        ("automatic runs", "overlap and catch-up policies", "enable/disable at will"),
        ("not for one-off work", "the task should be idempotent"),
    ),
    TaskPattern.POOLED: PatternInfo(
        TaskPattern.POOLED, "Pooled",
        "Many short Python runs per minute where start-up time dominates.",
        ("warm interpreters: much lower start latency", "high throughput"),
        ("Python scripts only", "pool size needs tuning"),
    ),
}


class PatternAdvisor:
    """Recommends a pattern from what you know about a task, with a one-line reason."""

    LONG_TASK_SECONDS = 60.0

    @staticmethod
    def recommend(
        expected_duration_seconds: float | None = None,
        requires_streaming: bool = False,
        concurrent_tasks: int = 1,
        needs_result: bool = True,
        recurring: bool = False,
        high_frequency: bool = False,
    ) -> Recommendation:
        if recurring:
            return Recommendation(TaskPattern.PERIODIC, "it runs on a schedule, so let the scheduler start it")
        if requires_streaming:
            return Recommendation(TaskPattern.LONG_RUNNING, "you want its output and progress while it runs")
        if concurrent_tasks > 1:
            return Recommendation(
                TaskPattern.CONCURRENT, f"{concurrent_tasks} independent runs can go side by side under a limit"
            )
        if not needs_result:
            return Recommendation(TaskPattern.FIRE_AND_FORGET, "nothing waits for its result; check its status later")
        if high_frequency:
            return Recommendation(TaskPattern.POOLED, "it runs often, so warm workers save the start-up time")
        if expected_duration_seconds is not None and expected_duration_seconds >= PatternAdvisor.LONG_TASK_SECONDS:
            return Recommendation(
                TaskPattern.LONG_RUNNING,
                f"it takes about {expected_duration_seconds:g} s, so watch it live and keep it cancellable",
            )
        return Recommendation(TaskPattern.SIMPLE, "a short task whose result you wait for")

    @staticmethod
    def explain(pattern: TaskPattern | str) -> PatternInfo:
        return _INFO[TaskPattern.parse(pattern)]

    @staticmethod
    def select(options: dict[str, Any]) -> TaskPattern:
        """The pattern `execute()` uses when none is given, from its keyword arguments.

        A schedule comes first, as in the flowchart: a periodic task may also stream.
        """
        if options.get("interval_seconds") is not None or options.get("cron") is not None:
            return TaskPattern.PERIODIC
        if options.get("streaming"):
            return TaskPattern.LONG_RUNNING
        if options.get("tasks") is not None:
            return TaskPattern.CONCURRENT
        if options.get("wait_for_result") is False:
            return TaskPattern.FIRE_AND_FORGET
        if options.get("use_pool"):
            return TaskPattern.POOLED
        return TaskPattern.SIMPLE
