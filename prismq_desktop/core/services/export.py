"""A schedule exported to the schedulers people deploy on: a Kubernetes CronJob, a systemd
.service + .timer pair, or a Windows Task Scheduler task (XML for ``schtasks /Create /XML``).

Each mapping says what it could not carry: a `warnings` line for what the target does in a
near way (the CronJob has no "queue" overlap: it is exported as Forbid, and says so), an
ExportError (one line) for what it cannot express at all (systemd runs one instance of a
unit: overlap "allow" has no equivalent). Secret values are never written: the CronJob
refers to a named Secret, systemd to an EnvironmentFile, the Windows task leaves them out.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from prismq_desktop.core.models import RunSpec, TargetKind
from prismq_desktop.core.schedule.model import CatchUp, OverlapPolicy, Schedule
from prismq_desktop.core.schedule.triggers import CronTrigger, IntervalTrigger, OneShotTrigger
from prismq_desktop.core.secrets import looks_secret, references

FORMATS = ("k8s", "systemd", "windows")
TASK_NS = "http://schemas.microsoft.com/windows/2004/02/mit/task"
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
          "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
DOW_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
WIN_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


class ExportError(ValueError):
    """What the target scheduler cannot express (one line, nothing is written)."""


@dataclass
class Export:
    """The files of one export (name → text), and what was carried only approximately."""

    files: dict[str, str]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExportOptions:
    image: str = "python:3.11-slim"
    secret_name: str | None = None  # default: <name>-secrets
    cpu: str | None = None
    memory: str | None = None
    successful_history: int = 3
    failed_history: int = 1
    env_file: str | None = None  # systemd: default /etc/prismq/<name>.env


def unit_name(name: str) -> str:
    """A name every target accepts: lowercase DNS-1123 (a-z, 0-9, -), at most 52 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:52].strip("-")
    if not slug:
        raise ExportError(f"the schedule name {name!r} has no letters or digits to name a unit with")
    return slug


def export_schedule(s: Schedule, fmt: str, options: ExportOptions | None = None) -> Export:
    opts = options or ExportOptions()
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if s.spec.kind is TargetKind.FUNCTION:
        raise ExportError("a function task runs inside PrismQ; only scripts, modules and commands can be exported")
    if s.spec.where:
        raise ExportError("a remote schedule runs on a PrismQ worker; export the worker's own schedule instead")
    if fmt == "k8s":
        return _k8s(s, opts)
    if fmt == "systemd":
        return _systemd(s, opts)
    return _windows(s, opts)


# ---------------------------------------------------------------------------- shared


def command_of(spec: RunSpec) -> list[str]:
    """The argv the target runs (paths as saved: absolute for a schedule saved by PrismQ)."""
    kind = spec.kind
    if kind is TargetKind.AUTO:
        kind = TargetKind.SCRIPT if spec.target.lower().endswith((".py", ".pyw")) else TargetKind.EXECUTABLE
    args = list(spec.args) if not isinstance(spec.args, str) else shlex.split(spec.args)
    python = spec.interpreter or "python3"
    if kind is TargetKind.SCRIPT:
        return [python, spec.target, *args]
    if kind is TargetKind.MODULE:
        return [python, "-m", spec.target, *args]
    return [spec.target, *args]


def _is_secret(name: str, value: str | None) -> bool:
    return looks_secret(name) or bool(value and references(value))


def _cron_fields(expr: str) -> list[str]:
    text = MACROS.get(expr.strip().lower(), expr.strip())
    fields = text.split()
    if len(fields) == 6:  # seconds first
        return fields
    if len(fields) == 5:
        return ["0", *fields]
    raise ExportError(f"cannot read the cron expression {expr!r}")


def _seconds_text(seconds: float) -> str:
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds:g}s"


