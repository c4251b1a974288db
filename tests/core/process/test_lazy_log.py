"""Per-run fixed costs (issue #17): a run's log file is made at its first output (none for a
run that wrote nothing and succeeded), every reader takes a missing log of a finished run as
"no output", and a child's start time comes from the spawn's clock, equal to psutil's.

Real children, real registry, the real CLI and HTTP API; nothing mocked.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time

import aiohttp
import psutil
import pytest

from prismq_desktop.compat.orchestrator import _full_output
from prismq_desktop.core import OutcomeKind, RunEngine, RunMode, RunSpec, Stream, read_log
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.orchestrator.results import tail_from_log
from prismq_desktop.core.process.logfile import LogWriter
from prismq_desktop.core.process.tree import ProcessTree, spawn_clock, start_time
from prismq_desktop.core.services.api import ApiServer
from tests.core.process.test_disk_full import fill, small_disk  # noqa: F401,F811 - a fixture
from tests.core.test_cli import cli

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX binaries")
TRUE = shutil.which("true") or "/bin/true"
FALSE = shutil.which("false") or "/bin/false"
PY = sys.executable


def run_async(coro):
    with asyncio.Runner() as runner:
        return runner.run(coro)


def _runs(home, specs, mode=RunMode.ASYNC):
    async def main():
        async with RunEngine(home) as engine:
            return [(await engine.run(spec, mode=mode)).run for spec in specs]
    return run_async(main())


def test_a_silent_succeeded_run_makes_no_file_and_the_others_keep_theirs(home) -> None:
    silent, failing, talking, dry = (
        *_runs(home, [RunSpec(TRUE, kind="executable"), RunSpec(FALSE, kind="executable"),
                      RunSpec("sh", ("-c", "printf 'a\\0b'; printf err >&2"), kind="executable")]),
        *_runs(home, [RunSpec(TRUE, kind="executable")], mode=RunMode.DRY_RUN),
    )
    assert silent.outcome.kind is OutcomeKind.SUCCEEDED and silent.log_path
    assert not os.path.exists(silent.log_path)
    # a failure keeps its start (argv, cwd) and its end even with no output
    assert failing.outcome.kind is OutcomeKind.FAILED
    meta = [json.loads(r.data) for r, _ in read_log(failing.log_path) if r.stream is Stream.META]
    assert [m["event"] for m in meta] == ["start", "end"] and meta[0]["argv"][0].endswith("false")
    records = [(r.stream, r.data) for r, _ in read_log(talking.log_path)]
    assert records[0][0] is Stream.META and json.loads(records[0][1])["event"] == "start"
    assert b"".join(d for s, d in records if s is Stream.STDOUT) == b"a\0b"
    assert b"".join(d for s, d in records if s is Stream.STDERR) == b"err"
    assert json.loads(records[-1][1])["event"] == "end"
    assert os.stat(talking.log_path).st_mode & 0o777 == 0o600
    assert os.path.exists(dry.log_path)  # a dry run's log is what it records


@pytest.mark.parametrize("mode", [RunMode.ASYNC, RunMode.THREADED, RunMode.LOCAL])
def test_the_first_output_makes_the_file_with_the_start_record_first(home, mode) -> None:
    if mode is RunMode.LOCAL:
        engine = RunEngine(home)
        run = engine.run_blocking(RunSpec("sh", ("-c", "sleep 0.1; echo late"), kind="executable"))
        engine.close()
        run = run.run
    else:
        (run,) = _runs(home, [RunSpec("sh", ("-c", "sleep 0.1; echo late"), kind="executable")], mode=mode)
    events = [json.loads(r.data)["event"] if r.stream is Stream.META else r.data for r, _ in read_log(run.log_path)]
    assert events == ["start", b"late\n", "end"]


def test_a_lazy_writer_holds_records_in_order_and_a_discard_leaves_nothing(tmp_path) -> None:
    path = str(tmp_path / "logs" / "run-1.log")
    writer = LogWriter(path, lazy=True)
    assert writer.held and writer.meta(event="start") and writer.meta(event="pool")
    assert not os.path.exists(path)
    writer.write(Stream.STDOUT, b"x")
    assert not writer.held and os.path.exists(path)
    writer.close()
    assert [r.stream for r, _ in read_log(path)] == [Stream.META, Stream.META, Stream.STDOUT]
    other = str(tmp_path / "logs" / "run-2.log")
    quiet = LogWriter(other, lazy=True)
    quiet.meta(event="start")
    quiet.discard()
    quiet.close()
    assert not os.path.exists(other)


def test_a_lazy_log_that_cannot_be_made_says_so_and_loses_nothing_silently(tmp_path) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the logs folder should be")
    writer = LogWriter(str(blocker / "run-1.log"), lazy=True)
    writer.meta(event="start")
    writer.write(Stream.STDOUT, b"12345")
    assert writer.error and "not saved" in writer.error and writer.bytes_lost == 5
    assert writer.last(lambda: False, event="end") is False
    writer.close()


def test_every_reader_takes_a_missing_log_of_a_finished_run_as_no_output(home) -> None:
    async def main():
        async with TaskOrchestrator(home, max_concurrent=2) as orch:
            run_id = orch.delay(TRUE)
            result = await orch.wait(run_id, timeout=30)
            server = ApiServer(orch, "127.0.0.1", 0)
            url = await server.start()
            try:
                auth = {"Authorization": f"Bearer {server.token}"}
                async with aiohttp.ClientSession(url, headers=auth) as client:
                    async with client.get(f"/runs/{run_id}/log") as r:
                        api = (r.status, await r.read())
                    async with client.get(f"/runs/{run_id}/log", params={"follow": "1"}) as r:
                        api_follow = (r.status, await r.read())
            finally:
                await server.stop()
            return result, api, api_follow

    result, api, api_follow = run_async(main())
    run = result.run
    assert result.ok and run.log_path and not os.path.exists(run.log_path)
    assert result.stdout == "" and result.stderr == ""
    assert api == (200, b"") and api_follow == (200, b"")
    assert tail_from_log(run.log_path, Stream.STDOUT) == ""
    # the orchestrator's answer from the registry (a new process: nothing in memory)
    async def later():
        async with TaskOrchestrator(home, max_concurrent=2) as orch:
            return await orch.wait(run.id, timeout=10)
    again = run_async(later())
    assert again.ok and again.stdout == "" and again.stderr == ""
    full = _full_output(again)
    assert full.stdout == "" and full.stderr == "" and full.exit_code == 0
    out = cli(home, "logs", str(run.id))
    assert out.returncode == 0 and out.stdout == b"", out.stderr
    follow = cli(home, "logs", str(run.id), "--follow")
    assert follow.returncode == 0 and follow.stdout == b"", follow.stderr


def test_the_start_time_from_the_spawn_clock_is_psutils_exactly(home) -> None:
    from_clock = from_file = 0
    for _ in range(60):
        before = spawn_clock()
        proc = subprocess.Popen([TRUE], stdout=subprocess.DEVNULL, start_new_session=True)
        after = spawn_clock()
        tree = ProcessTree(proc.pid, spawned=(before, after))
        expected = psutil.Process(proc.pid).create_time()  # a zombie until waited: still readable
        assert tree.create_time == pytest.approx(expected, abs=1e-6)
        assert start_time(proc.pid) == pytest.approx(expected, abs=1e-6)
        tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        if before // tick == after // tick:
            from_clock += 1
        else:
            from_file += 1
        proc.wait()
    assert from_clock > 0
    # what the engine stores is what recovery compares with psutil (pid reuse is told apart by it)
    async def main():
        async with RunEngine(home) as engine:
            handle = await engine.start(RunSpec("sh", ("-c", "sleep 0.5"), kind="executable"), mode=RunMode.ASYNC)
            while handle.run.pid is None:
                await asyncio.sleep(0.01)
            seen = psutil.Process(handle.run.pid).create_time()
            await handle.wait()
            return handle.run, seen
    run, seen = run_async(main())
    assert run.pid_create_time == pytest.approx(seen, abs=1e-6)
    assert abs(run.pid_create_time - run.started_at) < 2.0


def test_a_lazy_log_made_on_a_full_disk_still_ends_whole_with_the_reserve(small_disk) -> None:  # noqa: F811
    """The first output comes when the disk is already full: nothing of it is saved, and the
    end (given the reserve) still makes a whole file: magic, start, `incomplete`, end."""
    from prismq_desktop.core.store.reserve import SpaceReserve

    reserve = SpaceReserve([small_disk])
    assert reserve.ensure()
    path = small_disk / "logs" / "run-1.log"
    (small_disk / "logs").mkdir()
    writer = LogWriter(str(path), lazy=True)
    writer.meta(event="start", argv=["x"])
    fill(small_disk)
    writer.write(Stream.STDOUT, b"y" * 100_000)
    assert writer.error and "No space left" in writer.error and writer.bytes_lost == 100_000
    assert writer.last(reserve.release, event="end", exit_code=0) is True
    writer.close()
    events = [json.loads(r.data)["event"] for r, _ in read_log(str(path))]
    assert events == ["start", "incomplete", "end"]


def test_the_root_process_is_made_only_when_needed_and_only_for_the_same_process() -> None:
    """The tree's psutil.Process is made at the first snapshot, checked against the start time
    read at the spawn: the real root is found (with its child), another start time never is."""
    before = spawn_clock()
    proc = subprocess.Popen(["sh", "-c", "sleep 5 & wait"], start_new_session=True)
    after = spawn_clock()
    try:
        tree = ProcessTree(proc.pid, spawned=(before, after))
        deadline = time.monotonic() + 5
        while not tree.descendants() and time.monotonic() < deadline:
            tree = ProcessTree(proc.pid, spawned=(before, after))
        snap = tree.snapshot()
        assert snap[0].pid == proc.pid and len(snap) >= 2  # the root and its sleep
        other = ProcessTree(proc.pid, spawned=(before, after))
        other._ticks = (other._ticks or 0) + 1  # as if the pid now belonged to a later process
        assert other.snapshot() == [] and other.descendants() == []
        tree.kill(snap)
    finally:
        proc.kill()
        proc.wait()
    assert not [p for p in snap if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
