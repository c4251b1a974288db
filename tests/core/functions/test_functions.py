"""Function tasks end to end: real child interpreters, a real registry per test.

Each test runs `asyncio.run(main())` against a TaskOrchestrator on a fresh data dir; the
functions are in fn_targets.py (imported by name in the children). conftest checks that no
process is left running.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from prismq_desktop import task
from prismq_desktop.core import OutcomeKind, RunSpec, TargetKind, TaskOrchestrator
from prismq_desktop.core.functions import payload
from prismq_desktop.core.functions.targets import function_target
from prismq_desktop.core.models import Serializer
from prismq_desktop.core.orchestrator.specs import function_spec
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.tasks import FunctionTask, TaskFailed, lookup, set_orchestrator
from tests.core.functions import fn_targets as t
from tests.helpers import pid_gone

ROOT = Path(__file__).resolve().parents[3]


def run(coro):
    return asyncio.run(coro)


async def _orch(home: Path) -> TaskOrchestrator:
    return TaskOrchestrator(home, max_concurrent=4)


def test_returns_value_and_keeps_stdout_apart(home):
    async def main():
        async with await _orch(home) as orch:
            res = await orch.execute(t.add, [2], kwargs={"b": 40})
            assert res.ok and res.result["sum"] == 42
            assert res.result["pid"] != os.getpid()  # never in the app's process
            assert "adding 2 and 40" in res.stdout
            assert '{"value": "not the result"}' in res.stdout  # printed JSON is output, not the result
            again = orch.get_result(res.run_id)
            assert again is not None and again.result == res.result
            return res.run_id

    run_id = run(main())
    reg = RunRegistry(home / "registry.sqlite3")  # stored with the run, read back by a new process's registry
    stored = reg.get(run_id)
    reg.close()
    assert stored.result_value["sum"] == 42 and stored.spec.kind is TargetKind.FUNCTION
    logs = list((home / "logs").iterdir())
    assert [p.name for p in logs] == [f"run-{run_id}.log"]  # call and result files are gone


def test_exception_fails_the_run_with_type_message_traceback(home):
    async def main():
        async with await _orch(home) as orch:
            res = await orch.submit(t.boom, [7])
            assert res.outcome.kind is OutcomeKind.FAILED and res.exit_code == 1
            assert res.error["type"] == "ValueError" and res.error["message"] == "bad input 7"
            assert 'raise ValueError(f"bad input {x!r}")' in res.error["traceback"]
            assert "runner.py" not in res.error["traceback"]  # only the user's frames
            note = res.outcome.message
            assert note.startswith("ValueError: bad input 7\n") and "Traceback" in note
            assert "ValueError: bad input 7" in res.stderr  # and in the log, as stderr
            assert res.result is None

    run(main())


def test_async_function_is_awaited_and_file_targets_work(home, tmp_path):
    mod = tmp_path / "jobs.py"
    mod.write_text("import asyncio\nasync def twice(x):\n    await asyncio.sleep(0)\n    return x * 2\n"
                   "if __name__ == '__main__':\n    raise SystemExit('main block must not run')\n")

    async def main():
        async with await _orch(home) as orch:
            a = await orch.submit(t.slow_add, [1, 2])
            b = await orch.submit(f"{mod}:twice", [21], kind="function")
            c = await orch.submit("jobs.py:twice", ["ab"], kind="function", cwd=str(tmp_path))
            assert (a.result, b.result, c.result) == (3, 42, "abab")

    run(main())


@pytest.mark.parametrize("target, words", [
    ("tests.core.functions.fn_targets:missing", "has no function missing"),
    ("no_such_module_xyz:f", "module not found: no_such_module_xyz"),
])
def test_bad_target_fails_with_one_line(home, target, words):
    async def main():
        async with await _orch(home) as orch:
            res = await orch.submit(target, kind="function", cwd=str(ROOT))
            assert not res.ok and words in res.outcome.message and "\n" not in res.outcome.message

    run(main())


@pytest.mark.parametrize("target, args, words", [
    ("no colon", None, "not a function target"),
    ("a b:c", None, "not a module name"),
    ("mod:1bad", None, "not a function name"),
    ("/nowhere/x.py:f", None, "function file not found"),
    ("os:getcwd", ["--flag"], "takes its arguments as JSON"),
])
def test_absurd_targets_fail_to_start(home, target, args, words):
    async def main():
        async with await _orch(home) as orch:
            spec = RunSpec(target, args or (), kind=TargetKind.FUNCTION)
            res = await orch.submit(spec)
            assert res.outcome.kind is OutcomeKind.FAILED_TO_START and words in res.outcome.message

    run(main())


def test_bad_stored_payload_fails_to_start(home):
    async def main():
        async with await _orch(home) as orch:
            res = await orch.submit(RunSpec("os:getcwd", kind=TargetKind.FUNCTION, payload="{not json"))
            assert res.outcome.kind is OutcomeKind.FAILED_TO_START and "arguments cannot be read" in res.outcome.message

    run(main())


def test_unimportable_functions_and_non_json_arguments_are_refused_at_once(home):
    def local():
        return 1

    with pytest.raises(TypeError, match="inside a function"):
        function_target(local)
    with pytest.raises(TypeError, match="lambda"):
        function_target(lambda: 1)
    with pytest.raises(TypeError, match="inside a function"):
        task(local)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        function_spec(t.add, [object()])
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        function_spec(t.add, [float("nan")])
    with pytest.raises(ValueError, match="identifiers"):
        function_spec(t.add, [], {"not an id": 1})

    async def main():
        async with await _orch(home) as orch:
            with pytest.raises(ValueError):
                orch.delay(t.add, [{1, 2}])
            assert orch.registry.count() == 0  # nothing recorded for a refused call

    run(main())


def test_non_json_result_and_os_exit_fail_clearly(home):
    async def main():
        async with await _orch(home) as orch:
            a = await orch.submit(t.not_json)
            assert not a.ok and a.error["type"] == "TypeError" and "not JSON-serialisable" in a.error["message"]
            b = await orch.submit(t.hard_exit)
            assert b.outcome.kind is OutcomeKind.FAILED and "without reporting a result" in b.outcome.message
            c = await orch.submit(t.exits, [3])
            assert c.exit_code == 3 and c.error["type"] == "SystemExit"
            d = await orch.submit(t.exits, [0])
            assert d.ok and d.result is None

    run(main())


def test_forged_or_huge_result_file_is_refused(home, monkeypatch):
    monkeypatch.setattr(payload, "MAX_RESULT_BYTES", 1000)

    async def main():
        async with await _orch(home) as orch:
            res = await orch.submit(t.big, [5000])
            assert not res.ok and "more than the 1000" in res.outcome.message and res.result is None

    run(main())
    assert payload.check_report("[1]") is not None
    assert payload.check_report('{"value": 1, "extra": 2}') is not None
    assert payload.check_report('{"value": NaN}') is not None
    assert payload.check_report('{"error": "x"}') is not None
    assert payload.check_report('{"value": [1]}') is None


async def _pids_written(marker):
    """Wait (up to 10 s) until the sleeper task has written its pids to `marker`."""
    for _ in range(500):
        if marker.exists() and marker.read_text():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the task never wrote its pids to {marker}")


def test_cancel_and_timeout_stop_the_tree(home, tmp_path):
    marker = tmp_path / "pids"

    async def main():
        async with await _orch(home) as orch:
            run_id = orch.delay(t.sleeper, [60, str(marker)])
            await _pids_written(marker)
            pids = [int(p) for p in marker.read_text().split()]
            assert orch.cancel(run_id)
            res = await orch.wait(run_id, timeout=20)
            assert res.outcome.kind is OutcomeKind.CANCELLED and res.result is None
            assert all(pid_gone(p) for p in pids)
            marker.unlink()
            started = time.monotonic()
            res = await orch.submit(t.sleeper, [60, str(marker)], timeout=1.0, grace_period=1.0)
            assert res.outcome.kind is OutcomeKind.TIMED_OUT and time.monotonic() - started < 15
            assert all(pid_gone(int(p)) for p in marker.read_text().split())

    run(main())


def test_sigkill_of_the_child_mid_run(home, tmp_path):
    marker = tmp_path / "pids"

    async def main():
        async with await _orch(home) as orch:
            run_id = orch.delay(t.sleeper, [60, str(marker)])
            await _pids_written(marker)
            runner_pid, grandchild = (int(p) for p in marker.read_text().split())
            psutil.Process(runner_pid).kill()
            res = await orch.wait(run_id, timeout=20)
            assert res.outcome.kind is OutcomeKind.FAILED and res.result is None
            assert pid_gone(grandchild)  # the run's end sweeps what the killed child left

    run(main())


def test_decorator_delay_submit_and_registry_by_name(home):
    assert lookup("fn_targets.multiply") is t.multiply and t.multiply(3, 4) == 12  # plain call: in-process

    async def main():
        async with await _orch(home) as orch:
            set_orchestrator(orch)
            try:
                run_id = await t.multiply.delay(6, 7)
                assert isinstance(run_id, int) and orch.get_result(run_id) is None  # returned at once
                assert (await orch.wait(run_id)).result == 42
                assert await t.greet.submit("ann", punctuation="?") == "hello ann?"
                stored = orch.status(run_id).run
                assert stored.name == "fn_targets.multiply" and stored.spec.soft_timeout == 30
                bad = FunctionTask(t.boom)
                with pytest.raises(TaskFailed, match="ValueError: bad input 1") as info:
                    await bad.submit(1)
                assert info.value.error_type == "ValueError" and "Traceback" in info.value.traceback
            finally:
                set_orchestrator(None)

    run(main())


def test_orchestrator_options_apply_to_functions(home, tmp_path):
    counter = tmp_path / "count"

    async def main():
        async with await _orch(home) as orch:
            res = await orch.submit(t.flaky, [str(counter)], max_retries=2, backoff_base=0.05, jitter=0)
            assert res.ok and res.result == 2 and res.attempts == 2
            a = orch.delay(t.double, [1], idempotency_key="k1")
            b = orch.delay(t.double, [1], idempotency_key="k1")
            assert a == b
            orch.set_max_concurrent(1)
            orch.pause_queue()
            low = orch.delay(t.double, ["low"], priority="low")
            high = orch.delay(t.double, ["high"], priority="critical")
            orch.resume_queue()
            r_low, r_high = await orch.wait(low), await orch.wait(high)
            assert r_high.run.started_at <= r_low.run.started_at
            assert (r_low.result, r_high.result) == ("lowlow", "highhigh")
            batch = await orch.execute(t.double, tasks=[[1], (2,), 3, {"value": "ab"}], max_concurrent=2)
            assert [r.result for r in batch.results] == [2, 4, 6, "abab"]
            dep = orch.delay(t.double, [10], after=[a])
            assert (await orch.wait(dep)).result == 20

    run(main())


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_chains_hand_the_result_to_function_and_script_follow_ups(home, tmp_path):
    reader = tmp_path / "reader.py"
    reader.write_text("import os, json\n"
                      "v = os.environ.get('PRISMQ_PARENT_RESULT')\n"
                      "f = os.environ.get('PRISMQ_PARENT_RESULT_FILE')\n"
                      "print('ENV', v) if v else print('FILE', len(json.load(open(f))), oct(os.stat(f).st_mode & 0o777))\n")

    async def main():
        async with await _orch(home) as orch:
            res = await orch.submit(t.double, [21], on_success=t.describe)
            follow = await orch.wait(res.follow_up_ids[0])
            assert follow.result == {"parent": 42, "label": "x"}
            spec = function_spec(t.describe, [], {"label": "y"})
            res = await orch.submit(t.double, [{"a": 1}], on_success=spec)
            assert not res.ok and res.follow_up_ids == ()  # dicts do not double: no on_success follow-up
            res = await orch.submit(t.double, ["ab"], on_success=spec)
            assert (await orch.wait(res.follow_up_ids[0])).result == {"parent": "abab", "label": "y"}
            res = await orch.submit(t.add, [1, 2], on_success=str(reader))
            out = (await orch.wait(res.follow_up_ids[0])).stdout
            assert out.startswith("ENV {") and json.loads(out[4:])["sum"] == 3
            res = await orch.submit(t.big, [100_000], on_success=str(reader))
            out = (await orch.wait(res.follow_up_ids[0])).stdout
            assert out == "FILE 100000 0o600"

    run(main())


def test_pickle_only_on_opt_in(home):
    async def main():
        async with await _orch(home) as orch:
            plain = await orch.submit(t.make_point, [1, 2])
            assert not plain.ok and "not JSON-serialisable" in plain.error["message"]
            res = await orch.submit(t.make_point, [1, 2], serializer="pickle")
            assert res.ok and res.result == t.Point(1, 2)
            # a pickle report on a run that did not opt in is never loaded
            forged = res.run.with_changes(spec=res.run.spec.with_changes(serializer=Serializer.JSON))
            with pytest.raises(ValueError, match="did not opt in"):
                _ = forged.result_value

    run(main())


def test_history_json_has_the_result(home):
    async def main():
        async with await _orch(home) as orch:
            await orch.submit(t.double, [4])
            await orch.submit(t.boom, [1])

    run(main())
    out = subprocess.run([sys.executable, "-m", "prismq_desktop", "--data-dir", str(home), "history", "--json"],
                         capture_output=True, text=True, timeout=60, check=True, cwd=ROOT).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["double"]["result"] == 8 and rows["double"]["result_error"] is None
    assert rows["boom"]["result"] is None and rows["boom"]["result_error"]["type"] == "ValueError"
    assert rows["boom"]["error"].startswith("ValueError: bad input 1")


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_private_files_and_old_registry_rows_load(home, tmp_path):
    seen = []

    async def main():
        async with await _orch(home) as orch:
            orch.bus.subscribe_sync(lambda ev: seen.extend(
                oct(os.stat(p).st_mode & 0o777) for p in (home / "logs").glob("*.call") if p.exists()))
            await orch.submit(t.double, [1])

    run(main())
    assert seen and set(seen) == {"0o600"}
    # a spec stored before function tasks existed (no payload/serializer keys) still loads
    old = RunSpec.from_dict({"target": "x.py", "args": ["a"], "kind": "script"})
    assert old.payload is None and old.serializer is Serializer.JSON and "payload" not in old.to_dict()
    again = RunSpec.from_dict(function_spec(t.add, [1]).to_dict())
    assert again.kind is TargetKind.FUNCTION and payload.decode_call(again.payload) == ([1], {})
    con = sqlite3.connect(home / "registry.sqlite3")
    assert "result" in [r[1] for r in con.execute("PRAGMA table_info(runs)")]
    con.close()
    assert stat.S_IMODE(os.stat(home / "registry.sqlite3").st_mode) == 0o600


def test_a_registry_from_before_function_tasks_is_migrated_and_its_rows_load(home):
    from prismq_desktop.core.store.schema import MIGRATIONS

    con = sqlite3.connect(home / "registry.sqlite3")
    for i, migration in enumerate(MIGRATIONS[:5]):
        con.executescript(migration)
        con.execute(f"PRAGMA user_version={i + 1}")
    spec = json.dumps({"target": "old.py", "args": ["a"], "kind": "script", "cwd": None, "env": {},
                       "interpreter": None, "soft_timeout": None, "hard_timeout": None, "grace_period": 5.0,
                       "encoding": "utf-8", "name": None})
    con.execute("INSERT INTO runs (name, spec, status, outcome, exit_code, created_at) "
                "VALUES ('old.py', ?, 'done', 'succeeded', 0, 1.0)", (spec,))
    con.commit()
    con.close()
    reg = RunRegistry(home / "registry.sqlite3")
    try:
        (old,) = reg.query()
        assert old.spec.target == "old.py" and old.result is None and old.result_value is None
        assert old.spec.to_dict() == json.loads(spec)  # stored JSON of an old spec is unchanged
    finally:
        reg.close()


def test_a_schedule_of_a_function_survives_the_registry_and_returns_its_value(home):
    async def main():
        async with await _orch(home) as orch:
            made = await orch.execute(t.double, [21], interval_seconds=3600, task_name="doubler")
            assert made.schedule_id is not None
            stored = orch.scheduler.get("doubler").spec  # read back from the schedules table
            assert stored.kind is TargetKind.FUNCTION and payload.decode_call(stored.payload) == ([21], {})
            run_id = orch.scheduler.run_now("doubler")
            assert run_id is not None
            res = await orch.wait(run_id, timeout=30)
            assert res.ok and res.result == 42 and res.run.schedule_id == made.schedule_id

    run(main())