def _interval_cron(seconds: float) -> str | None:
    """A 5-field cron equal to an interval aligned to the clock, or None."""
    if seconds % 60:
        return None
    minutes = int(seconds // 60)
    if minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if minutes % 60 == 0:
        hours = minutes // 60
        if hours < 24 and 24 % hours == 0:
            return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
        if hours == 24:
            return "0 0 * * *"
    return None


def _timeout(spec: RunSpec) -> float | None:
    values = [v for v in (spec.soft_timeout, spec.hard_timeout) if v]
    return min(values) if values else None


# ---------------------------------------------------------------------------- Kubernetes


def _k8s(s: Schedule, opts: ExportOptions) -> Export:
    import json

    warnings: list[str] = []
    trig = s.trigger
    if isinstance(trig, CronTrigger):
        sec, *five = _cron_fields(trig.expression)
        if sec != "0":
            raise ExportError(f"a CronJob schedule has minutes at most: the seconds field {sec!r} of "
                              f"{trig.expression!r} cannot be expressed")
        schedule = " ".join(five) if not trig.expression.strip().startswith("@") else trig.expression.strip()
    elif isinstance(trig, IntervalTrigger):
        cron = _interval_cron(trig.seconds)
        if cron is None:
            raise ExportError(f"an interval of {_seconds_text(trig.seconds)} is no CronJob schedule (use an interval that "
                              "divides an hour or a day, or a cron expression)")
        schedule = cron
        warnings.append(f"the interval is exported as {cron!r}: fires on the clock's grid, not counted from the "
                        "schedule's start")
    else:
        assert isinstance(trig, OneShotTrigger)
        raise ExportError("a one-shot schedule has no CronJob equivalent (run it once as a Kubernetes Job)")
    policy = {OverlapPolicy.FORBID: "Forbid", OverlapPolicy.REPLACE: "Replace", OverlapPolicy.ALLOW: "Allow",
              OverlapPolicy.QUEUE: "Forbid"}[s.overlap]
    if s.overlap is OverlapPolicy.QUEUE:
        warnings.append("overlap policy 'queue' has no CronJob equivalent: exported as Forbid (a fire while a run is "
                        "going is skipped, not queued)")
    if s.catchup is CatchUp.ALL:
        warnings.append("catch-up 'all' has no CronJob equivalent: Kubernetes starts at most one missed run")
    if s.jitter:
        warnings.append(f"a CronJob has no jitter: the {s.jitter:g} s random delay is left out")
    name = unit_name(s.name)
    secret = opts.secret_name or f"{name}-secrets"
    env: list[dict[str, Any]] = []
    for key, value in sorted(s.spec.env.items()):
        if value is None:
            warnings.append(f"environment variable {key} is removed for PrismQ runs; a container does not inherit it")
            continue
        if _is_secret(key, value):
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
        else:
            env.append({"name": key, "value": value})
    argv = command_of(s.spec)
    container: dict[str, Any] = {"name": "task", "image": opts.image, "command": argv[:1], "args": argv[1:]}
    if s.spec.cwd:
        container["workingDir"] = s.spec.cwd
    if env:
        container["env"] = env
    limits = {k: v for k, v in (("cpu", opts.cpu), ("memory", opts.memory)) if v}
    if limits:
        container["resources"] = {"limits": limits}
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    job: dict[str, Any] = {"backoffLimit": int(s.options.get("max_retries", 0) or 0), "template": {"spec": pod}}
    timeout = _timeout(s.spec)
    if timeout:
        job["activeDeadlineSeconds"] = math.ceil(timeout)
        pod["terminationGracePeriodSeconds"] = 0 if s.spec.hard_timeout and timeout == s.spec.hard_timeout \
            else math.ceil(s.spec.grace_period)
    cron_job = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "prismq-desktop"},
                     "annotations": {"prismq-desktop/schedule": s.name, "prismq-desktop/describe": s.describe()}},
        "spec": {
            "schedule": schedule,
            "timeZone": trig.timezone,
            "concurrencyPolicy": policy,
            "startingDeadlineSeconds": max(1, math.ceil(s.misfire_grace)),
            "suspend": not s.enabled,
            "successfulJobsHistoryLimit": opts.successful_history,
            "failedJobsHistoryLimit": opts.failed_history,
            "jobTemplate": {"spec": job},
        },
    }
    head = "".join(f"# warning: {w}\n" for w in warnings)
    if any("valueFrom" in e for e in env):
        keys = ", ".join(e["name"] for e in env if "valueFrom" in e)
        head += f"# secret values are not in this file: create Secret {secret!r} with the keys {keys}\n"
    # JSON is YAML: every string quoted exactly, no YAML library needed to write it
    return Export({f"{name}.cronjob.yaml": head + json.dumps(cron_job, indent=2) + "\n"}, warnings)


