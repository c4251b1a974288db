"""The command line as a person uses it: `python -m prismq_desktop` in a real subprocess,
with real children, a real registry file and real log files.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import prismq_desktop
from prismq_desktop.core import RunRegistry
from prismq_desktop.core.services.history import run_to_json
from prismq_desktop.core.store import RunQuery
from tests.helpers import pid_gone, wait_for

PY = sys.executable
HISTORY_KEYS = {"id", "name", "status", "outcome", "exit_code", "started_at", "ended_at", "log_path", "error"}
HELLO_OUT = "hello{args}\ncwd {cwd}\nenv {var} 1 1\n"


DROP = ("PRISMQ_RUN_MODE", "PRISMQ_DESKTOP_HOME", "PRISMQ_TEST_VAR", "PYTHONDONTWRITEBYTECODE")
# every CLI start would otherwise compile the whole package again; keep its bytecode out of the tree
PYCACHE = Path(tempfile.gettempdir()) / f"prismq-tests-pycache-{os.getuid() if hasattr(os, 'getuid') else 0}"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROP}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(extra or {})
    return env


def argv(home: Path, *args: str) -> list[str]:
    return [PY, "-m", "prismq_desktop", "--data-dir", str(home), *args]


def cli(home: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 30):
    return subprocess.run(argv(home, *args), capture_output=True, env=clean_env(env), cwd=cwd, timeout=timeout)


def history(home: Path, *args: str) -> list[dict]:
    """`history --json` run as a real command (used where the command itself is under test)."""
    res = cli(home, "history", "--json", "--limit", "1000", *args)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def records(home: Path) -> list[dict]:
    """What `history --json` would print, read in-process from the same file (cheaper than a CLI start)."""
    with RunRegistry(home / "registry.sqlite3") as reg:
        return json.loads(json.dumps([run_to_json(r) for r in reg.query(RunQuery(limit=1000))]))


def one_line_error(res) -> str:
    err = res.stderr.decode()
    assert "Traceback" not in err, err
    assert err.endswith("\n") and err.count("\n") == 1, f"expected exactly one line on stderr, got {err!r}"
    return err


def read_until(proc: subprocess.Popen, needle: bytes, timeout: float = 15.0) -> bytes:
    """Read a child's stdout until `needle` shows up (never blocking past the deadline)."""
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not seen in {timeout}s; got {buf!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"stdout closed before {needle!r}; got {buf!r}")
            buf += chunk
    return buf


def test_version():
    res = subprocess.run([PY, "-m", "prismq_desktop", "--version"], capture_output=True, timeout=30, env=clean_env())
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().strip() == f"prismq-desktop {prismq_desktop.__version__}"


# ---------------------------------------------------------------------------- run


@pytest.mark.parametrize("code", [0, 3])
def test_run_exits_with_the_child_code_and_keeps_streams_apart(home, scripts, tmp_path, code):
    res = cli(home, "run", str(scripts / "hello.py"), str(code), "a b", "c", cwd=tmp_path)
    assert res.returncode == code
    assert res.stdout.decode() == HELLO_OUT.format(args=" a b c", cwd=tmp_path, var="-")
    err = res.stderr.decode()
    assert err.startswith("to stderr\n")
    if code:
        assert err == f"to stderr\nprismq-desktop: run #{records(home)[0]['id']} failed ({code})\n"
    else:
        assert err == "to stderr\n"
    (rec,) = records(home)
    assert rec["exit_code"] == code and rec["outcome"] == ("succeeded" if code == 0 else "failed")


