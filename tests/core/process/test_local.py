"""The executor's behaviour suite: ASYNC and THREADED must behave the same.

Every test uses real processes and checks with psutil that the trees are gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from prismq_desktop.core import (
    OutcomeKind,
    OutputBatch,
    RunChanged,
    RunEngine,
    RunMode,
    RunSpec,
    RunStatus,
    Stream,
    TargetKind,
    read_log,
)
from prismq_desktop.core.process.executor import ModeError, choose_mode
from prismq_desktop.core.store import RunQuery
from tests.helpers import pid_gone, wait_for

MODES = [RunMode.ASYNC, RunMode.THREADED]
PY = sys.executable


def script(scripts: Path, name: str, *args: str, **kw) -> RunSpec:
    return RunSpec(target=str(scripts / name), args=tuple(args), interpreter=PY, **kw)


def log_bytes(path: str, stream: Stream) -> bytes:
    return b"".join(rec.data for rec, _ in read_log(path) if rec.stream is stream)


async def until_output(handle, needle: str, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for _, line in handle.capture.tail_lines()] if handle.capture else []
        if any(needle in line for line in lines):
            return lines
        if handle.done:
            break
        await asyncio.sleep(0.01)
    raise AssertionError(f"{needle!r} never appeared; got {handle.capture and handle.capture.tail_lines()}")


def pids_from(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines if line.startswith("pid ")]


def run_async(coro):
    with asyncio.Runner() as runner:
        return runner.run(coro)


@pytest.mark.parametrize("mode", MODES)
def test_success_output_env_and_record(home, scripts, mode, tmp_path):
    async def main():
        async with RunEngine(home) as engine:
            spec = script(scripts, "hello.py", "0", "a b", "c", cwd=str(tmp_path), env={"PRISMQ_TEST_VAR": "yes"})
            handle = await engine.run(spec, mode=mode)
            return handle, engine.registry.get(handle.id)

    handle, stored = run_async(main())
    assert handle.outcome.kind is OutcomeKind.SUCCEEDED and handle.exit_code == 0
    assert handle.stdout().splitlines() == ["hello a b c", f"cwd {tmp_path}", "env yes 1 1"]
    assert handle.stderr() == "to stderr"
    assert stored.status is RunStatus.DONE and stored.outcome.kind is OutcomeKind.SUCCEEDED
    assert stored.mode == mode.value and stored.pid and stored.argv[0] == PY
    assert log_bytes(stored.log_path, Stream.STDOUT).startswith(b"hello a b c\n")


@pytest.mark.parametrize("mode", MODES)
def test_nonzero_exit_is_failed_with_code(home, scripts, mode):
    async def main():
        async with RunEngine(home) as engine:
            return await engine.run(script(scripts, "hello.py", "3"), mode=mode)

    handle = run_async(main())
    assert handle.outcome.kind is OutcomeKind.FAILED and handle.exit_code == 3


@pytest.mark.parametrize("mode", MODES)
def test_events_are_persisted_before_they_are_announced(home, scripts, mode):
    seen = []

    async def main():
        async with RunEngine(home) as engine:
            def check(ev):
                if isinstance(ev, RunChanged):
                    stored = engine.registry.get(ev.run.id)
                    seen.append((ev.run.status, stored.status))

            engine.bus.subscribe_sync(check)
            await engine.run(script(scripts, "hello.py", "0"), mode=mode)

    run_async(main())
    assert [s for s, _ in seen] == [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.DONE]
    assert all(announced == stored for announced, stored in seen)


@pytest.mark.parametrize("mode", MODES)
def test_cancel_kills_children_and_grandchildren(home, scripts, mode):
    async def main():
        async with RunEngine(home) as engine:
            handle = await engine.start(script(scripts, "tree.py", "2"), mode=mode)
            lines = await until_output(handle, "ready")
            await until_output(handle, "pid", 5)
            # the grandchildren print their pids from the middle processes
            deadline = time.monotonic() + 10
            while len(pids_from([x for _, x in handle.capture.tail_lines()])) < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            lines = [x for _, x in handle.capture.tail_lines()]
            pids = pids_from(lines) + [handle.run.pid]
            assert len(pids) == 5
            assert all(psutil.pid_exists(p) for p in pids)
            assert handle.cancel()
            run = await handle.wait(15)
            return run, pids

    run, pids = run_async(main())
    assert run.outcome.kind is OutcomeKind.CANCELLED
    assert all(pid_gone(p) for p in pids)
    assert run.duration < 4.5  # they obey SIGTERM: no need to wait for the 5 s grace


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
@pytest.mark.parametrize("mode", MODES)
def test_sigterm_ignoring_tree_is_killed_after_grace(home, scripts, mode):
    async def main():
        async with RunEngine(home) as engine:
            handle = await engine.start(script(scripts, "ignore_term.py", grace_period=0.5), mode=mode)
            lines = await until_output(handle, "ready")
            pids = pids_from(lines) + [handle.run.pid]
            t0 = time.monotonic()
            handle.cancel()
            run = await handle.wait(15)
            return run, pids, time.monotonic() - t0

    run, pids, took = run_async(main())
    assert run.outcome.kind is OutcomeKind.CANCELLED
    assert run.exit_code == -9
    assert took >= 0.5
    assert all(pid_gone(p) for p in pids)


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
@pytest.mark.parametrize("mode", MODES)
def test_setsid_escaper_is_swept(home, scripts, mode):
    async def main():
        async with RunEngine(home) as engine:
            handle = await engine.start(script(scripts, "escaper.py", grace_period=1), mode=mode)
            lines = await until_output(handle, "ready")
            escaped = pids_from(lines)[0]
            assert os.getsid(escaped) != os.getsid(handle.run.pid)
            handle.cancel()
            run = await handle.wait(15)
            return run, escaped

    run, escaped = run_async(main())
    assert run.outcome.kind is OutcomeKind.CANCELLED
    assert wait_for(lambda: pid_gone(escaped), 5)


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
@pytest.mark.parametrize("mode", MODES)
def test_soft_timeout_stops_gracefully(home, scripts, mode):
    async def main():
        async with RunEngine(home) as engine:
            return await engine.run(script(scripts, "ticker.py", soft_timeout=0.3), mode=mode)

    handle = run_async(main())
    assert handle.outcome.kind is OutcomeKind.TIMED_OUT
    assert handle.exit_code == -15  # SIGTERM was enough
    assert "soft timeout" in handle.outcome.message


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
@pytest.mark.parametrize("mode", MODES)
def test_soft_then_hard_timeout_kills(home, scripts, mode):
    async def main():
        async with RunEngine(home) as engine:
            spec = script(scripts, "ignore_term.py", soft_timeout=0.3, hard_timeout=1.0, grace_period=30)
            handle = await engine.start(spec, mode=mode)
            lines = await until_output(handle, "ready")
            run = await handle.wait(20)
            return run, pids_from(lines)

    run, pids = run_async(main())
    assert run.outcome.kind is OutcomeKind.TIMED_OUT
    assert "hard timeout" in run.outcome.message
    assert run.exit_code == -9
    assert run.duration < 10  # the 30 s grace was cut short by the hard timeout
    assert all(pid_gone(p) for p in pids)


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
@pytest.mark.parametrize("mode", MODES)
def test_pause_and_resume(home, scripts, mode):
    async def main():
        async with RunEngine(home) as engine:
            handle = await engine.start(script(scripts, "ticker.py"), mode=mode)
            await until_output(handle, "3")
            assert engine.pause(handle.id)
            assert engine.get(handle.id).status is RunStatus.PAUSED
            assert engine.registry.get(handle.id).status is RunStatus.PAUSED
            await asyncio.sleep(0.1)
            assert psutil.Process(handle.run.pid).status() == psutil.STATUS_STOPPED
            frozen = sum(handle.capture.bytes_read.values())
            await asyncio.sleep(0.3)
            assert sum(handle.capture.bytes_read.values()) == frozen
            assert engine.resume(handle.id)
            assert engine.get(handle.id).status is RunStatus.RUNNING
            deadline = time.monotonic() + 5
            while sum(handle.capture.bytes_read.values()) <= frozen + 8 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert sum(handle.capture.bytes_read.values()) > frozen + 8
            engine.pause(handle.id)
            handle.cancel()  # cancelling a paused run must still end it promptly
            return await handle.wait(10)

    run = run_async(main())
    assert run.outcome.kind is OutcomeKind.CANCELLED and run.exit_code == -15


def expected_firehose(mb: float) -> str:
    total = int(mb * 1_000_000) // 80
    h = hashlib.sha256()
    for i in range(0, total, 4096):
        h.update(b"".join(b"%079d\n" % (i + k) for k in range(min(4096, total - i))))
    return h.hexdigest()


@pytest.mark.parametrize("mode", MODES)
def test_200mb_firehose_no_deadlock_and_byte_exact_log(home, scripts, mode):
    got = {"bytes": 0, "batches": 0}

    async def main():
        async with RunEngine(home, tail_lines=500) as engine:
            def count(ev):
                if isinstance(ev, OutputBatch):
                    got["batches"] += 1
                    got["bytes"] += ev.size

            engine.bus.subscribe_sync(count)
            return await engine.run(script(scripts, "firehose.py", "200"), mode=mode)

    handle = run_async(main())
    assert handle.outcome.kind is OutcomeKind.SUCCEEDED
    data = log_bytes(handle.run.log_path, Stream.STDOUT)
    assert len(data) == 200_000_000
    assert hashlib.sha256(data).hexdigest() == expected_firehose(200)
    assert got["bytes"] == 200_000_000
    assert got["batches"] < 200_000_000 / 65536  # batched, not one event per chunk
    assert len(handle.capture.tail) == 500
    assert handle.capture.tail[-1] == (Stream.STDOUT, f"{200_000_000 // 80 - 1:079d}")


@pytest.mark.parametrize("mode", MODES)
def test_stderr_only_flood(home, scripts, mode):
    async def main():
        async with RunEngine(home) as engine:
            return await engine.run(script(scripts, "firehose.py", "30", "stderr"), mode=mode)

    handle = run_async(main())
    assert handle.outcome.kind is OutcomeKind.SUCCEEDED
    assert len(log_bytes(handle.run.log_path, Stream.STDERR)) == 30_000_000
    assert log_bytes(handle.run.log_path, Stream.STDOUT) == b""
    assert handle.stdout() == ""


@pytest.mark.parametrize("mode", MODES)
def test_binary_and_non_utf8_output(home, scripts, mode):
    async def main():
        async with RunEngine(home) as engine:
            a = await engine.run(script(scripts, "rawbytes.py", "binary"), mode=mode)
            b = await engine.run(script(scripts, "rawbytes.py", "nonutf8"), mode=mode)
            return a, b

    a, b = run_async(main())
    assert a.outcome.kind is OutcomeKind.SUCCEEDED and b.outcome.kind is OutcomeKind.SUCCEEDED
    assert log_bytes(a.run.log_path, Stream.STDOUT) == bytes(range(256)) * 64
    assert log_bytes(b.run.log_path, Stream.STDOUT) == b"caf\xe9 latin1\n\xff\xfe broken \xc3\n ok \xe2\x82\xac\n"
    assert b.stdout().splitlines() == ["caf\ufffd latin1", "\ufffd\ufffd broken \ufffd", " ok €"]


@pytest.mark.parametrize("mode", MODES)
def test_20mb_line_without_newline_keeps_memory_bounded(home, scripts, mode):
    async def main():
        async with RunEngine(home, max_line_chars=10_000) as engine:
            rss0 = psutil.Process().memory_info().rss
            handle = await engine.run(script(scripts, "rawbytes.py", "longline", "20"), mode=mode)
            return handle, psutil.Process().memory_info().rss - rss0

    handle, growth = run_async(main())
    assert handle.outcome.kind is OutcomeKind.SUCCEEDED
    data = log_bytes(handle.run.log_path, Stream.STDOUT)
    assert len(data) == 20_000_003 and data.endswith(b"xEND")
    (stream, line), = handle.capture.tail_lines()
    assert stream is Stream.STDOUT
    assert line.startswith("x" * 10_000) and len(line) < 10_100
    assert "19990003 more characters in the log file" in line
    assert growth < 60 * 2**20, f"engine RSS grew by {growth / 2**20:.0f} MiB for a 20 MB line"


@pytest.mark.parametrize("mode", MODES)
def test_carriage_return_progress_is_one_line(home, scripts, mode):
    async def main():
        async with RunEngine(home) as engine:
            return await engine.run(script(scripts, "progress.py"), mode=mode)

    handle = run_async(main())
    assert handle.stdout().splitlines() == ["progress 100% |##########|", "done"]


@pytest.mark.parametrize("mode", MODES)
def test_background_child_is_stopped_when_root_exits(home, mode, tmp_path):
    code = (
        "import subprocess, sys; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)"
    )

    async def main():
        async with RunEngine(home) as engine:
            return await engine.run(RunSpec(PY, ("-c", code)), mode=mode)

    handle = run_async(main())
    assert handle.outcome.kind is OutcomeKind.SUCCEEDED
    assert wait_for(lambda: pid_gone(int(handle.stdout())), 5)


@pytest.mark.parametrize("mode", MODES)
def test_slow_subscriber_never_blocks_reading(home, scripts, mode):
    seen = {"events": 0, "dropped": 0, "published": 0}

    async def main():
        async with RunEngine(home) as engine:
            def count(ev):
                seen["published"] += 1

            engine.bus.subscribe_sync(count)

            async def slow(ev):
                seen["events"] += 1
                if isinstance(ev, OutputBatch):
                    seen["dropped"] += ev.dropped_bytes
                await asyncio.sleep(0.2)

            sub = engine.bus.subscribe(slow, max_output_bytes=2 * 2**20)
            handle = await engine.run(script(scripts, "firehose.py", "60"), mode=mode)
            handled_during_run = seen["events"]
            deadline = time.monotonic() + 10
            while not seen["dropped"] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            sub.close()
            return handle, handled_during_run

    handle, handled_during_run = run_async(main())
    assert handle.outcome.kind is OutcomeKind.SUCCEEDED
    assert len(log_bytes(handle.run.log_path, Stream.STDOUT)) == 60_000_000
    # the slow subscriber (0.2 s per event) fell far behind the ~20 batches/s the run published,
    # the reading did not wait for it, and it was told how much output it missed
    assert handled_during_run < seen["published"] / 2
    assert seen["dropped"] > 0


BAD_INPUTS = [
    (lambda d: RunSpec(str(d / "missing.py")), "script not found"),
    (lambda d: RunSpec(str(d), kind=TargetKind.SCRIPT), "is a directory"),
    (lambda d: RunSpec(str(d / "plain.txt"), kind=TargetKind.EXECUTABLE), "not executable"),
    (lambda d: RunSpec("no-such-command-prismq"), "command not found"),
    (lambda d: RunSpec(str(d / "ok.py"), interpreter="/nonexistent/python9"), "interpreter not found"),
    (lambda d: RunSpec(str(d / "ok.py"), cwd=str(d / "nope")), "working directory does not exist"),
    (lambda d: RunSpec(str(d / "ok.py"), args="one 'unterminated"), "cannot parse arguments"),
    (lambda d: RunSpec(str(d / "ok.py"), encoding="no-such-codec"), "unknown output encoding"),
    (lambda d: RunSpec("not a module!", kind=TargetKind.MODULE), "not a module name"),
    (lambda d: RunSpec(""), "nothing to run"),
]


@pytest.mark.parametrize("mode", MODES + [RunMode.LOCAL])
@pytest.mark.parametrize(("make", "message"), BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_fails_to_start_and_is_recorded(home, tmp_path, mode, make, message):
    (tmp_path / "plain.txt").write_text("not a program")
    (tmp_path / "ok.py").write_text("open('started', 'w').write('yes')\n")
    spec = make(tmp_path)

    async def main():
        async with RunEngine(home) as engine:
            return await engine.run(spec, mode=mode)

    if mode is RunMode.LOCAL:
        engine = RunEngine(home)
        handle = engine.run_blocking(spec)
        engine.close()
    else:
        handle = run_async(main())
    assert handle.outcome.kind is OutcomeKind.FAILED_TO_START
    assert message in handle.outcome.message
    engine = RunEngine(home)
    stored = engine.registry.get(handle.id)
    engine.close()
    assert stored.status is RunStatus.DONE and stored.outcome.kind is OutcomeKind.FAILED_TO_START
    assert message in stored.error
    assert not (tmp_path / "started").exists()


def test_dry_run_starts_nothing(home, tmp_path):
    marker = tmp_path / "started"
    target = tmp_path / "job.py"
    target.write_text(f"open({str(marker)!r}, 'w').write('yes')\n")

    async def main():
        async with RunEngine(home) as engine:
            return await engine.run(RunSpec(str(target), ("--x",), interpreter=PY, env={"API_TOKEN": "s3cret"}),
                                    mode=RunMode.DRY_RUN)

    before = set(p.pid for p in psutil.Process().children(recursive=True))
    handle = run_async(main())
    assert set(p.pid for p in psutil.Process().children(recursive=True)) <= before
    assert not marker.exists()
    run = handle.run
    assert run.dry_run and run.outcome.kind is OutcomeKind.SUCCEEDED and "dry run" in run.outcome.message
    assert run.argv == (PY, str(target), "--x") and run.pid is None
    meta = [rec.data for rec, _ in read_log(run.log_path) if rec.stream is Stream.META]
    assert b'"argv"' in meta[0] and b"API_TOKEN" in meta[0] and b"s3cret" not in meta[0]


def test_local_mode_runs_without_an_event_loop(home, scripts):
    events = []
    engine = RunEngine(home)
    engine.bus.subscribe_sync(events.append)
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    handle = engine.run_blocking(script(scripts, "hello.py", "4", "x"))
    engine.close()
    assert handle.run.mode == "local"
    assert handle.outcome.kind is OutcomeKind.FAILED and handle.exit_code == 4
    assert handle.stdout().splitlines()[0] == "hello x"
    assert log_bytes(handle.run.log_path, Stream.STDERR) == b"to stderr\n"
    assert any(isinstance(e, OutputBatch) for e in events)
    assert [e.run.status for e in events if isinstance(e, RunChanged)] == [
        RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.DONE]


def test_local_mode_cancel_from_another_thread(home, scripts):
    engine = RunEngine(home)
    started = threading.Event()
    result = {}

    def work():
        result["handle"] = engine.run_blocking(script(scripts, "tree.py", "1"), on_started=lambda h: started.set())

    t = threading.Thread(target=work)
    t.start()
    assert started.wait(10)
    time.sleep(0.5)
    run_id = max(r.id for r in engine.registry.query(RunQuery(limit=5)))
    assert engine.cancel(run_id)
    t.join(15)
    engine.close()
    assert result["handle"].outcome.kind is OutcomeKind.CANCELLED


def test_mode_choice_auto_env_and_errors(monkeypatch):
    monkeypatch.delenv("PRISMQ_RUN_MODE", raising=False)
    assert choose_mode() is RunMode.LOCAL  # no loop running

    async def inside():
        return choose_mode()

    assert run_async(inside()) is RunMode.ASYNC
    monkeypatch.setenv("PRISMQ_RUN_MODE", "threaded")
    assert run_async(inside()) is RunMode.THREADED
    assert choose_mode(RunMode.ASYNC) is RunMode.ASYNC  # an explicit mode beats the variable
    monkeypatch.setenv("PRISMQ_RUN_MODE", "warp-speed")
    with pytest.raises(ModeError, match="unknown run mode 'warp-speed'"):
        choose_mode()


def test_env_override_is_used_by_the_engine(home, scripts, monkeypatch):
    monkeypatch.setenv("PRISMQ_RUN_MODE", "threaded")

    async def main():
        async with RunEngine(home) as engine:
            return await engine.run(script(scripts, "hello.py"))

    assert run_async(main()).run.mode == "threaded"


@pytest.mark.parametrize("mode", MODES)
def test_cancel_right_after_start_and_twice(home, scripts, mode):
    async def main():
        async with RunEngine(home) as engine:
            handle = await engine.start(script(scripts, "ticker.py"), mode=mode)
            assert handle.cancel()
            handle.cancel()
            return await handle.wait(10)

    run = run_async(main())
    assert run.outcome.kind is OutcomeKind.CANCELLED


def test_shutdown_cancels_live_runs(home, scripts):
    async def main():
        engine = RunEngine(home)
        handle = await engine.start(script(scripts, "tree.py", "1"))
        lines = await until_output(handle, "ready")
        await engine.shutdown()
        return handle, pids_from(lines) + [handle.run.pid]

    handle, pids = run_async(main())
    assert handle.outcome.kind is OutcomeKind.CANCELLED
    assert all(pid_gone(p) for p in pids)
