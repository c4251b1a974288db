"""Input that must be refused, and hostile children that must not hurt: every case ends with
a clear one-line message (no traceback reaches a user), nothing lost (the run is recorded, or
nothing is changed for refused input) and nothing left running (tests/conftest.py checks it).

The CLI runs as a person uses it (`python -m prismq_desktop --data-dir ...` in a real
subprocess); the API cases use a real RunEngine / TaskOrchestrator on a real registry file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prismq_desktop.core import RunEngine, RunRegistry, RunSpec
from prismq_desktop.core.models import OutcomeKind, RunMode
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.schedule.model import ScheduleError
from prismq_desktop.core.schedule.scheduler import make_trigger
from prismq_desktop.core.schedule.triggers import TriggerError
from prismq_desktop.core.store import RunQuery
from tests.core.test_cli import argv as cli_argv
from tests.core.test_cli import clean_env, cli
from tests.helpers import as_an_ordinary_reader

PY = sys.executable
NAN, INF = float("nan"), float("inf")


def one_line(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace").strip()
    assert "Traceback" not in text, text
    assert text and "\n" not in text, f"expected one line, got {text!r}"
    return text


def stored(home: Path) -> tuple[list, list]:
    """(runs, schedule rows) in the registry; both empty when nothing was ever written."""
    path = home / "registry.sqlite3"
    if not path.exists():
        return [], []
    with RunRegistry(path) as reg:
        return list(reg.query(RunQuery(limit=1000))), reg.list_schedules()


def script(tmp_path: Path, body: str, name: str = "child.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


# ------------------------------------------------------------------ refused by the command line
OK = [PY, "-S", "-c", "pass"]
REFUSED_CLI = {
    "timeout nan": ["run", "--timeout", "nan", *OK],
    "timeout inf": ["run", "--timeout", "inf", *OK],
    "timeout negative": ["run", "--timeout", "-1", *OK],
    "hard timeout nan": ["run", "--hard-timeout", "NaN", *OK],
    "grace nan": ["run", "--grace", "nan", *OK],
    "grace -inf": ["run", "--grace", "-inf", *OK],
    "retry delay nan": ["run", "--retry-delay", "nan", *OK],
    "env with empty name": ["run", "--env", "=x", *OK],
    "every 1e308": ["schedule", "add", "--every", "1e308", "s", PY],
    "every a microsecond": ["schedule", "add", "--every", "0.000001", "s", PY],
    "every zero": ["schedule", "add", "--every", "0", "s", PY],
    "every nan": ["schedule", "add", "--every", "nan", "s", PY],
    "every 400 days": ["schedule", "add", "--every", "400d", "s", PY],
    "at in the past": ["schedule", "add", "--at", "2000-01-01T00:00", "s", PY],
    "at not a date": ["schedule", "add", "--at", "soon", "s", PY],
    "bad cron": ["schedule", "add", "--cron", "61 * * * *", "s", PY],
    "jitter nan": ["schedule", "add", "--every", "1h", "--jitter", "nan", "s", PY],
    "misfire grace negative": ["schedule", "add", "--every", "1h", "--misfire-grace", "-1", "s", PY],
    "schedule timeout nan": ["schedule", "add", "--every", "1h", "--timeout", "nan", "s", PY],
}


@pytest.mark.parametrize("args", REFUSED_CLI.values(), ids=REFUSED_CLI.keys())
def test_the_cli_refuses_with_one_line_and_changes_nothing(home, args):
    res = cli(home, *args)
    assert res.returncode == 2, res
    assert "error" in one_line(res.stderr)
    assert stored(home) == ([], [])


# ------------------------------------------------------------------ refused when the run starts
BAD_SPECS = {
    "env value with NUL": {"env": {"A": "x\0y"}},
    "env name with =": {"env": {"A=B": "1"}},
    "env name empty": {"env": {"": "1"}},
    "argument with NUL": {"args": ("-S", "-c", "pass", "a\0b")},
    "soft timeout nan": {"soft_timeout": NAN},
    "hard timeout inf": {"hard_timeout": INF},
    "soft timeout negative": {"soft_timeout": -1.0},
    "grace period nan": {"grace_period": NAN},
    "grace period negative": {"grace_period": -5.0},
}
WORDS = {"env value with NUL": "NUL", "env name with =": "'='", "env name empty": "empty", "argument with NUL": "NUL",
         "soft timeout nan": "finite", "hard timeout inf": "finite", "soft timeout negative": "positive",
         "grace period nan": "finite", "grace period negative": "zero or more"}


@pytest.mark.parametrize("mode", [RunMode.ASYNC, RunMode.THREADED, RunMode.LOCAL, RunMode.DRY_RUN])
@pytest.mark.parametrize("case", BAD_SPECS, ids=BAD_SPECS.keys())
def test_a_bad_spec_ends_failed_to_start_in_every_mode(home, case, mode):
    spec = RunSpec(PY, **{"args": ("-S", "-c", "pass"), **BAD_SPECS[case]})
    engine = RunEngine(home)
    try:
        if mode in (RunMode.LOCAL, RunMode.DRY_RUN):
            run = engine.run_blocking(spec, mode=mode).run
        else:
            async def main():
                handle = await engine.run(spec, mode=mode)
                return await handle.wait(10)
            run = asyncio.run(main())
    finally:
        engine.close()
    assert run.outcome.kind is OutcomeKind.FAILED_TO_START, run.outcome
    message = run.outcome.message
    assert WORDS[case] in message and "\n" not in message and "internal error" not in message
    assert run.pid is None  # nothing was started
    runs, _ = stored(home)
    assert [r.id for r in runs] == [run.id] and runs[0].outcome.kind is OutcomeKind.FAILED_TO_START


def test_env_with_nul_from_the_orchestrator_is_recorded_not_raised(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            return await orch.wait(orch.delay(RunSpec(PY, env={"A": "\0"})))

    result = asyncio.run(main())
    assert result.outcome.kind is OutcomeKind.FAILED_TO_START and "NUL" in result.outcome.message


# ------------------------------------------------------------------ schedules: validated before saving
BAD_TRIGGERS = {
    "interval below the floor": {"interval_seconds": 0.5},
    "interval 1e308": {"interval_seconds": 1e308},
    "interval nan": {"interval_seconds": NAN},
    "interval infinite": {"interval_seconds": INF},
    "interval over 366 days": {"interval_seconds": 367 * 86400},
    "one-shot in the past": {"at": 946684800.0},
    "one-shot nan": {"at": NAN},
}


@pytest.mark.parametrize("kwargs", BAD_TRIGGERS.values(), ids=BAD_TRIGGERS.keys())
def test_make_trigger_refuses(kwargs):
    with pytest.raises(TriggerError) as info:
        make_trigger(**kwargs)
    assert "\n" not in str(info.value)


def test_scheduler_add_and_update_refuse_and_keep_what_was_stored(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            sch = orch.scheduler
            s = sch.add("hourly", RunSpec(PY, ("-S", "-c", "pass")), make_trigger(interval_seconds=3600))
            from prismq_desktop.core.schedule.triggers import IntervalTrigger, OneShotTrigger

            refused = []
            for trig in (IntervalTrigger(0.001, time.time() + 1), OneShotTrigger(time.time() - 60)):
                for call in (lambda t=trig: sch.add("new", RunSpec(PY), t),
                             lambda t=trig: sch.update(s.id, trigger=t)):
                    with pytest.raises((TriggerError, ScheduleError)) as info:
                        call()
                    refused.append(str(info.value))
            with pytest.raises(ScheduleError):
                sch.add("nan", RunSpec(PY, soft_timeout=NAN), make_trigger(interval_seconds=60))
            with pytest.raises(ScheduleError):
                sch.update(s.id, spec=RunSpec(PY, env={"A=B": "1"}))
            return refused, [x.name for x in sch.all()], sch.get(s.id)

    refused, names, kept = asyncio.run(main())
    assert len(refused) == 4 and all("\n" not in r for r in refused)
    assert names == ["hourly"] and kept.trigger.seconds == 3600


def test_a_bad_schedule_row_from_an_older_version_is_shown_broken_and_can_be_removed(home):
    assert cli(home, "schedule", "add", "--every", "1h", "good", PY).returncode == 0
    assert cli(home, "schedule", "add", "--every", "2h", "tiny", PY).returncode == 0
    db = sqlite3.connect(home / "registry.sqlite3")  # what an older version let through
    db.execute("UPDATE schedules SET trigger=?, next_fire=? WHERE name='tiny'",
               (json.dumps({"kind": "interval", "seconds": 1e-06, "start": 1e308, "timezone": "UTC"}), 1e308))
    db.commit()
    db.close()
    listing = cli(home, "schedule", "list")
    assert listing.returncode == 0 and b"Traceback" not in listing.stderr, listing
    lines = listing.stdout.decode().splitlines()
    assert any("good" in line and "every hour" in line for line in lines)
    assert any("tiny" in line and "BROKEN" in line for line in lines)
    as_json = json.loads(cli(home, "schedule", "list", "--json").stdout)
    assert {row["name"] for row in as_json} == {"good", "tiny"}
    assert "broken" in next(row for row in as_json if row["name"] == "tiny")
    enable = cli(home, "schedule", "enable", "tiny")
    assert enable.returncode == 2 and "broken" in one_line(enable.stderr)
    removed = cli(home, "schedule", "remove", "tiny")
    assert removed.returncode == 0, removed
    assert [row["name"] for row in stored(home)[1]] == ["good"]


# ------------------------------------------------------------------ control characters in terminal output
def test_control_characters_are_escaped_in_tables_and_exact_in_json(home):
    name = "evil\x1b[31mred\x07\nrow"
    res = cli(home, "run", "--name", name, PY, "-S", "-c", "pass")
    assert res.returncode == 0, res
    table = cli(home, "history")
    out = table.stdout.decode()
    assert "\x1b" not in out and "\x07" not in out and len(out.strip().splitlines()) == 2
    assert "evil\\x1b[31mred\\x07\\nrow"[:24] in out
    assert json.loads(cli(home, "history", "--json").stdout)[0]["name"] == name
    assert cli(home, "schedule", "add", "--every", "1h", "bell\x07", PY).returncode == 0
    sched = cli(home, "schedule", "list").stdout.decode()
    assert "\x07" not in sched and "bell\\x07" in sched


# ------------------------------------------------------------------ what already worked (keep it so)
FAILS_TO_START = {
    "missing script": (["run", "/nonexistent/missing.py"], "script not found"),
    "a directory as script": (["run", "{tmp}/adir.py"], "is a directory"),
    "bad interpreter": (["run", "--python", "/nonexistent/python9", "{tmp}/ok.py"], "interpreter not found"),
    "bad cwd": (["run", "--cwd", "/nonexistent/dir", "{tmp}/ok.py"], "working directory does not exist"),
    "missing command": (["run", "no-such-command-prismq"], "command not found"),
    "unknown encoding": (["run", "--encoding", "klingon", "{tmp}/ok.py"], "unknown output encoding"),
}


@pytest.mark.parametrize("case", FAILS_TO_START, ids=FAILS_TO_START.keys())
def test_the_cli_records_a_run_that_cannot_start(home, tmp_path, case):
    (tmp_path / "adir.py").mkdir()
    (tmp_path / "ok.py").write_text("print('ok')\n")
    args, words = FAILS_TO_START[case]
    res = cli(home, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert res.returncode == 125, res
    assert words in one_line(res.stderr)
    runs, _ = stored(home)
    assert len(runs) == 1 and runs[0].outcome.kind is OutcomeKind.FAILED_TO_START


def test_an_unreadable_script_fails_to_start(home, tmp_path):
    """As a normal user, a mode-000 script cannot be read. As root (CI) the CLI runs without the
    capabilities that let root read anything, so the same case is real there too."""
    path = script(tmp_path, "print('secret')\n")
    path.chmod(0)
    reader = as_an_ordinary_reader()
    probe = subprocess.run([PY, "-S", "-c", "import sys; open(sys.argv[1]).read()", str(path)], capture_output=True,
                           text=True, timeout=30, **reader)
    assert probe.returncode == 1 and "PermissionError" in probe.stderr, f"the script is readable after all: {probe}"
    res = subprocess.run(cli_argv(home, "run", str(path)), capture_output=True, env=clean_env(), timeout=30, **reader)
    assert res.returncode == 125, res
    assert "not readable" in one_line(res.stderr)
    assert b"secret" not in res.stdout
    runs, _ = stored(home)
    assert len(runs) == 1 and runs[0].outcome.kind is OutcomeKind.FAILED_TO_START  # recorded, nothing lost


@pytest.mark.parametrize("mode", [RunMode.ASYNC, RunMode.LOCAL])
def test_a_huge_argv_runs_or_fails_to_start_cleanly(home, mode):
    big = tuple(f"{i:07d}" * 12 for i in range(10_000))  # ~0.8 MB: fits every Linux/macOS ARG_MAX
    too_big = ("x" * 1000,) * 5000  # 5 MB: more than the kernel takes
    code = ("import sys; print(len(sys.argv) - 1, sum(map(len, sys.argv[1:])))",)
    engine = RunEngine(home)
    try:
        if mode is RunMode.LOCAL:
            ok = engine.run_blocking(RunSpec(PY, ("-S", "-c", *code, *big)), mode=mode)
            refused = engine.run_blocking(RunSpec(PY, ("-S", "-c", *code, *too_big)), mode=mode)
        else:
            async def main():
                first = await engine.run(RunSpec(PY, ("-S", "-c", *code, *big)), mode=mode)
                await first.wait(30)
                second = await engine.run(RunSpec(PY, ("-S", "-c", *code, *too_big)), mode=mode)
                await second.wait(30)
                return first, second
            ok, refused = asyncio.run(main())
    finally:
        engine.close()
    assert ok.run.outcome.kind is OutcomeKind.SUCCEEDED and ok.stdout().strip() == f"{len(big)} {sum(map(len, big))}"
    assert refused.run.outcome.kind is OutcomeKind.FAILED_TO_START
    assert "too long" in refused.run.outcome.message and "\n" not in refused.run.outcome.message


def test_bad_quoting_in_typed_arguments_fails_that_run(home):
    engine = RunEngine(home)
    try:
        run = engine.run_blocking(RunSpec(PY, "-c 'print(1)", name="quotes"), mode=RunMode.LOCAL).run
    finally:
        engine.close()
    assert run.outcome.kind is OutcomeKind.FAILED_TO_START and "cannot parse arguments" in run.outcome.message


def test_shell_metacharacters_are_passed_literally(home, tmp_path):
    marker = tmp_path / "pwned"
    words = ["; touch " + str(marker), "$(touch " + str(marker) + ")", "`id`", "| cat", "&& echo", "*", "$HOME"]
    res = cli(home, "run", PY, "-S", "-c", "import sys; print(sys.argv[1:])", *words)
    assert res.returncode == 0, res
    assert res.stdout.decode().strip() == repr(words)
    assert not marker.exists()


CHILDREN = {
    "segfault": ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", 128 + 11, OutcomeKind.FAILED),
    "binary output": ("import sys; sys.stdout.buffer.write(bytes(range(256)))", 0, OutcomeKind.SUCCEEDED),
    "no trailing newline": ("import sys; sys.stdout.write('tail')", 0, OutcomeKind.SUCCEEDED),
    "NUL in output": ("import sys; sys.stdout.buffer.write(b'a\\0b\\n')", 0, OutcomeKind.SUCCEEDED),
    "invalid UTF-8": ("import sys; sys.stdout.buffer.write(b'\\xff\\xfe\\xc3(\\n')", 0, OutcomeKind.SUCCEEDED),
    "UTF-16 output": ("import sys; sys.stdout.buffer.write('h\\u00e9\\n'.encode('utf-16'))", 0, OutcomeKind.SUCCEEDED),
    "50 MB single line": ("import sys; sys.stdout.buffer.write(b'x' * (50 << 20))", 0, OutcomeKind.SUCCEEDED),
    "reads stdin": ("import sys; data = sys.stdin.read(); print('eof', len(data))", 0, OutcomeKind.SUCCEEDED),
}


@pytest.mark.parametrize("case", CHILDREN, ids=CHILDREN.keys())
def test_a_hostile_child_is_recorded_exactly(home, case):
    code, exit_status, kind = CHILDREN[case]
    extra = ["--encoding", "utf-16"] if case == "UTF-16 output" else []
    res = cli(home, "run", *extra, PY, "-S", "-c", code, timeout=60)
    assert res.returncode == exit_status, res.stderr[-500:]
    assert b"Traceback" not in res.stderr
    runs, _ = stored(home)
    assert len(runs) == 1 and runs[0].outcome.kind is kind
    logged = cli(home, "logs", str(runs[0].id), "--stream", "stdout").stdout
    assert logged == res.stdout  # the log holds exactly what the child wrote
    if case == "reads stdin":
        assert res.stdout.strip() == b"eof 0"
    if case == "50 MB single line":
        assert len(res.stdout) == 50 << 20


def test_a_grandchild_holding_the_pipe_open_does_not_hang_the_run(home):
    code = "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); print('bye')"
    started = time.monotonic()
    res = cli(home, "run", PY, "-S", "-c", code, timeout=30)
    assert res.returncode == 0 and res.stdout.strip() == b"bye", res
    assert time.monotonic() - started < 15
    runs, _ = stored(home)
    assert len(runs) == 1 and runs[0].outcome.kind is OutcomeKind.SUCCEEDED


def test_a_corrupt_registry_is_one_line_and_left_as_it_is(home):
    path = home / "registry.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    for args in (["history"], ["run", PY, "-S", "-c", "pass"], ["schedule", "list"]):
        res = cli(home, *args)
        assert res.returncode != 0
        assert "registry" in one_line(res.stderr)
    assert path.read_bytes() == b"this is not a database" * 100


def test_a_registry_from_the_future_is_refused_and_kept(home):
    with RunRegistry(home / "registry.sqlite3"):
        pass
    db = sqlite3.connect(home / "registry.sqlite3")
    db.execute("PRAGMA user_version=999")
    db.commit()
    db.close()
    before = (home / "registry.sqlite3").stat()
    for args in (["history"], ["run", PY, "-S", "-c", "pass"]):
        res = cli(home, *args)
        assert res.returncode != 0
        assert "newer" in one_line(res.stderr)
    db = sqlite3.connect(home / "registry.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 999
    db.close()
    assert stat.S_ISREG(before.st_mode)
