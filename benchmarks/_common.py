"""Shared helpers for the benchmarks: statistics, the figure table, and the JSON result file.

Every `bench_*.py` builds a list of figures with `figure()`, prints them with `print_table()`
and saves them with `write_result()` into `benchmarks/out/<name>.json`; `run_all.py` turns
those files into `benchmarks/RESULTS.md`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "out")

#: What every Python child started by the engine gets (see prismq_desktop.core.process.launch.CHILD_DEFAULTS);
#: the raw baselines give their children the same so both sides run identical children.
CHILD_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONUTF8": "1"}


def child_env() -> dict[str, str]:
    return dict(os.environ, **CHILD_ENV)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    data = sorted(values)
    if not data:
        return math.nan
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def figure(
    name: str,
    engine: float | None,
    raw: float | None = None,
    *,
    unit: str = "",
    goal: float | None = None,
    goal_kind: str = "max_ratio",
    note: str = "",
    ratio: float | None = None,
) -> dict[str, Any]:
    """One row of a result table.

    goal_kind:
      - "max_ratio": met when engine/raw <= goal
      - "min_ratio": met when engine/raw >= goal (a rate that should come close to the baseline's)
      - "max_value": met when engine <= goal (no baseline needed)
      - "equal":     met when engine == raw (exact check, e.g. bytes in the log)
      - "info":      no goal

    `ratio` overrides engine/raw (e.g. a median of paired ratios).
    """
    if ratio is None and engine is not None and raw not in (None, 0):
        ratio = engine / raw
    met: bool | None = None
    if goal_kind == "max_ratio" and goal is not None and ratio is not None:
        met = ratio <= goal
    elif goal_kind == "min_ratio" and goal is not None and ratio is not None:
        met = ratio >= goal
    elif goal_kind == "max_value" and goal is not None and engine is not None:
        met = engine <= goal
    elif goal_kind == "equal":
        met = engine == raw
    return {
        "figure": name,
        "engine": engine,
        "raw": raw,
        "unit": unit,
        "ratio": ratio,
        "goal": goal,
        "goal_kind": goal_kind,
        "met": met,
        "note": note,
    }


def fmt_value(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def fmt_goal(row: dict[str, Any]) -> str:
    kind, goal, unit = row["goal_kind"], row["goal"], row["unit"]
    if kind == "max_ratio" and goal is not None:
        return f"≤ {goal:.2f}×"
    if kind == "min_ratio" and goal is not None:
        return f"≥ {goal:.2f}×"
    if kind == "max_value" and goal is not None:
        return f"≤ {fmt_value(goal, unit)}"
    if kind == "equal":
        return "= baseline"
    return "—"


def fmt_met(row: dict[str, Any]) -> str:
    met = row["met"]
    return "—" if met is None else ("yes" if met else "**NO**")


def table_rows(figures: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for row in figures:
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}×"
        rows.append(
            [
                row["figure"],
                fmt_value(row["engine"], row["unit"]),
                fmt_value(row["raw"], row["unit"]),
                ratio,
                fmt_goal(row),
                fmt_met(row).replace("**", ""),
            ]
        )
    return rows


HEADERS = ["figure", "engine", "raw baseline", "ratio", "goal", "met?"]


def print_table(title: str, figures: Sequence[dict[str, Any]], notes: Sequence[str] = ()) -> None:
    rows = [HEADERS, *table_rows(figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    line = "  ".join("-" * w for w in widths)
    print()
    print(title)
    print(line)
    for i, r in enumerate(rows):
        print("  ".join(cell.ljust(w) if j == 0 else cell.rjust(w) for j, (cell, w) in enumerate(zip(r, widths, strict=True))))
        if i == 0:
            print(line)
    print(line)
    for note in notes:
        print(f"  * {note}")
    sys.stdout.flush()


def write_result(
    name: str,
    title: str,
    figures: Sequence[dict[str, Any]],
    *,
    quick: bool,
    notes: Sequence[str] = (),
    details: dict[str, Any] | None = None,
) -> str:
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, f"{name}.json")
    doc = {
        "name": name,
        "title": title,
        "quick": quick,
        "time": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": sys.version.split()[0],
        "figures": list(figures),
        "notes": list(notes),
        "details": details or {},
    }
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, ensure_ascii=False)
    os.replace(tmp, path)
    return path
