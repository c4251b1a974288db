"""Run history operations shared by the window and the CLI: delete, retention, export.

Every function takes the `RunRegistry` to work on; nothing here builds an engine or
touches Qt. Runs that are still active (queued, running, paused) are never deleted.

Retention keeps today's semantics: `keep_days` deletes finished runs created more than
that many days ago, `keep_runs` deletes finished runs beyond the newest N finished ones,
both together delete the union. `None` means "no limit" (keep forever / keep all). The
front ends map their "0 = forever" fields to `None` (`RetentionPolicy.from_form` and
`RetentionPolicy.from_settings`); a literal 0 passed here means what the registry makes
of it (every finished run is beyond the limit).

A *stored* setting never deletes anything the user did not choose: missing, empty, any
zero (`0`, `"0"`, `"0.0"`, written by older versions for "forever") and the words
`forever` / `all` / `none` all mean "keep everything".
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from prismq_desktop.core.models import Run
from prismq_desktop.core.secrets import masked_argv, masked_env
from prismq_desktop.core.store.atomic import atomic_writer
from prismq_desktop.core.store.query import RunQuery
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.core.wording import plural

_CHUNK = 500  # ids per DELETE (well under SQLite's bound-variable limit)
_PAGE = 5000  # rows per export query


# ---------------------------------------------------------------------------- deleting


@dataclass(frozen=True)
class Deletion:
    """What a delete or a retention pass removed."""

    run_ids: tuple[int, ...] = ()  # registry rows deleted
    log_paths: tuple[str, ...] = ()  # log files removed from disk
    skipped_active: tuple[int, ...] = ()  # asked for, but still active: kept
    log_errors: tuple[str, ...] = ()  # "path: reason" for log files that could not be removed

    @property
    def runs(self) -> int:
        return len(self.run_ids)

    @property
    def logs(self) -> int:
        return len(self.log_paths)


def delete_logs(paths: Iterable[str | None]) -> tuple[list[str], list[str]]:
    """Remove these log files; (removed, errors). A file already gone is neither."""
    removed: list[str] = []
    errors: list[str] = []
    for path in sorted({p for p in paths if p}):
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
            continue
        removed.append(path)
    return removed, errors


def _delete_rows(registry: RunRegistry, run_ids: Sequence[int]) -> int:
    deleted = 0
    for i in range(0, len(run_ids), _CHUNK):
        deleted += registry.delete(list(run_ids[i : i + _CHUNK]))
    return deleted


def delete_runs(registry: RunRegistry, run_ids: Iterable[int]) -> Deletion:
    """Delete these runs and their log files. Active runs and unknown ids are skipped."""
    doomed: list[int] = []
    logs: list[str | None] = []
    active: list[int] = []
    for run_id in dict.fromkeys(run_ids):
        run = registry.get(run_id)
        if run is None:
            continue
        if run.is_active:
            active.append(run_id)
            continue
        doomed.append(run_id)
        logs.append(run.log_path)
    _delete_rows(registry, doomed)
    removed, errors = delete_logs(logs)
    return Deletion(tuple(doomed), tuple(removed), tuple(active), tuple(errors))


# ---------------------------------------------------------------------------- retention


@dataclass(frozen=True)
class RetentionPolicy:
    """How much finished history to keep. `None` = no limit on that axis."""

    keep_days: float | None = None
    keep_runs: int | None = None

    def __post_init__(self) -> None:
        if self.keep_days is not None and not (self.keep_days >= 0 and self.keep_days < float("inf")):
            raise ValueError(f"keep_days must be a non-negative number of days, got {self.keep_days!r}")
        if self.keep_runs is not None and not 0 <= self.keep_runs < 2**63:
            raise ValueError(f"keep_runs must be a non-negative whole number, got {self.keep_runs!r}")

    @property
    def keeps_everything(self) -> bool:
        return self.keep_days is None and self.keep_runs is None

    @classmethod
    def from_form(cls, keep_days: int, keep_runs: int) -> RetentionPolicy:
        """From the window's spin boxes, where 0 shows as "forever" / "all"."""
        return cls(keep_days=float(keep_days) if keep_days else None, keep_runs=int(keep_runs) if keep_runs else None)

    @classmethod
    def from_settings(cls, keep_days: object, keep_runs: object) -> RetentionPolicy:
        """From stored settings values (`history/keep_days`, `history/keep_runs`).

        Missing, empty, zero in any spelling (0, "0", "0.0") or a word such as "forever" /
        "all" = no limit on that axis. Raises ValueError (one line) for a value that is not a
        number.
        """
        return cls(keep_days=_setting_days(keep_days), keep_runs=_setting_runs(keep_runs))

    def describe(self) -> str:
        parts = []
        if self.keep_days is not None:
            parts.append(f"runs from the last {self.keep_days:g} day(s)")
        if self.keep_runs is not None:
            parts.append(f"the newest {plural(self.keep_runs, 'finished run')}")
        return "keep everything" if not parts else "keep " + " and at most ".join(parts)


_NO_LIMIT_WORDS = frozenset({"", "forever", "all", "none", "never", "unlimited", "no limit"})


def _setting(raw: object, key: str) -> str | int | float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ValueError(f"setting {key} is not a number: {raw!r}")
    if isinstance(raw, str):
        text = raw.strip()
        return None if text.lower() in _NO_LIMIT_WORDS else text
    return raw


def _number(value: str | int | float, key: str, raw: object, what: str = "a number") -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"setting {key} is not {what}: {raw!r}") from None
    if number != number:  # NaN
        raise ValueError(f"setting {key} is not {what}: {raw!r}")
    return number


