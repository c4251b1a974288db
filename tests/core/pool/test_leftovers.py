"""What a pooled run leaves behind: found by its fork server (a child subreaper), stopped with the run.

Real fork servers, real escapers (setsid children, double-forked daemons with and without exec);
every descendant writes its pid to a file, and the test checks with psutil that each one is gone
when the run has returned. A daemon that double-forked without exec keeps the fork server's
/proc environment (no run tag), so before the server reported leftovers it outlived its run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from prismq_desktop.core import OutcomeKind, OutputCapture, RunEngine, RunMode, RunSpec
from prismq_desktop.core.pool import ResourcePool, pool_supported
from prismq_desktop.core.process import Job
from prismq_desktop.core.process.launch import mark_run, resolve
from prismq_desktop.core.process.tree import ServedTree
from tests.helpers import pid_gone

pytestmark = [
    pytest.mark.posix_only,
    pytest.mark.skipif(not pool_supported(), reason="no fork server here"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is a subreaper on Linux only"),
]

PRELOAD = ("json",)


def escape_spec(scripts: Path, record: Path, kind: str, then: str, stdio: str, **kw) -> RunSpec:
    return RunSpec(target=str(scripts / "pool_escape.py"), args=(kind, then, stdio), interpreter=sys.executable,
                   env={"ESCAPE_PIDS": str(record)}, grace_period=0.3, **kw)


def recorded(record: Path) -> list[int]:
    return [int(x) for x in record.read_text().split()] if record.exists() else []


def run_async(coro):
    with asyncio.Runner() as runner:
        return runner.run(coro)


def live(pids: list[int]) -> list[int]:
    return [pid for pid in pids if not pid_gone(pid)]


@pytest.fixture
def kill_recorded(tmp_path: Path):
    """Whatever a failing test leaves behind is killed (the conftest check cannot see re-parented ones)."""
    yield
    for path in tmp_path.glob("pids-*"):
        for pid in recorded(path):
            try:
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE:
                    proc.kill()
            except psutil.Error:
                pass


@pytest.mark.usefixtures("kill_recorded")
@pytest.mark.parametrize("stdio", ["closed", "open"])
@pytest.mark.parametrize("kind", ["setsid", "daemon", "exec"])
def test_what_a_pooled_run_leaves_at_its_end_is_stopped_with_it(home, scripts, tmp_path, kind, stdio):
    """The root exits with its escaper in place: the "exit" lists the escaper, the pool kills it,
    and the run still ends as it ended (succeeded, its output whole)."""
    record = tmp_path / f"pids-{kind}-{stdio}"

    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            handle = await engine.run(escape_spec(scripts, record, kind, "exit", stdio))
            return handle, live(recorded(record)), pool.stats()

    handle, survivors, stats = run_async(main())
    assert len(recorded(record)) == 1
    assert not survivors, f"{kind}/{stdio}: {survivors} outlived the run"
    assert handle.run.outcome.kind is OutcomeKind.SUCCEEDED and handle.run.exit_code == 0
    assert [line for _, line in handle.capture.tail_lines()] == ["in place"]
    assert stats.runs_served == 1 and stats.fallback_runs == 0 and stats.crashes == 0


@pytest.mark.usefixtures("kill_recorded")
@pytest.mark.parametrize("kind", ["setsid", "daemon", "exec"])
def test_cancel_stops_what_a_pooled_run_started_outside_its_group(home, scripts, tmp_path, kind):
    record = tmp_path / f"pids-cancel-{kind}"

    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            handle = await engine.start(escape_spec(scripts, record, kind, "stay", "open"))
            deadline = time.monotonic() + 15
            while not any(line == "in place" for _, line in handle.capture.tail_lines()):
                assert time.monotonic() < deadline and not handle.done, "the run never got its escaper in place"
                await asyncio.sleep(0.01)
            handle.cancel()
            run = await handle.wait(15)
            return run, live(recorded(record))

    run, survivors = run_async(main())
    assert run.outcome.kind is OutcomeKind.CANCELLED
    assert len(recorded(record)) == 1 and not survivors, survivors


@pytest.mark.usefixtures("kill_recorded")
def test_the_next_run_in_the_same_server_is_not_taken_for_a_leftover(home, scripts, tmp_path):
    """One server, back-to-back runs: a run's "left" is only what that run left (never the spare,
    never the next run's root); every run succeeds and only the escapers are killed."""
    record = tmp_path / "pids-serial"

    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            runs = []
            for i in range(6):
                if i % 2:
                    runs.append(await engine.run(escape_spec(scripts, record, "daemon", "exit", "closed")))
                else:
                    runs.append(await engine.run(RunSpec(target=str(scripts / "hello.py"), interpreter=sys.executable)))
            return runs, live(recorded(record)), pool.stats()

    runs, survivors, stats = run_async(main())
    assert [r.run.outcome.kind for r in runs] == [OutcomeKind.SUCCEEDED] * 6
    assert len(recorded(record)) == 3 and not survivors
    assert stats.runs_served == 6 and stats.crashes == 0 and stats.workers[0].runs_served == 6


