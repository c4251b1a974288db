"""Words for people: statuses, outcomes, exit codes, counts and the line a run ends with.

The window, the CLI and notifications say the same things the same way: "failed to start"
(never `failed_to_start`), "killed by SIGTERM" (never "-15"), "1 run" (never "1 runs").
"""

from __future__ import annotations

import math
import signal
import sys

from prismq_desktop.core.models import Outcome, OutcomeKind, Run, RunStatus

_OUTCOME_WORDS = {
    OutcomeKind.SUCCEEDED: "succeeded",
    OutcomeKind.FAILED: "failed",
    OutcomeKind.FAILED_TO_START: "failed to start",
    OutcomeKind.CANCELLED: "cancelled",
    OutcomeKind.TIMED_OUT: "timed out",
    OutcomeKind.INTERRUPTED: "interrupted",
    OutcomeKind.DEPENDENCY_FAILED: "dependency failed",
    OutcomeKind.SKIPPED: "skipped",
    OutcomeKind.MISSED: "missed",
}


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 run`, `2 runs`, `1,204 processes`."""
    word = one if count == 1 else (many or one + "s")
    return f"{count:,} {word}"


def signal_name(number: int) -> str:
    """SIGTERM for 15 (POSIX names; a number the OS does not name stays a number)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_text(code: int | None) -> str:
    """An exit status as a person reads it: `0`, `1`, `SIGTERM` for -15 (POSIX)."""
    if code is None:
        return ""
    if code < 0 and sys.platform != "win32":
        return signal_name(-code)
    return str(code)


def outcome_words(kind: OutcomeKind) -> str:
    return _OUTCOME_WORDS[kind]


def status_text(run: Run) -> str:
    """Short words for a table cell ("failed (SIGTERM)", "failed to start", "running")."""
    outcome = run.outcome
    if outcome is None:
        if run.status is RunStatus.QUEUED and run.not_before is not None:
            return "waiting to retry"
        return run.status.value
    if outcome.kind is OutcomeKind.FAILED and outcome.exit_code is not None:
        return f"failed ({exit_text(outcome.exit_code)})"
    return outcome_words(outcome.kind)


def duration_text(seconds: float | None) -> str:
    """`0.4 s`, `20.6 s`, `3m 07s`, `2h 05m`; '' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def end_line(run: Run) -> str:
    """The line a finished run's pane ends with, as VS Code's terminal does.

    "exited with code 1 after 20.6 s", "cancelled after 3.2 s (tree of 5 processes stopped)",
    "timed out after 60.0 s", "failed to start: no such file: x.py".
    """
    outcome: Outcome | None = run.outcome
    if outcome is None:
        return ""
    after = f" after {duration_text(run.duration)}" if run.duration is not None else ""
    detail = outcome.message or ""
    if outcome.kind is OutcomeKind.SUCCEEDED:
        return f"exited with code 0{after}" if not run.dry_run else f"dry run: nothing was started{after}"
    if outcome.kind is OutcomeKind.FAILED:
        code = outcome.exit_code
        if code is not None and code < 0 and sys.platform != "win32":
            return f"killed by {signal_name(-code)}{after}"
        if code is not None:
            return f"exited with code {code}{after}"
        return f"failed{after}: {detail}" if detail else f"failed{after}"
    if outcome.kind is OutcomeKind.FAILED_TO_START:
        return f"failed to start: {detail}" if detail else "failed to start"
    words = outcome_words(outcome.kind)
    marker = "(tree of "
    tree = " " + detail[detail.rindex(marker):] if marker in detail else ""
    if outcome.kind in (OutcomeKind.CANCELLED, OutcomeKind.TIMED_OUT):
        return f"{words}{after}{tree}"
    return f"{words}{after}: {detail}" if detail else f"{words}{after}"
