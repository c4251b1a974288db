"""When a schedule fires: interval, cron and one-shot triggers, all timezone-aware.

Every next fire time is computed from the trigger itself (never "now + interval"), so
a late wake-up does not shift later fires: there is no drift.

Cron expressions are parsed by croniter (maintained; never hand-rolled): 5 fields
(minute hour day month weekday), 6 fields with *seconds first* (as in Quartz and
node-cron), and the aliases @yearly/@annually, @monthly, @weekly, @daily/@midnight,
@hourly. They are evaluated in the schedule's timezone. Daylight-saving rules:

* spring forward - a wall time that does not exist (02:30 on the day clocks jump from
  02:00 to 03:00) fires once, at the first valid moment after it (03:00);
* fall back - a wall time that happens twice fires once for expressions with a fixed
  hour (``30 2 * * *``), but every real occurrence for expressions whose hour field is
  a wildcard or step (``*/30 * * * *`` keeps firing every 30 minutes of real time).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

#: Interval bounds for schedules a person creates or edits (`validate_trigger`): a floor so a
#: typo (``--every 0.000001``) cannot start hundreds of runs a second, a ceiling so the next
#: fire stays a date the machine can show. Read at call time (tests may lower the floor).
MIN_INTERVAL_SECONDS = 1.0
MAX_INTERVAL_SECONDS = 366 * 86400.0
#: Unix times a trigger may name: 1970 .. 9999 (what every platform's time_t and datetime hold).
_MAX_TS = 253402300799.0

ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


class TriggerError(ValueError):
    """A trigger that cannot be used (bad cron expression, bad interval, unknown timezone)."""


def zone(name: str | None) -> ZoneInfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # on first use: not on every start-up

    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise TriggerError(f"unknown timezone {name!r}") from None


def _aware(when: datetime, tz: ZoneInfo) -> datetime:
    return when.replace(tzinfo=tz) if when.tzinfo is None else when.astimezone(tz)


def _from_ts(ts: float, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ts, UTC).astimezone(tz)


@dataclass(frozen=True)
class IntervalTrigger:
    """Every `seconds` from `start` (the grid), optionally until `end`."""

    seconds: float
    start: float  # unix time of the first fire
    end: float | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise TriggerError(f"interval must be a positive number of seconds, got {self.seconds!r}")
        check_time("interval start", self.start)
        if self.end is not None:
            check_time("interval end", self.end)
        zone(self.timezone)

    kind = "interval"

    def next_after(self, ts: float) -> float | None:
        """The first grid time strictly after `ts`."""
        if ts < self.start:
            nxt = self.start
        else:
            k = math.floor((ts - self.start) / self.seconds) + 1
            nxt = self.start + k * self.seconds
            while nxt <= ts:  # float rounding can land exactly on (or just before) `ts`
                k += 1
                nxt = self.start + k * self.seconds
        if self.end is not None and nxt > self.end:
            return None
        return nxt

    def describe(self) -> str:
        return "every " + describe_seconds(self.seconds)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "interval", "seconds": self.seconds, "start": self.start, "end": self.end, "timezone": self.timezone}


@dataclass(frozen=True)
class CronTrigger:
    expression: str
    timezone: str = "UTC"

    kind = "cron"

    def __post_init__(self) -> None:
        expr = " ".join(self.expression.split())
        object.__setattr__(self, "expression", expr)
        zone(self.timezone)
        fields = expr.split()
        if expr.lower() in ALIASES:
            return
        if len(fields) not in (5, 6):
            raise TriggerError(f"cron expression {expr!r} has {len(fields)} fields; use 5 (or 6 with seconds first)")
        from croniter import croniter  # only when a cron schedule exists: not on every start-up

        try:
            croniter(expr, datetime.now(UTC), second_at_beginning=len(fields) == 6)
        except (ValueError, KeyError) as exc:  # croniter's CroniterBadCronError is a ValueError
            raise TriggerError(f"invalid cron expression {expr!r}: {exc}") from None

    @property
    def _fixed_hour(self) -> bool:
        expr = self.expression.lower()
        if expr in ALIASES:
            return expr != "@hourly"
        fields = expr.split()
        hour = fields[2] if len(fields) == 6 else fields[1]
        return "*" not in hour and "/" not in hour

    def _iter(self, ts: float) -> Iterator[datetime]:
        tz = zone(self.timezone)
        six = len(self.expression.split()) == 6
        from croniter import croniter

        it = croniter(self.expression, _from_ts(ts, tz), second_at_beginning=six)
        while True:
            yield it.get_next(datetime)

    def next_after(self, ts: float) -> float | None:
        for when in self._iter(ts):
            fire = when.timestamp()
            if fire <= ts:
                continue
            if self._fixed_hour and _second_occurrence(when):
                continue  # the repeated hour at fall-back: a fixed-time job fires once
            return fire
        return None  # pragma: no cover - the iterator is endless

    def describe(self) -> str:
        return describe_cron(self.expression)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "cron", "expression": self.expression, "timezone": self.timezone}


@dataclass(frozen=True)
class OneShotTrigger:
    at: float
    timezone: str = "UTC"

    kind = "once"

    def __post_init__(self) -> None:
        check_time("one-shot time", self.at)
        zone(self.timezone)

    def next_after(self, ts: float) -> float | None:
        return self.at if self.at > ts else None

    def describe(self) -> str:
        return "once at " + _from_ts(self.at, zone(self.timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "once", "at": self.at, "timezone": self.timezone}


Trigger = IntervalTrigger | CronTrigger | OneShotTrigger


def check_time(label: str, ts: float) -> None:
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or not 0 <= ts <= _MAX_TS:
        raise TriggerError(f"{label} is not a date between 1970 and 9999: {ts!r}")


def validate_trigger(trigger: Trigger, now: float) -> Trigger:
    """Refuse what a person must not save (raises TriggerError with a one-line message).

    An interval below `MIN_INTERVAL_SECONDS` or above `MAX_INTERVAL_SECONDS`, and a one-shot
    time not after `now` (it would never fire). The constructors already refuse NaN,
    infinity and times outside 1970..9999; this adds what depends on policy and the clock.
    """
    if isinstance(trigger, IntervalTrigger):
        check_interval(trigger.seconds)
        if trigger.end is not None and trigger.end < trigger.start:
            raise TriggerError("the interval's end is before its first fire")
    elif isinstance(trigger, OneShotTrigger) and trigger.at <= now:
        raise TriggerError(f"{describe_at(trigger)} is in the past; choose a time that is still to come")
    return trigger


def check_interval(seconds: float) -> float:
    """`seconds` if it is a usable schedule interval, else TriggerError."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise TriggerError(f"interval must be a finite number of seconds, got {seconds!r}")
    if seconds < MIN_INTERVAL_SECONDS:
        raise TriggerError(f"interval must be at least {MIN_INTERVAL_SECONDS:g} s, got {seconds:g} s")
    if seconds > MAX_INTERVAL_SECONDS:
        raise TriggerError(f"interval must be at most {describe_seconds(MAX_INTERVAL_SECONDS)} "
                           f"({MAX_INTERVAL_SECONDS:g} s), got {seconds:g} s")
    return float(seconds)


