"""The ASYNC hot path (issue #17): no thread per run, every run recorded and announced in order.

Real children (`/bin/true`, `sh`), real registry; the trees are checked gone with psutil.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import threading

import psutil
import pytest

from prismq_desktop.core import OutcomeKind, RunChanged, RunEngine, RunMode, RunSpec, RunStatus, Stream, read_log
from prismq_desktop.core.process import local

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX binaries")
TRUE = shutil.which("true") or "/bin/true"


def _no_children_left() -> None:
    alive = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running: {alive}"


def test_pidfd_is_used_on_linux() -> None:
    """The probe must find pidfd on this Linux CI, or the thread-free path is never taken."""
    assert local._PIDFD_OK or not sys.platform.startswith("linux")


def test_async_runs_start_no_thread_and_are_announced_in_order(home) -> None:
    async def main() -> None:
        async with RunEngine(home) as engine:
            events: list[RunChanged] = []
            engine.bus.subscribe_sync(lambda ev: events.append(ev) if isinstance(ev, RunChanged) else None)
            await engine.run(RunSpec(TRUE, kind="executable"), mode=RunMode.ASYNC)  # the monitor's thread starts
            before = {t.ident for t in threading.enumerate()}
            seen_threads: set[int | None] = set()
            handles = [await engine.start(RunSpec("sh", ("-c", f"sleep 0.2; echo run{i}; exit {i % 3}"),
                                                  kind="executable"), mode=RunMode.ASYNC) for i in range(12)]
            while not all(h.done for h in handles):
                seen_threads |= {t.ident for t in threading.enumerate()}
                await asyncio.sleep(0.01)
            assert seen_threads - before == set(), "a thread was started for an ASYNC run"
            for i, h in enumerate(handles):
                run = engine.registry.get(h.id)
                assert run is not None and run.status is RunStatus.DONE and run.exit_code == i % 3
                assert h.stdout().rstrip("\n") == f"run{i}"
                out = b"".join(r.data for r, _ in read_log(run.log_path) if r.stream is Stream.STDOUT)
                assert out == f"run{i}\n".encode()
                kinds = [ev.kind for ev in events if ev.run.id == h.id]
                assert kinds == ["queued", "started", "finished"]
        _no_children_left()

    asyncio.run(main())


def test_async_run_killed_by_a_signal_and_cancelled(home) -> None:
    async def main() -> None:
        async with RunEngine(home) as engine:
            killed = await engine.run(RunSpec("sh", ("-c", "kill -9 $$"), kind="executable"), mode=RunMode.ASYNC)
            assert killed.run.exit_code == -signal.SIGKILL
            assert killed.outcome is not None and killed.outcome.kind is OutcomeKind.FAILED
            h = await engine.start(RunSpec("sh", ("-c", "echo up; exec sleep 30"), kind="executable"), mode=RunMode.ASYNC)
            for _ in range(500):
                if "up" in h.stdout():
                    break
                await asyncio.sleep(0.01)
            pid = h.run.pid
            assert pid and h.cancel()
            run = await h.wait(timeout=15)
            assert run.outcome is not None and run.outcome.kind is OutcomeKind.CANCELLED
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        _no_children_left()

    asyncio.run(main())


def test_without_pidfd_the_waiter_thread_path_gives_the_same(home, monkeypatch) -> None:
    monkeypatch.setenv("PRISMQ_NO_PIDFD", "1")

    async def main() -> None:
        async with RunEngine(home) as engine:
            h = await engine.run(RunSpec("sh", ("-c", "echo out; echo err >&2; exit 7"), kind="executable"),
                                 mode=RunMode.ASYNC)
            assert h.exit_code == 7 and h.stdout().strip() == "out" and h.stderr().strip() == "err"
        _no_children_left()

    asyncio.run(main())


def test_a_missing_binary_fails_to_start_with_one_line(home) -> None:
    async def main() -> None:
        async with RunEngine(home) as engine:
            h = await engine.run(RunSpec("/nonexistent/prismq-no-such-binary", kind="executable"), mode=RunMode.ASYNC)
            assert h.outcome is not None and h.outcome.kind is OutcomeKind.FAILED_TO_START
            assert "\n" not in (h.outcome.message or "")

    asyncio.run(main())
