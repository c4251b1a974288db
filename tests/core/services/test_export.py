"""`schedule export`: every output parsed back (PyYAML, xml.etree, systemd-analyze) and every
mapped field checked for every overlap policy and trigger kind."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

import pytest
import yaml

from prismq_desktop.core import RunSpec
from prismq_desktop.core.schedule.model import CatchUp, OverlapPolicy, Schedule
from prismq_desktop.core.schedule.scheduler import make_trigger
from prismq_desktop.core.services.export import ExportError, ExportOptions, cron_to_calendar, export_schedule
from tests.core.test_cli import cli

PY = sys.executable
NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
SECRET = "s3cret-Value-never-written"
POLICIES = list(OverlapPolicy)
FUTURE = time.time() + 30 * 86400


def trigger(kind: str):
    if kind == "cron":
        return make_trigger(cron="*/15 2-4 * * 1-5", timezone="Europe/Berlin")
    if kind == "interval":
        return make_trigger(interval_seconds=300, start=1_800_000_000.0, timezone="UTC")
    return make_trigger(at=float(int(FUTURE)), timezone="America/New_York")


def schedule(kind: str = "cron", overlap: OverlapPolicy = OverlapPolicy.FORBID, **kw) -> Schedule:
    spec = RunSpec("/srv/jobs/report.py", ("--full", "two words"), cwd="/srv/jobs", interpreter=PY,
                   env={"MODE": "fast", "API_TOKEN": SECRET}, soft_timeout=600, grace_period=7)
    fields = {"misfire_grace": 90.0, "catchup": CatchUp.COALESCE, "jitter": 0.0, "options": {"max_retries": 2}} | kw
    return Schedule(id=1, name="Nightly Report", spec=spec, trigger=trigger(kind), overlap=overlap, **fields)


def only(export) -> str:
    (text,) = export.files.values()
    assert SECRET not in text  # secret values are never written
    return text


# ---------------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("overlap", POLICIES)
def test_k8s_cronjob_maps_every_field(overlap):
    out = export_schedule(schedule("cron", overlap), "k8s", ExportOptions(cpu="500m", memory="256Mi",
                                                                          successful_history=5, failed_history=2))
    doc = yaml.safe_load(only(out))
    spec = doc["spec"]
    assert (doc["apiVersion"], doc["kind"], doc["metadata"]["name"]) == ("batch/v1", "CronJob", "nightly-report")
    assert spec["schedule"] == "*/15 2-4 * * 1-5" and spec["timeZone"] == "Europe/Berlin"
    assert spec["concurrencyPolicy"] == {"forbid": "Forbid", "replace": "Replace", "allow": "Allow",
                                         "queue": "Forbid"}[overlap.value]
    assert ("queue" in " ".join(out.warnings)) is (overlap is OverlapPolicy.QUEUE)  # the one policy with no equivalent
    assert spec["startingDeadlineSeconds"] == 90 and spec["suspend"] is False
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (5, 2)
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 2 and job["activeDeadlineSeconds"] == 600
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["terminationGracePeriodSeconds"] == 7
    (c,) = pod["containers"]
    assert c["command"] == [PY] and c["args"] == ["/srv/jobs/report.py", "--full", "two words"]
    assert c["workingDir"] == "/srv/jobs" and c["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"}}
    assert c["env"] == [{"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "nightly-report-secrets",
                                                                            "key": "API_TOKEN"}}},
                        {"name": "MODE", "value": "fast"}]


@pytest.mark.parametrize(("seconds", "cron"), [(60, "* * * * *"), (300, "*/5 * * * *"), (3600, "0 * * * *"),
                                               (7200, "0 */2 * * *"), (86400, "0 0 * * *")])
def test_k8s_interval_becomes_a_clock_aligned_cron(seconds, cron):
    s = schedule("interval")
    s.trigger = make_trigger(interval_seconds=seconds, start=1_800_000_000.0)
    out = export_schedule(s, "k8s")
    assert yaml.safe_load(only(out))["spec"]["schedule"] == cron
    assert any("clock's grid" in w for w in out.warnings)


@pytest.mark.parametrize(("kind", "change", "says"), [
    ("interval", {"seconds": 420}, "no CronJob schedule"),
    ("interval", {"seconds": 30}, "no CronJob schedule"),
    ("oneshot", {}, "one-shot"),
    ("cron", {"expression": "30 */5 * * * *"}, "seconds field"),
])
def test_k8s_refuses_what_a_cronjob_cannot_say(kind, change, says):
    s = schedule(kind)
    if change:
        from dataclasses import replace

        s.trigger = replace(s.trigger, **change)
    with pytest.raises(ExportError, match=says):
        export_schedule(s, "k8s")


def test_k8s_disabled_is_suspended_and_jitter_catchup_all_warn():
    s = schedule("cron", enabled=False, jitter=30.0, catchup=CatchUp.ALL)
    out = export_schedule(s, "k8s")
    assert yaml.safe_load(only(out))["spec"]["suspend"] is True
    assert any("jitter" in w for w in out.warnings) and any("catch-up 'all'" in w for w in out.warnings)


# ---------------------------------------------------------------------------- systemd


def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is needed for these tests (apt-get install systemd; .ci/run installs it)"
    return tool


def systemd_next(calendar: str, n: int = 6) -> list[float]:
    res = subprocess.run([analyze(), "calendar", f"--iterations={n}", calendar], capture_output=True, text=True,
                         timeout=30, env=dict(os.environ, TZ="UTC"))
    assert res.returncode == 0, res.stderr
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", res.stdout)
    assert len(stamps) == n, res.stdout
    return [datetime.strptime(t, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp() for t in stamps]


@pytest.mark.parametrize("expr", ["*/15 2-4 * * 1-5", "0 3 * * *", "30 1 1,15 * *", "0 0 * * 0", "@hourly", "@weekly",
                                  "0 9 * 1,7 MON-FRI", "5,35 */6 * * *", "0 12 * JAN,JUN *", "15 10 * * 6,0",
                                  "0 30 8 * * *"])
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Asia/Kolkata"])
def test_oncalendar_fires_when_the_cron_does(expr, zone):
    """systemd-analyze's own next elapses equal the schedule's next fires (croniter)."""
    trig = make_trigger(cron=expr, timezone=zone)
    expected, t = [], time.time()
    for _ in range(6):
        t = trig.next_after(t)
        expected.append(t)
    assert systemd_next(cron_to_calendar(expr, zone)) == expected


@pytest.mark.parametrize("expr", ["0 0 1 * 1", "0 0 1-10/2 * *", "0 0 L * *", "0 0 * * 5-0"])
def test_what_a_calendar_cannot_say_is_an_error(expr):
    with pytest.raises(ExportError):
        cron_to_calendar(expr, "UTC")


@pytest.mark.parametrize("overlap", POLICIES)
@pytest.mark.parametrize("kind", ["cron", "interval", "oneshot"])
def test_systemd_units_for_every_trigger_kind_and_overlap_policy(tmp_path, kind, overlap):
    s = schedule(kind, overlap, jitter=45.0)
    if overlap is not OverlapPolicy.FORBID:
        with pytest.raises(ExportError, match=f"overlap policy '{overlap.value}' cannot be expressed"):
            export_schedule(s, "systemd")
        return
    out = export_schedule(s, "systemd", ExportOptions(env_file="/etc/prismq/report.env"))
    assert sorted(out.files) == ["nightly-report.service", "nightly-report.timer"]
    service, timer = out.files["nightly-report.service"], out.files["nightly-report.timer"]
    assert SECRET not in service + timer
    keys = dict(line.split("=", 1) for line in (service + timer).splitlines() if "=" in line and not line.startswith("#"))
    assert keys["ExecStart"] == f'{PY} /srv/jobs/report.py --full "two words"'
    assert keys["WorkingDirectory"] == "/srv/jobs" and keys["Environment"] == "MODE=fast"
    assert keys["EnvironmentFile"] == "/etc/prismq/report.env" and any("API_TOKEN" in w for w in out.warnings)
    assert keys["TimeoutStartSec"] == "600" and keys["TimeoutStopSec"] == "7s" and keys["Type"] == "oneshot"
    assert keys["RandomizedDelaySec"] == "45s" and keys["Unit"] == "nightly-report.service"
    assert keys["Restart"] == "on-failure" and keys["StartLimitBurst"] == "3"
    if kind == "interval":
        assert keys["OnActiveSec"] == keys["OnUnitActiveSec"] == "300s" and "Persistent" not in keys
        assert any("Persistent= only applies" in w for w in out.warnings)
    else:
        assert keys["Persistent"] == "true"
        fires = systemd_next(keys["OnCalendar"], 1 if kind == "oneshot" else 3)
        t, want = time.time(), []
        for _ in fires:
            t = s.trigger.next_after(t)
            want.append(t)
        assert fires == want
    for name, text in out.files.items():
        (tmp_path / name).write_text(text)
    res = subprocess.run([analyze(), "verify", "--man=no", *(str(tmp_path / n) for n in out.files)],
                         capture_output=True, text=True, timeout=60)
    ours = [ln for ln in (res.stdout + res.stderr).splitlines() if "nightly-report" in ln]
    assert res.returncode == 0 and not ours, res.stdout + res.stderr


def test_systemd_catch_up_skip_is_not_persistent():
    out = export_schedule(schedule("cron", catchup=CatchUp.SKIP), "systemd")
    assert "Persistent" not in out.files["nightly-report.timer"]


# ---------------------------------------------------------------------------- Windows


def task_xml(s: Schedule) -> tuple[ET.Element, list[str]]:
    out = export_schedule(s, "windows")
    text = only(out)
    assert text.startswith('<?xml version="1.0"')
    return ET.fromstring(text), out.warnings


@pytest.mark.parametrize("overlap", POLICIES)
@pytest.mark.parametrize("catchup", list(CatchUp))
def test_windows_settings_for_every_overlap_policy_and_catch_up(overlap, catchup):
    root, warnings = task_xml(schedule("interval", overlap, catchup=catchup))
    assert root.findtext("t:Settings/t:MultipleInstancesPolicy", namespaces=NS) == {
        "forbid": "IgnoreNew", "allow": "Parallel", "queue": "Queue", "replace": "StopExisting"}[overlap.value]
    assert root.findtext("t:Settings/t:StartWhenAvailable", namespaces=NS) == ("false" if catchup is CatchUp.SKIP
                                                                              else "true")
    assert root.findtext("t:Settings/t:ExecutionTimeLimit", namespaces=NS) == "PT10M"
    assert root.findtext("t:Settings/t:RestartOnFailure/t:Count", namespaces=NS) == "2"
    assert root.findtext("t:Settings/t:Enabled", namespaces=NS) == "true"
    exe = root.find("t:Actions/t:Exec", NS)
    assert exe.findtext("t:Command", namespaces=NS) == PY
    assert exe.findtext("t:Arguments", namespaces=NS) == '/srv/jobs/report.py --full "two words"'
    assert exe.findtext("t:WorkingDirectory", namespaces=NS) == "/srv/jobs"
    assert any("MODE, API_TOKEN" in w for w in warnings)


def test_windows_triggers_for_each_kind():
    root, _ = task_xml(schedule("interval", jitter=30.0))
    (tt,) = root.findall("t:Triggers/t:TimeTrigger", NS)
    assert tt.findtext("t:Repetition/t:Interval", namespaces=NS) == "PT5M"
    assert datetime.fromisoformat(tt.findtext("t:StartBoundary", namespaces=NS)).timestamp() == 1_800_000_000.0
    assert tt.findtext("t:RandomDelay", namespaces=NS) == "PT30S"

    s = schedule("oneshot")
    root, _ = task_xml(s)
    (tt,) = root.findall("t:Triggers/t:TimeTrigger", NS)
    start = datetime.fromisoformat(tt.findtext("t:StartBoundary", namespaces=NS))
    assert start.timestamp() == s.trigger.at and start.utcoffset() == datetime.fromtimestamp(
        s.trigger.at, ZoneInfo("America/New_York")).utcoffset()
    assert tt.find("t:Repetition", NS) is None


@pytest.mark.parametrize(("expr", "check"), [
    ("30 2 * * *", lambda t: len(t) == 1 and t[0].findtext("t:ScheduleByDay/t:DaysInterval", namespaces=NS) == "1"),
    ("0 9 * * 1-5", lambda t: [d.tag.split("}")[1] for d in t[0].find("t:ScheduleByWeek/t:DaysOfWeek", NS)] == [
        "Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]),
    ("0 0 1,15 * *", lambda t: [d.text for d in t[0].findall("t:ScheduleByMonth/t:DaysOfMonth/t:Day", NS)] == ["1", "15"]),
    ("*/10 * * * *", lambda t: len(t) == 1 and t[0].findtext("t:Repetition/t:Interval", namespaces=NS) == "PT10M"
     and t[0].findtext("t:Repetition/t:Duration", namespaces=NS) == "P1D"),
    ("0 8,20 * * *", lambda t: [x.findtext("t:StartBoundary", namespaces=NS)[11:16] for x in t] == ["08:00", "20:00"]),
])
def test_windows_calendar_triggers_from_cron(expr, check):
    s = schedule("cron")
    s.trigger = make_trigger(cron=expr, timezone="UTC")
    root, _ = task_xml(s)
    assert check(root.findall("t:Triggers/t:CalendarTrigger", NS))


@pytest.mark.parametrize("expr", ["0 0 1 * 1", "0 0 * 6 *", "30 * * * * *"])
def test_windows_refuses_what_a_task_cannot_say(expr):
    s = schedule("cron")
    s.trigger = make_trigger(cron=expr)
    with pytest.raises(ExportError):
        export_schedule(s, "windows")


# ---------------------------------------------------------------------------- the command line


def test_schedule_export_from_the_command_line(home, tmp_path):
    script = tmp_path / "job.py"
    script.write_text("print('x')\n")
    assert cli(home, "schedule", "add", "nightly", "job.py", "--cron", "0 2 * * *", "--overlap", "queue",
               "--env", "DB_PASSWORD=" + SECRET, cwd=tmp_path).returncode == 0
    res = cli(home, "schedule", "export", "nightly", "--format", "k8s", env={"PRISMQ_SECRET_STORE": "file"})
    assert res.returncode == 0, res.stderr
    doc = yaml.safe_load(res.stdout)
    assert doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] == [str(script)]
    assert "warning: overlap policy 'queue' has no CronJob equivalent" in res.stderr.decode()
    assert SECRET.encode() not in res.stdout + res.stderr

    res = cli(home, "schedule", "export", "nightly", "--format", "systemd")
    assert res.returncode == 1 and b"cannot be expressed" in res.stderr and b"Traceback" not in res.stderr
    assert res.stderr.decode().count("\n") == 1

    assert cli(home, "schedule", "add", "hourly", str(script), "--every", "1h").returncode == 0
    res = cli(home, "schedule", "export", "hourly", "--format", "systemd", "-o", str(tmp_path / "units" / "hourly.service"))
    assert res.returncode == 1 and b"No such file" in res.stderr  # a missing folder: one line, nothing half-written
    (tmp_path / "units").mkdir()
    res = cli(home, "schedule", "export", "hourly", "--format", "systemd", "-o", str(tmp_path / "units" / "hourly.service"))
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == ["hourly.service", "hourly.timer"]
    res = cli(home, "schedule", "export", "hourly", "--format", "windows", "-o", str(tmp_path / "hourly.xml"))
    assert res.returncode == 0
    assert ET.parse(tmp_path / "hourly.xml").getroot().findtext(
        "t:Triggers/t:TimeTrigger/t:Repetition/t:Interval", namespaces=NS) == "PT1H"
    res = cli(home, "schedule", "export", "nope", "--format", "k8s")
    assert res.returncode == 2 and b"no schedule" in res.stderr
