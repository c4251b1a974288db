"""What callers get back: one immutable result type for every pattern, and metrics."""

from __future__ import annotations

import collections
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prismq_desktop.core.models import Outcome, OutcomeKind, Run, RunStatus
from prismq_desktop.core.patterns import TaskPattern
from prismq_desktop.core.process.logfile import Stream, read_log


@dataclass(frozen=True)
class TaskResult:
    """The one result type of every pattern: a snapshot that never contradicts itself.

    For a single run, `status` and `outcome` are those of `run` (the same snapshot);
    ask the orchestrator again (`status(id)`) for a newer one. For a batch (CONCURRENT)
    `results` holds one result per item in input order and `run_id` is None; for
    FIRE_AND_FORGET the result comes back at once with status queued/running.
    """

    run_id: int | None
    pattern: TaskPattern
    batch_status: RunStatus = RunStatus.QUEUED  # only for results without a run (batches, schedules)
    batch_outcome: Outcome | None = None
    stdout: str = ""
    stderr: str = ""
    run: Run | None = None
    attempts: int = 1
    results: tuple[TaskResult, ...] = ()
    follow_up_ids: tuple[int, ...] = ()
    schedule_id: int | None = None  # PERIODIC: the schedule that was created

    @property
    def status(self) -> RunStatus:
        return self.run.status if self.run is not None else self.batch_status

    @property
    def outcome(self) -> Outcome | None:
        return self.run.outcome if self.run is not None else self.batch_outcome

    @property
    def ok(self) -> bool:
        outcome = self.outcome
        return outcome is not None and outcome.kind is OutcomeKind.SUCCEEDED

    @property
    def exit_code(self) -> int | None:
        outcome = self.outcome
        return outcome.exit_code if outcome else None

    @property
    def done(self) -> bool:
        return self.status is RunStatus.DONE

    @property
    def result(self) -> Any:
        """A function task's return value (None for scripts, while pending, or when it raised)."""
        return self.run.result_value if self.run is not None else None

    @property
    def error(self) -> dict[str, str] | None:
        """{type, message, traceback} of the exception a function task raised, else None."""
        return self.run.result_error if self.run is not None else None

    @property
    def progress(self) -> float | None:
        return self.run.progress if self.run else None

    @property
    def duration(self) -> float | None:
        return self.run.duration if self.run else None


def batch_result(pattern: TaskPattern, status: RunStatus, outcome: Outcome | None = None, *,
                 results: Sequence[TaskResult] = (), attempts: int = 1, schedule_id: int | None = None) -> TaskResult:
    """A result that stands for no single run (a batch, a schedule, an item never started)."""
    return TaskResult(None, pattern, status, outcome, results=tuple(results), attempts=attempts, schedule_id=schedule_id)


@dataclass(frozen=True)
class TaskMetrics:
    name: str
    count: int
    succeeded: int
    success_rate: float | None
    p50_seconds: float | None
    p95_seconds: float | None
    queued: int
    running: int


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def tail_from_log(path: str | None, stream: Stream, max_bytes: int = 64 * 1024) -> str:
    """The last `max_bytes` of one stream of a finished run, decoded (for results after a restart)."""
    if not path:
        return ""
    pieces: collections.deque[bytes] = collections.deque()
    size = 0
    try:
        for record, _ in read_log(path):
            if record.stream is stream:
                pieces.append(record.data)
                size += len(record.data)
                while size - len(pieces[0]) > max_bytes:
                    size -= len(pieces.popleft())
    except FileNotFoundError:  # a run that wrote nothing has no log file
        return ""
    return b"".join(pieces)[-max_bytes:].decode("utf-8", "replace").rstrip("\n")