# ---------------------------------------------------------------------------- systemd


def _calendar_field(value: str, what: str, names: tuple[str, ...] | None = None, offset: int = 0) -> str:
    """One cron field as systemd calendar syntax ("*/5" → "00/5", "1-5" → "1..5")."""
    out = []
    for part in value.split(","):
        part = part.upper()
        if names is not None:
            for i, month in enumerate(MONTHS):
                part = part.replace(month, str(i + 1))
        if part == "*":
            out.append("*")
            continue
        base, slash, step = part.partition("/")
        if slash:
            if base in ("*", ""):
                start = "0" if what in ("second", "minute", "hour") else "1"
            elif base.isdigit():
                start = base
            else:
                raise ExportError(f"systemd calendars cannot step through a range ({part!r} in the {what} field)")
            if not step.isdigit() or int(step) == 0:
                raise ExportError(f"not a step: {part!r}")
            out.append(f"{int(start):02d}/{int(step)}" if what in ("second", "minute", "hour") else f"{start}/{step}")
            continue
        lo, dash, hi = base.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ExportError(f"cannot read {part!r} in the cron {what} field")
        out.append(f"{int(lo):02d}..{int(hi):02d}" if dash else f"{int(lo):02d}")
    return ",".join(out)


def _dow(value: str) -> str:
    if value == "*" or value == "?":
        return ""
    names = []
    for part in value.upper().split(","):
        for i, day in enumerate(DOW_NAMES):
            part = part.replace(day.upper(), str(i))
        lo, dash, hi = part.partition("-")
        if "/" in part or not lo.isdigit() or (dash and not hi.isdigit()):
            raise ExportError(f"cannot express the day-of-week {value!r} in a systemd calendar")
        a = int(lo) % 7
        if dash:
            b = int(hi) % 7 if int(hi) != 7 else 0
            if b < a:  # e.g. 5-0 (Fri..Sun): systemd ranges do not wrap
                raise ExportError(f"cannot express the wrapping day range {part!r} in a systemd calendar")
            names.append(f"{DOW_NAMES[a]}..{DOW_NAMES[b]}")
        else:
            names.append(DOW_NAMES[a])
    return ",".join(names)


def cron_to_calendar(expr: str, timezone: str) -> str:
    """A cron expression as a systemd OnCalendar= value, or ExportError."""
    sec, minute, hour, dom, month, dow = _cron_fields(expr)
    if dom not in ("*", "?") and dow not in ("*", "?"):
        raise ExportError(f"cron runs on day-of-month OR day-of-week ({expr!r}); a systemd calendar needs both: "
                          "split it into two schedules")
    if any(ch in f"{dom}{dow}" for ch in "LW#"):
        raise ExportError(f"cron's L, W and # ({expr!r}) have no systemd calendar equivalent")
    days = _dow(dow)
    date = f"*-{_calendar_field(month, 'month', MONTHS)}-{_calendar_field(dom.replace('?', '*'), 'day')}"
    clock = f"{_calendar_field(hour, 'hour')}:{_calendar_field(minute, 'minute')}:{_calendar_field(sec, 'second')}"
    return " ".join(p for p in (days, date, clock, timezone) if p)