def describe_at(trigger: OneShotTrigger) -> str:
    return "the time " + _from_ts(trigger.at, zone(trigger.timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _second_occurrence(when: datetime) -> bool:
    """Is `when` the later of two identical wall-clock times (the fall-back hour)?"""
    naive = when.replace(tzinfo=None)
    tz = when.tzinfo
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return False
    return when.utcoffset() == second.utcoffset()


def trigger_from_dict(data: dict[str, Any]) -> Trigger:
    kind = data.get("kind")
    tz = data.get("timezone") or "UTC"
    if kind == "interval":
        return IntervalTrigger(float(data["seconds"]), float(data["start"]), data.get("end"), tz)
    if kind == "cron":
        return CronTrigger(str(data["expression"]), tz)
    if kind == "once":
        return OneShotTrigger(float(data["at"]), tz)
    raise TriggerError(f"unknown trigger kind {kind!r}")


def parse_when(text: str, tz_name: str = "UTC") -> float:
    """An ISO date-time (local to `tz_name` unless it has an offset) → unix time."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TriggerError(f"not a date-time: {text!r} (use e.g. 2026-12-01T09:30)") from None
    return _aware(when, zone(tz_name)).timestamp()


def next_fires(trigger: Trigger, n: int = 5, after: float | None = None) -> list[float]:
    """The next `n` fire times (for showing a person what a trigger means)."""
    out: list[float] = []
    ts = datetime.now(UTC).timestamp() if after is None else after
    for _ in range(n):
        nxt = trigger.next_after(ts)
        if nxt is None:
            break
        out.append(nxt)
        ts = nxt
    return out


def describe_seconds(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}" if n != 1 else unit
    if seconds == int(seconds):
        n = int(seconds)
        return f"{n} seconds" if n != 1 else "second"
    return f"{seconds:g} seconds"


_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def describe_cron(expression: str) -> str:
    """Plain words for common cron shapes ("at 02:00 on weekdays"); the expression otherwise."""
    expr = expression.strip().lower()
    named = {"@yearly": "once a year", "@annually": "once a year", "@monthly": "at midnight on the 1st of each month",
             "@weekly": "at midnight on Sundays", "@daily": "every day at midnight", "@midnight": "every day at midnight",
             "@hourly": "every hour"}
    if expr in named:
        return named[expr]
    fields = expr.split()
    if len(fields) == 6:
        sec, fields = fields[0], fields[1:]
        if sec != "0":
            return f"cron '{expression}'"
    minute, hour, dom, month, dow = fields
    if minute.startswith("*/") and hour == "*" and dom == month == dow == "*":
        n = int(minute[2:]) if minute[2:].isdigit() else None
        return f"every {n} minutes" if n and n != 1 else "every minute"
    if minute == "*" and hour == "*" and dom == month == dow == "*":
        return "every minute"
    if minute.isdigit() and hour == "*" and dom == month == dow == "*":
        return f"every hour at minute {int(minute)}"
    if minute.isdigit() and hour.isdigit():
        at = f"at {int(hour):02d}:{int(minute):02d}"
        if dom == month == "*":
            if dow == "*":
                return f"{at} every day"
            if dow in ("1-5", "mon-fri"):
                return f"{at} on weekdays"
            if dow in ("0,6", "6,0", "sat,sun", "sun,sat"):
                return f"{at} on weekends"
            if dow.isdigit() and 0 <= int(dow) <= 7:
                return f"{at} on {_DAYS[int(dow) % 7]}s"
        if dom.isdigit() and month == "*" and dow == "*":
            return f"{at} on day {int(dom)} of each month"
    return f"cron '{expression}'"


def local_text(ts: float, tz_name: str) -> str:
    return _from_ts(ts, zone(tz_name)).strftime("%Y-%m-%d %H:%M:%S %Z")