def test_a_pooled_runs_start_time_is_the_kernels_without_a_proc_read(home, scripts, tmp_path):
    """The server reports the child's start ticks: the run's pid_create_time is /proc/PID/stat's start
    (read here by the child itself), and the tree is a ServedTree that knew it from the message."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os\n"
        "with open(f'/proc/{os.getpid()}/stat', 'rb') as fh:\n"
        "    print(int(fh.read().rsplit(b')', 1)[1].split()[19]))\n"
    )
    trees = []

    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            worker = pool._workers[0] if pool._workers else None
            assert worker is not None and await pool.wait_ready(30)
            make = worker.make_tree

            def spy(pid, ticks=None):
                tree = make(pid, ticks)
                trees.append((tree, ticks))
                return tree

            worker.make_tree = spy  # records what the pool built; the tree itself is the real one
            return [await engine.run(RunSpec(target=str(probe), interpreter=sys.executable)) for _ in range(5)]

    handles = run_async(main())
    boot = psutil.boot_time()
    hz = os.sysconf("SC_CLK_TCK")
    for handle, (tree, ticks) in zip(handles, trees, strict=True):
        kernel_ticks = int(handle.capture.tail_lines()[0][1])
        assert isinstance(tree, ServedTree) and ticks == kernel_ticks
        assert abs(handle.run.pid_create_time - (kernel_ticks / hz + boot)) < 0.011


def test_a_clean_pooled_run_reads_nothing_in_proc_on_the_loop(scripts):
    """A run that leaves nothing behind: its start ticks come with "started" and its end check is
    one killpg probe - the loop thread opens no /proc file and lists no /proc directory for it.
    (Counted with an audit hook: every open() and os.listdir of the process raises an event.)"""
    counting = threading.local()
    seen: list[str] = []

    def hook(event: str, args: tuple) -> None:
        if getattr(counting, "on", False) and event in ("open", "os.listdir", "os.scandir"):
            path = args[0]
            if isinstance(path, (str, bytes)) and str(path).startswith("/proc"):
                seen.append(f"{event} {path}")

    sys.addaudithook(hook)  # cannot be removed: it counts only while this thread says so

    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool:
            assert await pool.wait_ready(30)
            launch = mark_run(resolve(RunSpec(target=str(scripts / "hello.py"), interpreter=sys.executable)), 1)
            await pool.execute(Job(run_id=0, launch=launch, capture=OutputCapture(None)), RunMode.ASYNC)  # warm
            counting.on = True
            try:
                outcomes = [
                    await pool.execute(Job(run_id=i, launch=launch, capture=OutputCapture(None)), RunMode.ASYNC)
                    for i in range(1, 6)
                ]
            finally:
                counting.on = False
            return outcomes, pool.stats()

    outcomes, stats = run_async(main())
    assert [o.kind for o in outcomes] == [OutcomeKind.SUCCEEDED] * 5 and stats.runs_served == 6
    assert seen == []