def _systemd_quote(word: str) -> str:
    if word and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", word):
        return word.replace("%", "%%")
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def _systemd(s: Schedule, opts: ExportOptions) -> Export:
    warnings: list[str] = []
    if s.overlap is not OverlapPolicy.FORBID:
        raise ExportError(f"systemd runs at most one instance of a unit at a time (that is overlap 'forbid'): "
                          f"overlap policy {s.overlap.value!r} cannot be expressed")
    if s.catchup is CatchUp.ALL:
        warnings.append("catch-up 'all' is exported as Persistent=true: systemd starts one missed run, not every one")
    name = unit_name(s.name)
    trig = s.trigger
    timer = ["[Unit]", f"Description=Timer of the PrismQ schedule {s.name} ({s.describe()})", "", "[Timer]"]
    if isinstance(trig, CronTrigger):
        timer.append(f"OnCalendar={cron_to_calendar(trig.expression, trig.timezone)}")
        if s.catchup is not CatchUp.SKIP:
            timer.append("Persistent=true")
    elif isinstance(trig, IntervalTrigger):
        if trig.seconds < 1:
            raise ExportError("systemd timers fire at most once a second")
        timer += [f"OnActiveSec={_seconds_text(trig.seconds)}", f"OnUnitActiveSec={_seconds_text(trig.seconds)}"]
        if s.catchup is not CatchUp.SKIP:
            warnings.append("Persistent= only applies to calendar timers: an interval timer does not catch up after "
                            "downtime (use a cron schedule for that)")
    else:
        assert isinstance(trig, OneShotTrigger)
        when = datetime.fromtimestamp(trig.at, ZoneInfo(trig.timezone)).strftime("%Y-%m-%d %H:%M:%S")
        timer.append(f"OnCalendar={when} {trig.timezone}")
        if s.catchup is not CatchUp.SKIP:
            timer.append("Persistent=true")
    if s.jitter:
        timer.append(f"RandomizedDelaySec={_seconds_text(s.jitter)}")
    timer += ["AccuracySec=1s", f"Unit={name}.service", "", "[Install]", "WantedBy=timers.target", ""]

    service = ["[Unit]", f"Description=PrismQ schedule {s.name}", "", "[Service]", "Type=oneshot"]
    if s.spec.cwd:
        service.append(f"WorkingDirectory={s.spec.cwd}")
    secret_keys = []
    for key, value in sorted(s.spec.env.items()):
        if value is None:
            service.append(f"UnsetEnvironment={key}")
        elif _is_secret(key, value):
            secret_keys.append(key)
        else:
            service.append(f"Environment={_systemd_quote(f'{key}={value}')}")
    if secret_keys:
        env_file = opts.env_file or f"/etc/prismq/{name}.env"
        service.append(f"EnvironmentFile={env_file}")
        warnings.append(f"secret values are not in the unit: put {', '.join(secret_keys)} in {env_file} (mode 0600)")
    argv = command_of(s.spec)
    if not argv[0].startswith("/"):
        service.append(f"# {argv[0]} is looked up on systemd's PATH (give --python an absolute path to pin it)")
    service.append("ExecStart=" + " ".join(_systemd_quote(a) for a in argv))
    timeout = _timeout(s.spec)
    if timeout:
        service.append(f"TimeoutStartSec={math.ceil(timeout)}")
        grace = 0 if s.spec.hard_timeout and timeout == s.spec.hard_timeout else s.spec.grace_period
        service.append(f"TimeoutStopSec={_seconds_text(grace) if grace else '1s'}")
    retries = int(s.options.get("max_retries", 0) or 0)
    if retries:
        service += ["Restart=on-failure", "RestartSec=1s"]
        service[2:2] = [f"StartLimitBurst={retries + 1}", "StartLimitIntervalSec=1d"]  # [Unit]: at most N retries
    service.append("")
    if not s.enabled:
        warnings.append(f"the schedule is disabled: enable the timer when wanted (systemctl enable --now {name}.timer)")
    return Export({f"{name}.service": "\n".join(service), f"{name}.timer": "\n".join(timer)}, warnings)


# ---------------------------------------------------------------------------- Windows


def _duration(seconds: float) -> str:
    """An XML duration: PT5M, PT1H30M, P1D, PT90S."""
    total = math.ceil(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs else "")
    return out + ("T" + clock if clock else "") if (days or clock) else "PT0S"


def _numbers(value: str, lo: int, hi: int, what: str) -> list[int] | None:
    """A cron field as the list of values it allows (None for "*")."""
    if value in ("*", "?"):
        return None
    found: set[int] = set()
    for part in value.upper().split(","):
        for i, day in enumerate(DOW_NAMES):
            part = part.replace(day.upper(), str(i))
        for i, month in enumerate(MONTHS):
            part = part.replace(month, str(i + 1))
        base, slash, step = part.partition("/")
        a, dash, b = base.partition("-")
        if base == "*":
            start, end = lo, hi
        elif a.isdigit() and (not dash or b.isdigit()):
            start, end = int(a), int(b) if dash else (hi if slash else int(a))
        else:
            raise ExportError(f"cannot read {part!r} in the cron {what} field")
        if slash and (not step.isdigit() or int(step) == 0):
            raise ExportError(f"not a step: {part!r}")
        found.update(range(start, end + 1, int(step) if slash else 1))
    return sorted(found)