def _setting_days(raw: object) -> float | None:
    key = "history/keep_days"
    value = _setting(raw, key)
    if value is None:
        return None
    days = _number(value, key, raw)
    return None if days == 0 else days  # 0 is how older versions stored "forever"


def _setting_runs(raw: object) -> int | None:
    key = "history/keep_runs"
    value = _setting(raw, key)
    if value is None:
        return None
    what = "a whole number"
    try:
        runs = int(value)
    except ValueError:
        number = _number(value, key, raw, what)
        if number != 0:  # "0.0" is zero; "1.5" is no whole number
            raise ValueError(f"setting {key} is not {what}: {raw!r}") from None
        runs = 0
    else:
        if isinstance(value, float) and value != runs:
            raise ValueError(f"setting {key} is not {what}: {raw!r}")
    return None if runs == 0 else runs  # 0 is how older versions stored "all"


def retention_candidates(registry: RunRegistry, policy: RetentionPolicy) -> list[tuple[int, str | None]]:
    """(id, log_path) of the finished runs `policy` would delete, oldest id first.

    Only runs that are done are candidates, so an active run is never deleted; a preview
    and the apply that follows it select the same runs (ties broken by id).
    """
    if policy.keeps_everything:
        return []
    return registry.retention_victims(keep_days=policy.keep_days, keep_runs=policy.keep_runs)


def preview_retention(registry: RunRegistry, policy: RetentionPolicy) -> int:
    """How many runs `apply_retention(registry, policy)` would delete now."""
    return len(retention_candidates(registry, policy))


def apply_retention(registry: RunRegistry, policy: RetentionPolicy) -> Deletion:
    """Delete the finished runs beyond `policy`, and their log files."""
    doomed = retention_candidates(registry, policy)
    ids = [run_id for run_id, _ in doomed]
    _delete_rows(registry, ids)
    removed, errors = delete_logs(path for _, path in doomed)
    return Deletion(tuple(ids), tuple(removed), (), tuple(errors))


# ---------------------------------------------------------------------------- export

ExportFormat = Literal["csv", "json"]

#: columns of a CSV export, in order (a JSON export has every field of `export_row`)
CSV_FIELDS = ("id", "name", "pattern", "trigger", "status", "outcome", "exit_code", "error", "started_at",
              "ended_at", "duration", "peak_cpu", "peak_rss", "log_path")


def run_to_json(run: Run) -> dict[str, Any]:
    """A run as plain JSON values (what `prismq-desktop history --json` prints)."""
    return {
        "id": run.id,
        "run_key": run.key,  # the caller-chosen id (`run_id="x"`, `run --run-id`), or null
        "name": run.name,
        "status": run.status.value,
        "outcome": run.outcome.kind.value if run.outcome else None,
        "exit_code": run.exit_code,
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration": run.duration,
        "mode": run.mode,
        "dry_run": run.dry_run,
        "argv": masked_argv(run.argv),
        "cwd": run.cwd,
        "pid": run.pid,
        "log_path": run.log_path,
        # a function task's return value (null for scripts), and the exception it raised
        "result": _result_json(run),
        "result_error": run.result_error,
        "where": run.spec.where,
        "worker_host": run.worker_host,
    }


def _result_json(run: Run) -> Any:
    """The return value as JSON; a pickled one is never unpickled here (shown as its base64)."""
    if not run.result:
        return None
    if run.spec.serializer.value == "pickle" and '"pickle"' in run.result:
        return {"pickle_base64": json.loads(run.result).get("pickle")}
    return run.result_value


def export_row(run: Run) -> dict[str, Any]:
    """`run_to_json` plus what the History tab shows; secret-looking env values are masked."""
    row = run_to_json(run)
    row.update(pattern=run.pattern.value, trigger=run.trigger, peak_cpu=run.peak_cpu, peak_rss=run.peak_rss,
               env=masked_env(dict(run.spec.env)))
    return row


def export_format(path: str | os.PathLike[str]) -> ExportFormat:
    """JSON for a `.json` file name, CSV for anything else."""
    return "json" if os.fspath(path).lower().endswith(".json") else "csv"


def write_runs(runs: Iterable[Run], path: str | os.PathLike[str], fmt: ExportFormat | None = None) -> int:
    """Write `export_row` of each run to `path` (atomically, mode 0600); the number written."""
    rows = [export_row(run) for run in runs]
    if (fmt or export_format(path)) == "json":
        with atomic_writer(path) as fh:
            fh.write(json.dumps(rows, indent=2))
    else:
        with atomic_writer(path, newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(CSV_FIELDS), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return len(rows)


def iter_history(registry: RunRegistry, query: RunQuery = RunQuery(), page: int = _PAGE) -> Iterator[Run]:
    """Every run matching `query`, in its order, read a page at a time (each run once)."""
    seen: set[int] = set()
    offset = 0
    while True:
        runs = registry.query(replace(query, limit=page, offset=offset))
        for run in runs:
            if run.id not in seen:  # a run inserted meanwhile shifts later pages by one
                seen.add(run.id)
                yield run
        if len(runs) < page:
            return
        offset += page


def export_history(registry: RunRegistry, path: str | os.PathLike[str], query: RunQuery = RunQuery(),
                   fmt: ExportFormat | None = None) -> int:
    """Export every run matching `query` (all pages) to CSV or JSON; the number of runs written."""
    return write_runs(iter_history(registry, query), path, fmt)
