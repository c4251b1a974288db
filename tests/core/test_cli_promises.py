"""What the README promises a new user of the command line (issue #16), as a person types it:
real `python -m prismq_desktop` processes, real scripts, a real registry."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from prismq_desktop.core import RunRegistry, RunSpec
from prismq_desktop.core.store.tasks import TaskStore
from tests.core.test_cli import argv, clean_env, cli, one_line_error, read_until, records

LOUD = """import sys, time
print("first", flush=True)
print("oops", file=sys.stderr, flush=True)
if len(sys.argv) > 2:
    time.sleep(float(sys.argv[2]))
for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 0):
    sys.stdout.write(f"line {i}\\n")
sys.exit(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
"""


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """(the scripts folder a user adds things from, another folder they later run from)."""
    work, elsewhere = tmp_path / "scripts", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "loud.py").write_text(LOUD)
    (work / "quick.py").write_text("print('quick')\n")
    return work, elsewhere


def test_schedule_add_in_the_readme_order_and_run_now_from_elsewhere_streams_and_exits_with_the_code(home, folders):
    work, elsewhere = folders
    res = cli(home, "schedule", "add", "loud", "loud.py", "--every", "5m", "--", "200000", "0", "7", cwd=work)
    assert res.returncode == 0, res.stderr
    assert "next fire" in res.stdout.decode()
    (row,) = json.loads(cli(home, "schedule", "list", "--json").stdout)
    assert row["spec"]["target"] == str(work / "loud.py")  # saved absolute: it fires from anywhere
    assert row["spec"]["args"] == ["200000", "0", "7"]

    res = cli(home, "schedule", "run-now", "loud", cwd=elsewhere, timeout=60)
    assert res.returncode == 7, res.stderr
    out = res.stdout.decode().splitlines()
    assert out[0] == "first" and len(out) == 200_001 and out[-1] == "line 199999"  # every line, not the last 2,000
    err = res.stderr.decode()
    assert err.startswith("oops\n") and "run #1 failed (7)" in err  # stderr streamed too, on stderr


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_run_now_streams_while_the_run_is_going(home, folders):
    work, _ = folders
    assert cli(home, "schedule", "add", "slow", str(work / "loud.py"), "--every", "1h", "--", "0", "30").returncode == 0
    proc = subprocess.Popen(argv(home, "schedule", "run-now", "slow"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=clean_env())
    try:
        assert b"first" in read_until(proc, b"first", timeout=20)  # before the run ends (it sleeps 30 s)
        assert proc.poll() is None
        proc.terminate()  # SIGTERM cancels the run's tree, like `run`
        assert proc.wait(timeout=20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    (rec,) = records(home)
    assert rec["outcome"] == "cancelled"


def test_dead_letter_requeue_from_another_folder_streams_and_exits_with_the_code(home, folders):
    work, elsewhere = folders
    res = cli(home, "run", "loud.py", "--retries", "1", "--retry-delay", "0", "--", "2", "0", "5", cwd=work)
    assert res.returncode == 5, res.stderr
    with RunRegistry(home / "registry.sqlite3") as reg:
        (dead,) = reg.dead_letters()
    assert dead.spec.target == str(work / "loud.py")  # saved absolute
    res = cli(home, "dead-letters", "--requeue", str(dead.id), cwd=elsewhere)
    assert res.returncode == 5, res.stderr
    assert res.stdout.decode() == "first\nline 0\nline 1\n" * 2  # a fresh chain: the run and its one retry
    err = res.stderr.decode()
    assert f"dead letter #{dead.id} requeued as run #" in err and "oops\n" in err and "failed (5)" in err


def test_relative_cwd_is_saved_absolute(home, folders):
    work, elsewhere = folders
    (work / "sub").mkdir()
    res = cli(home, "schedule", "add", "--cwd", "sub", "in-sub", "../quick.py", "--cron", "0 3 * * *", cwd=work)
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(cli(home, "schedule", "list", "--json").stdout)
    assert row["spec"]["cwd"] == str(work / "sub") and row["spec"]["target"] == str(work / "quick.py")
    res = cli(home, "schedule", "run-now", "in-sub", cwd=elsewhere)
    assert res.returncode == 0 and res.stdout == b"quick\n", res.stderr


def test_a_saved_task_keeps_absolute_paths(tmp_path, folders, monkeypatch):
    """The window saves tasks through TaskStore.put: a relative script is stored absolute."""
    work, elsewhere = folders
    monkeypatch.chdir(work)
    store = TaskStore(tmp_path / "tasks.json")
    store.put("t", RunSpec("loud.py", cwd="."), {})
    store.put("cmd", RunSpec("python3", ("-c", "pass")), {})  # a command on PATH stays a name
    monkeypatch.chdir(elsewhere)
    spec, _ = TaskStore(tmp_path / "tasks.json").get("t")
    assert spec.target == str(work / "loud.py") and spec.cwd == str(work)
    assert TaskStore(tmp_path / "tasks.json").get("cmd")[0].target == "python3"


@pytest.mark.parametrize(("args", "says"), [
    (["run", "--pattern", "bogus", "x.py"], "unknown pattern 'bogus'"),
    (["run", "--pattern", "pooled", "x.py"], "not available from `run`"),
    (["run", "--retries", "-1", "x.py"], "--retries"),
    (["run", "--retry-on", "sometimes", "x.py"], "unknown outcome"),
    (["schedule", "add", "n", "x.py", "--every", "5m", "--retries", "-2"], "--retries"),
    (["prune"], "--keep-days"),
    (["prune", "--keep-runs", "0"], "--keep-runs"),
])
def test_usage_errors_exit_2_in_one_line(home, args, says):
    res = cli(home, *args)
    assert res.returncode == 2
    err = one_line_error(res)
    assert says in err
    assert not (home / "registry.sqlite3").exists() or records(home) == []  # nothing was run


def test_run_without_a_script_names_only_script(home):
    res = cli(home, "run")
    assert res.returncode == 2
    err = one_line_error(res)
    assert "required: SCRIPT" in err and "ARGS" not in err


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_a_soft_timeout_says_what_happened(home, scripts, tmp_path):
    res = cli(home, "run", "--timeout", "0.3", "python3", "--", "-c", "import time; time.sleep(30)")
    assert res.returncode == 124
    err = one_line_error(res)
    assert "soft timeout of 0.3s reached; stopped by SIGTERM after 0." in err and "grace" not in err
    res = cli(home, "run", "--timeout", "0.3", "--grace", "0.5", str(scripts / "ignore_term.py"))
    assert res.returncode == 124
    assert "killed by SIGKILL after the 0.5 s grace" in one_line_error(res)


def test_disabled_schedule_and_empty_history_say_so(home, folders):
    work, _ = folders
    res = cli(home, "schedule", "add", "off", str(work / "quick.py"), "--every", "5m", "--disabled")
    assert res.returncode == 0
    out = res.stdout.decode()
    assert "next fire" not in out and "disabled" in out
    res = cli(home, "schedule", "history", "off")
    assert res.returncode == 0 and res.stdout.decode() == "schedule 'off' has no runs yet\n"
    assert cli(home, "schedule", "run-now", "off").returncode == 0
    lines = cli(home, "schedule", "history", "off").stdout.decode().splitlines()
    assert lines[0].split() == ["RUN", "WHEN", "TRIGGER", "OUTCOME"] and len(lines) == 2 and "run now" in lines[1]


def test_a_skipped_fire_says_skipped_once(home, folders):
    work, _ = folders
    assert cli(home, "schedule", "add", "slow", str(work / "loud.py"), "--every", "1h", "--", "0", "30").returncode == 0
    proc = subprocess.Popen(argv(home, "schedule", "run-now", "slow"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=clean_env())
    try:
        read_until(proc, b"first", timeout=20)
        res = cli(home, "schedule", "run-now", "slow")
        assert res.returncode == 1
        assert "skipped this fire" in one_line_error(res)
        line = [ln for ln in cli(home, "schedule", "history", "slow").stdout.decode().splitlines() if "still running" in ln]
        assert len(line) == 1
        outcome = line[0].split("skipped", 1)[1]  # after the TRIGGER column
        assert outcome.count("skipped") == 1 and "skipped: run #1 still running" in outcome
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stdout.close()


def test_prune_dry_run_lists_and_keeps_then_prune_deletes(home, folders):
    work, _ = folders
    for _ in range(3):
        assert cli(home, "run", str(work / "quick.py")).returncode == 0
    logs = [r["log_path"] for r in records(home)]
    res = cli(home, "prune", "--keep-runs", "1", "--dry-run")
    assert res.returncode == 0, res.stderr
    out = res.stdout.decode().splitlines()
    assert [ln.split()[2] for ln in out[:-1]] == ["#1", "#2"] and "2 runs and their logs would be deleted" in out[-1]
    assert len(records(home)) == 3 and all(os.path.exists(p) for p in logs)
    res = cli(home, "prune", "--keep-runs", "1", "--keep-days", "30")
    assert res.returncode == 0 and "deleted 2 runs and 2 log files" in res.stdout.decode()
    assert [r["id"] for r in records(home)] == [3]
    assert [os.path.exists(p) for p in logs] == [False, False, True] or [os.path.exists(p) for p in sorted(logs)] == [
        False, False, True]