def _windows(s: Schedule, opts: ExportOptions) -> Export:
    warnings: list[str] = []
    trig = s.trigger
    zone = ZoneInfo(trig.timezone)
    ET.register_namespace("", TASK_NS)
    task = ET.Element(f"{{{TASK_NS}}}Task", {"version": "1.2"})

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{TASK_NS}}}{tag}", attrs)
        if text is not None:
            el.text = text
        return el

    info = sub(task, "RegistrationInfo")
    sub(info, "Description", f"PrismQ schedule {s.name}: {s.describe()}")
    sub(info, "URI", f"\\PrismQ\\{unit_name(s.name)}")
    triggers = sub(task, "Triggers")
    now = datetime.now(zone).replace(microsecond=0)

    def add_trigger(kind: str, start: datetime, every: float | None = None, daylong: bool = False) -> ET.Element:
        """In the order Task Scheduler's own exports use: Repetition, StartBoundary, Enabled, RandomDelay."""
        el = sub(triggers, kind)
        if every is not None:
            rep = sub(el, "Repetition")
            sub(rep, "Interval", _duration(every))
            if daylong:
                sub(rep, "Duration", "P1D")
            sub(rep, "StopAtDurationEnd", "false")
        sub(el, "StartBoundary", start.isoformat())  # with the zone's UTC offset
        sub(el, "Enabled", "true")
        if s.jitter:
            sub(el, "RandomDelay", _duration(s.jitter))
        return el

    if isinstance(trig, OneShotTrigger):
        add_trigger("TimeTrigger", datetime.fromtimestamp(trig.at, zone))
    elif isinstance(trig, IntervalTrigger):
        if trig.seconds < 60 or trig.seconds > 31 * 86400:
            raise ExportError(f"Task Scheduler repeats from every minute to every 31 days: an interval of "
                              f"{_seconds_text(trig.seconds)} cannot be expressed")
        add_trigger("TimeTrigger", datetime.fromtimestamp(trig.start, zone), every=trig.seconds)
    else:
        assert isinstance(trig, CronTrigger)
        sec, minute, hour, dom, month, dow = _cron_fields(trig.expression)
        if sec != "0":
            raise ExportError("Task Scheduler has no seconds field: a cron expression firing at seconds other than 0")
        if month not in ("*", "?"):
            raise ExportError("a cron month field has no Task Scheduler equivalent here; use a monthly schedule")
        minutes, hours = _numbers(minute, 0, 59, "minute"), _numbers(hour, 0, 23, "hour")
        doms, dows = _numbers(dom, 1, 31, "day"), _numbers(dow, 0, 7, "weekday")
        if doms is not None and dows is not None:
            raise ExportError("cron's day-of-month OR day-of-week has no Task Scheduler equivalent: split it in two")
        every: int | None = None
        if hours is None and (minutes is None or (len(minutes) > 1 and minutes[0] == 0 and
                                                  all(b - a == minutes[1] - minutes[0] for a, b in
                                                      zip(minutes, minutes[1:], strict=False)) and
                                                  60 % (minutes[1] - minutes[0]) == 0)):
            every = 1 if minutes is None else minutes[1] - minutes[0]  # every N minutes, all day
            times = [(0, 0)]
        else:
            times = [(h, m) for h in (hours or range(24)) for m in (minutes or range(60))]
            if len(times) > 48:
                raise ExportError(f"{trig.expression!r} fires at {len(times)} times of day: more triggers than a task "
                                  "should hold (use an interval)")
        for h, m in times:
            start = now.replace(hour=h, minute=m, second=0)
            el = add_trigger("CalendarTrigger", start, every=every * 60 if every is not None else None, daylong=True)
            if dows is not None:
                week = sub(sub(el, "ScheduleByWeek"), "DaysOfWeek")
                for d in sorted({d % 7 for d in dows}):
                    sub(week, WIN_DAYS[d])
                el.find(f"{{{TASK_NS}}}ScheduleByWeek").append(_weeks_interval())  # type: ignore[union-attr]
            elif doms is not None:
                by_month = sub(el, "ScheduleByMonth")
                days = sub(by_month, "DaysOfMonth")
                for d in doms:
                    sub(days, "Day", str(d))
                months = sub(by_month, "Months")
                for name in ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                             "October", "November", "December"):
                    sub(months, name)
            else:
                sub(sub(el, "ScheduleByDay"), "DaysInterval", "1")
    year = now.year
    if datetime(year, 1, 1, tzinfo=zone).utcoffset() != datetime(year, 7, 1, tzinfo=zone).utcoffset():
        warnings.append(f"Task Scheduler keeps StartBoundary's UTC offset: across {trig.timezone}'s daylight-saving "
                        "changes the fires move by an hour")
    settings = sub(task, "Settings")
    sub(settings, "MultipleInstancesPolicy", {OverlapPolicy.FORBID: "IgnoreNew", OverlapPolicy.ALLOW: "Parallel",
                                             OverlapPolicy.QUEUE: "Queue",
                                             OverlapPolicy.REPLACE: "StopExisting"}[s.overlap])
    sub(settings, "DisallowStartIfOnBatteries", "false")
    sub(settings, "StopIfGoingOnBatteries", "false")
    sub(settings, "StartWhenAvailable", "false" if s.catchup is CatchUp.SKIP else "true")
    if s.catchup is CatchUp.ALL:
        warnings.append("catch-up 'all': Task Scheduler starts one missed run when the machine is back, not every one")
    sub(settings, "Enabled", "true" if s.enabled else "false")
    timeout = _timeout(s.spec)
    sub(settings, "ExecutionTimeLimit", _duration(timeout) if timeout else "PT0S")
    retries = int(s.options.get("max_retries", 0) or 0)
    if retries:
        restart = sub(settings, "RestartOnFailure")
        sub(restart, "Interval", "PT1M")
        sub(restart, "Count", str(retries))
    actions = sub(task, "Actions", Context="Author")
    exe = sub(actions, "Exec")
    argv = command_of(s.spec)
    sub(exe, "Command", argv[0])
    if argv[1:]:
        sub(exe, "Arguments", " ".join(_win_quote(a) for a in argv[1:]))
    if s.spec.cwd:
        sub(exe, "WorkingDirectory", s.spec.cwd)
    plain = sorted(k for k, v in s.spec.env.items() if v is not None and not _is_secret(k, v))
    secret = sorted(k for k, v in s.spec.env.items() if v is not None and _is_secret(k, v))
    if plain or secret:
        warnings.append("a Task Scheduler task has no environment of its own: "
                        f"{', '.join(plain + secret)} {'is' if len(plain + secret) == 1 else 'are'} left out "
                        "(set them for the user the task runs as)")
    ET.indent(task)
    body = ET.tostring(task, encoding="unicode")
    return Export({f"{unit_name(s.name)}.xml": '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"}, warnings)


def _weeks_interval() -> ET.Element:
    el = ET.Element(f"{{{TASK_NS}}}WeeksInterval")
    el.text = "1"
    return el


def _win_quote(arg: str) -> str:
    """Quote one argument the way the C runtime splits a Windows command line."""
    if arg and not re.search(r'[\s"]', arg):
        return arg
    out, backslashes = ['"'], 0
    for ch in arg:
        if ch == "\\":
            backslashes += 1
            continue
        if ch == '"':
            out.append("\\" * (backslashes * 2 + 1) + '"')
        else:
            out.append("\\" * backslashes + ch)
        backslashes = 0
    out.append("\\" * (backslashes * 2) + '"')
    return "".join(out)


FORMAT_NAMES = {"k8s": "a Kubernetes CronJob", "systemd": "a systemd service + timer", "windows": "a Windows Task Scheduler task"}


def export_paths(result: Export, out: str | os.PathLike[str]) -> dict[str, Path]:
    """Where each file of an export goes when the user names one file: that file itself, or for
    systemd's pair FILE.service + FILE.timer (a given .service/.timer suffix is the stem's)."""
    target = Path(out)
    if len(result.files) == 1:
        return {name: target for name in result.files}
    stem = target.with_suffix("") if target.suffix in (".service", ".timer") else target
    return {name: stem.with_name(stem.name + Path(name).suffix) for name in result.files}


def write_export(result: Export, out: str | os.PathLike[str]) -> list[Path]:
    """Write an export's files (see export_paths); the paths written. OSError when one cannot be."""
    written = []
    for name, path in export_paths(result, out).items():
        path.write_text(result.files[name], encoding="utf-8")
        written.append(path)
    return written