@pytest.mark.parametrize(
    ("flags", "env", "mode"),
    [
        ([], {}, "async"),
        (["--mode", "threaded"], {}, "threaded"),
        (["--mode", "local"], {}, "local"),
        ([], {"PRISMQ_RUN_MODE": "local"}, "local"),
        (["--mode", "async"], {"PRISMQ_RUN_MODE": "local"}, "async"),  # an explicit mode beats the variable
    ],
    ids=["auto", "threaded", "local", "env-local", "flag-beats-env"],
)
def test_modes_stream_the_same_and_are_recorded(home, scripts, tmp_path, flags, env, mode):
    res = cli(home, "run", *flags, str(scripts / "hello.py"), "0", "x", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode() == HELLO_OUT.format(args=" x", cwd=tmp_path, var="-")
    assert res.stderr.decode() == "to stderr\n"
    (rec,) = records(home)
    assert rec["mode"] == mode and rec["status"] == "done" and rec["outcome"] == "succeeded"


@pytest.mark.parametrize("flags", [[], ["--mode", "local"]], ids=["auto", "local"])
def test_run_streams_output_while_the_child_is_still_running(home, scripts, tmp_path, flags):
    gate = tmp_path / "gate"
    proc = subprocess.Popen(argv(home, "run", *flags, str(scripts / "cli_gate.py"), str(gate)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    try:
        assert read_until(proc, b"first\n") == b"first\n"
        time.sleep(0.1)
        assert proc.poll() is None, "the CLI ended before the child was let through"
        gate.touch()
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == 0, err
    assert out == b"second\n" and err == b""


def test_env_cwd_and_name(home, scripts, tmp_path):
    work = tmp_path / "work dir"
    work.mkdir()
    (work / "rel.py").write_text(
        "import os, sys\nprint(os.getcwd())\nprint(os.environ['PRISMQ_TEST_VAR'])\nprint(os.environ['EMPTY'] == '')\n"
    )
    res = cli(home, "run", "--env", "PRISMQ_TEST_VAR=a=b c", "--env", "EMPTY=", "--cwd", str(work),
              "--name", "my job", "rel.py", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode() == f"{work}\na=b c\nTrue\n"
    (rec,) = records(home)
    assert rec["name"] == "my job" and rec["cwd"] == str(work)
    assert rec["argv"] == [PY, str(work / "rel.py")]
    assert "my job" in cli(home, "history").stdout.decode()


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_timeout_exits_124_and_the_whole_tree_is_gone(home, scripts):
    t0 = time.monotonic()
    res = cli(home, "run", "--timeout", "0.5", "--grace", "0.5", str(scripts / "ignore_term.py"))
    elapsed = time.monotonic() - t0
    assert res.returncode == 124, res.stderr
    pids = [int(line.split()[1]) for line in res.stdout.decode().splitlines() if line.startswith("pid ")]
    (rec,) = records(home)
    assert rec["outcome"] == "timed_out" and rec["pid"]
    tree = [rec["pid"], *pids]
    assert len(tree) == 2
    wait_for(lambda: all(pid_gone(p) for p in tree), timeout=5)
    err = one_line_error(res)
    assert "timed out" in err and "0.5s" in err
    assert elapsed < 10


def test_hard_timeout_kills_at_once(home, scripts):
    res = cli(home, "run", "--hard-timeout", "0.5", "--grace", "20", str(scripts / "tree.py"), "1")
    assert res.returncode == 124, res.stderr
    (rec,) = records(home)
    assert rec["outcome"] == "timed_out" and "hard timeout" in rec["error"]
    assert rec["ended_at"] - rec["started_at"] < 5  # the 20 s grace was not waited for


def test_dry_run_starts_nothing_and_records_the_argv(home, scripts, tmp_path):
    marker = tmp_path / "started"
    res = cli(home, "run", "--dry-run", str(scripts / "cli_touch.py"), str(marker), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == b""
    assert not marker.exists()
    (rec,) = records(home)
    assert rec["dry_run"] is True and rec["mode"] == "dry-run"
    assert rec["status"] == "done" and rec["outcome"] == "succeeded" and rec["pid"] is None
    assert rec["argv"] == [PY, str(scripts / "cli_touch.py"), str(marker)]
    assert rec["cwd"] == str(tmp_path)
    err = one_line_error(res)
    assert f"dry run #{rec['id']}" in err and str(marker) in err


@pytest.mark.parametrize("flags", [[], ["--mode", "local"]], ids=["auto", "local"])
def test_missing_script_exits_125_with_one_clear_line_and_is_recorded(home, tmp_path, flags):
    res = cli(home, "run", *flags, "nothere.py", "arg", cwd=tmp_path)
    assert res.returncode == 125
    assert res.stdout == b""
    err = one_line_error(res)
    assert "script not found: nothere.py" in err
    (rec,) = records(home)
    assert rec["status"] == "done" and rec["outcome"] == "failed_to_start"
    assert "script not found: nothere.py" in rec["error"] and rec["exit_code"] is None and rec["pid"] is None


def start_tree(home: Path, scripts: Path, *flags: str) -> tuple[subprocess.Popen, list[int]]:
    """`run reg_tree.py` in the background; returns the CLI process and the tree's pids once it is ready."""
    proc = subprocess.Popen(argv(home, "run", *flags, str(scripts / "reg_tree.py")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    try:
        out = read_until(proc, b"ready\n")
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    pids = [int(line.split()[1]) for line in out.decode().splitlines() if line.startswith("pid ")]
    (rec,) = records(home)
    return proc, [rec["pid"], *pids]


def kill_tree(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("flags", [[], ["--mode", "local"]], ids=["auto", "local"])
def test_signal_to_the_cli_cancels_the_run_and_stops_its_tree(home, scripts, flags, sig):
    """Ctrl+C, or a supervisor's SIGTERM, ends `run` with 130 and takes the whole tree down."""
    proc, tree = start_tree(home, scripts, *flags)
    try:
        assert len(tree) == 3
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=15)
        try:
            wait_for(lambda: all(pid_gone(p) for p in tree), timeout=5)
        except TimeoutError:
            alive = [p for p in tree if not pid_gone(p)]
            raise AssertionError(f"the CLI ended ({proc.returncode}) but left its run's tree running: {alive}") from None
        assert proc.returncode == 130, (proc.returncode, err.decode(errors="replace")[-800:])
        (rec,) = records(home)
        assert rec["status"] == "done" and rec["outcome"] == "cancelled"
    finally:
        proc.kill()
        proc.wait(10)
        kill_tree(tree)


# ---------------------------------------------------------------------------- history


def test_history_json_shape_order_and_filters(home, scripts, tmp_path):
    assert cli(home, "run", str(scripts / "hello.py"), "0", cwd=tmp_path).returncode == 0
    assert cli(home, "run", str(scripts / "hello.py"), "3", cwd=tmp_path).returncode == 3
    assert cli(home, "run", "missing.py", cwd=tmp_path).returncode == 125
    runs = history(home)
    assert isinstance(runs, list) and len(runs) == 3
    for rec in runs:
        assert set(rec) >= HISTORY_KEYS, HISTORY_KEYS - set(rec)
    missing, failed, ok = runs  # newest first
    assert [r["outcome"] for r in runs] == ["failed_to_start", "failed", "succeeded"]
    assert (ok["exit_code"], ok["error"], failed["exit_code"]) == (0, None, 3)
    assert ok["name"] == "hello.py" and missing["name"] == "missing.py"
    for rec in (ok, failed):
        assert rec["status"] == "done"
        assert isinstance(rec["started_at"], float) and rec["started_at"] <= rec["ended_at"]
        assert Path(rec["log_path"]).is_file()
    assert missing["started_at"] is None and isinstance(missing["ended_at"], float)

    queries = {
        "done": ["--status", "done"],
        "failed": ["--status", "failed"],
        "failed-to-start": ["--status", "failed-to-start"],
        "running": ["--status", "running"],
        "limit": ["--limit", "1"],
    }
    procs = {k: subprocess.Popen(argv(home, "history", "--json", *q), stdout=subprocess.PIPE, env=clean_env())
             for k, q in queries.items()}
    got = {}
    for k, proc in procs.items():
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, k
        got[k] = [r["id"] for r in json.loads(out)]
    assert got == {
        "done": [missing["id"], failed["id"], ok["id"]],
        "failed": [failed["id"]],
        "failed-to-start": [missing["id"]],
        "running": [],
        "limit": [missing["id"]],
    }
    table = cli(home, "history").stdout.decode()
    assert "failed (3)" in table and "succeeded" in table and "missing.py" in table


def test_history_of_an_empty_registry(home):
    assert history(home) == []
    res = cli(home, "history")
    assert res.returncode == 0 and res.stdout == b"no runs recorded\n"


# ---------------------------------------------------------------------------- logs


def test_logs_print_exactly_the_bytes_the_child_wrote(home, scripts):
    expected = bytes(range(256)) * 64  # every byte value, NULs and all, more than one pipe buffer
    res = cli(home, "run", str(scripts / "rawbytes.py"), "binary")
    assert res.returncode == 0, res.stderr
    assert res.stdout == expected  # streamed live, byte for byte
    (rec,) = records(home)
    logs = cli(home, "logs", str(rec["id"]))
    assert logs.returncode == 0 and logs.stderr == b""
    assert logs.stdout == expected


def test_logs_stream_selection(home, scripts):
    out = b"out: caf\xe9 \xff\xfe\x00 nul \xc3 torn\r\nno newline at end \x80"
    err = b"err: \xfe\xfd binary \x00\x01\x02 \xe2\x82\xac euro\n"
    res = cli(home, "run", str(scripts / "cli_streams.py"))
    assert res.returncode == 0
    assert res.stdout == out and res.stderr == err
    run_id = str(records(home)[0]["id"])
    assert cli(home, "logs", run_id, "--stream", "stdout").stdout == out
    assert cli(home, "logs", run_id, "--stream", "stderr").stdout == err
    both = cli(home, "logs", run_id).stdout
    assert both in (out + err, err + out)
    t0 = time.monotonic()
    followed = cli(home, "logs", run_id, "--follow", "--stream", "stderr", timeout=10)
    assert followed.returncode == 0 and followed.stdout == err
    assert time.monotonic() - t0 < 5  # a finished run is not followed


def test_logs_of_unknown_run(home):
    res = cli(home, "logs", "12345")
    assert res.returncode == 1 and res.stdout == b""
    assert "no run #12345" in one_line_error(res)


def test_logs_follow_prints_live_output_and_ends_with_the_run(home, scripts, tmp_path):
    gate = tmp_path / "gate"
    run = subprocess.Popen(argv(home, "run", str(scripts / "cli_gate.py"), str(gate), "4"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    follow = None
    try:
        read_until(run, b"first\n")
        (rec,) = [r for r in records(home) if r["status"] == "running"]
        follow = subprocess.Popen(argv(home, "logs", str(rec["id"]), "--follow"),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        assert read_until(follow, b"first\n") == b"first\n"
        time.sleep(0.5)
        assert follow.poll() is None, "--follow ended while the run was still active"
        gate.touch()
        rest, ferr = follow.communicate(timeout=15)
        assert follow.returncode == 0, ferr
        assert rest == b"second\n"
        run.communicate(timeout=15)
        assert run.returncode == 4
    finally:
        for p in (run, follow):
            if p is not None:
                p.kill()
                p.wait(10)
    (rec,) = records(home)
    assert rec["outcome"] == "failed" and rec["exit_code"] == 4


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_logs_follow_ends_when_the_owner_of_the_run_died(home, scripts):
    """A `run` that was SIGKILLed never records an end; following its log must not wait forever."""
    proc, tree = start_tree(home, scripts)
    try:
        proc.kill()
        proc.wait(10)
        kill_tree(tree)  # the child is gone too: nothing will ever write to this log again
        wait_for(lambda: all(pid_gone(p) for p in tree), timeout=5)
        run_id = str(records(home)[0]["id"])
        try:
            res = cli(home, "logs", run_id, "--follow", timeout=6)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"logs --follow still following a dead run after 6s; printed {exc.stdout!r}") from None
        assert res.returncode == 0, res.stderr
        assert res.stdout.endswith(b"ready\n") and res.stdout.count(b"pid ") == 2
    finally:
        proc.kill()
        proc.wait(10)
        kill_tree(tree)


# ---------------------------------------------------------------------------- bad command lines


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["--bogus"],
        ["history", "--bogus"],
        ["history", "--limit", "0"],
        ["history", "--limit", "99999999999999999999"],
        ["history", "--status", "bogus"],
        ["logs", "not a run!"],  # neither a number nor a possible run id ("notanumber" could be one)
        ["run", "--env", "NOEQUALS", "x.py"],
        ["run", "--timeout", "0", "x.py"],
        ["run", "--mode", "bogus", "x.py"],
    ],
    ids=lambda a: " ".join(a),
)
def test_bad_command_lines_print_one_line_and_exit_2(home, args):
    res = cli(home, *args)
    assert res.returncode == 2, res.stderr
    assert res.stdout == b""
    err = one_line_error(res)
    assert "error" in err


def test_absurd_run_id_is_one_line_not_a_traceback(home):
    res = cli(home, "logs", "99999999999999999999")
    assert res.returncode in (1, 2), res.stderr
    one_line_error(res)


# ---------------------------------------------------------------------------- paths that are not UTF-8


@pytest.mark.skipif(sys.platform != "linux", reason="needs a filesystem that takes arbitrary bytes in names")
def test_script_and_directory_whose_names_are_not_utf8(home, tmp_path):
    """On Linux a path is bytes; Python hands a non-UTF-8 name over as a surrogate escape.

    Such a run must work (or at worst fail cleanly): it must never hang the CLI or go unrecorded.
    """
    work = tmp_path / os.fsdecode(b"dir-\xff")
    work.mkdir()
    name = os.fsdecode(b"caf\xe9.py")
    (work / name).write_text("print('ran')\n")
    try:
        res = cli(home, "run", "--cwd", str(work), name, cwd=tmp_path, timeout=10)
    except subprocess.TimeoutExpired as exc:  # subprocess.run has already killed the hung CLI
        tail = exc.stderr.decode(errors="replace")[-1200:] if exc.stderr else ""
        raise AssertionError(f"the CLI hung after the child ended:\n{tail}") from None
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-1500:]
    assert res.stdout == b"ran\n"
    (rec,) = records(home)
    assert rec["outcome"] == "succeeded" and rec["cwd"] == str(work)
