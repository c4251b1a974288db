"""The ASYNC hot path (issue #17): no thread per run, every run recorded and announced in order.

Real children (`/bin/true`, `sh`), real registry; the trees are checked gone with psutil.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import threading

import psutil
import pytest

from prismq_desktop.core import OutcomeKind, RunChanged, RunEngine, RunMode, RunSpec, RunStatus, Stream, read_log
from prismq_desktop.core.process import local

pytestmark = pytest.mark.posix_only  # POSIX-only: sh children and the Linux pidfd path
TRUE = shutil.which("true") or "/bin/true"


_BEFORE: set[int] = set()


@pytest.fixture(autouse=True)
def _children_before() -> None:
    """What already ran before the test (a session's redis-server, say) is not the test's."""
    _BEFORE.clear()
    _BEFORE.update(p.pid for p in psutil.Process().children(recursive=True))


def _no_children_left() -> None:
    alive = [p for p in psutil.Process().children(recursive=True)
             if p.pid not in _BEFORE and p.status() != psutil.STATUS_ZOMBIE]
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
            names: dict[int | None, str] = {}
            handles = [await engine.start(RunSpec("sh", ("-c", f"sleep 0.2; echo run{i}; exit {i % 3}"),
                                                  kind="executable"), mode=RunMode.ASYNC) for i in range(12)]
            while not all(h.done for h in handles):
                for t in threading.enumerate():
                    seen_threads.add(t.ident)
                    names[t.ident] = t.name
                await asyncio.sleep(0.01)
            new = sorted(names[i] for i in seen_threads - before)
            # none per run; on a loaded machine a run whose pipes outlive LINGER may have its
            # leftovers killed in the loop's (bounded) default executor: at most one such thread
            assert len(new) <= 1 and all(n.startswith("asyncio_") for n in new), f"threads started for ASYNC runs: {new}"
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


def _write_transactions(engine: RunEngine) -> list[int]:
    """Count the registry's write transactions (explicit COMMITs + autocommitted writes)."""
    count = [0]
    in_tx = [False]

    def trace(sql: str) -> None:
        word = sql.lstrip()[:8].upper()
        if word.startswith("BEGIN"):
            in_tx[0] = True
        elif word.startswith("COMMIT"):
            in_tx[0] = False
            count[0] += 1
        elif word.startswith("ROLLBACK"):
            in_tx[0] = False
        elif not in_tx[0] and word.startswith(("INSERT", "UPDATE", "DELETE")):
            count[0] += 1

    engine.registry._db.set_trace_callback(trace)
    return count


def test_starts_and_ends_of_many_runs_share_transactions_and_are_stored_before_announced(home) -> None:
    async def main() -> None:
        async with RunEngine(home) as engine:
            n = 40
            writes = _write_transactions(engine)
            stored_when_announced: list[tuple[int, str, str]] = []

            def check(ev: object) -> None:  # what the registry holds at the moment of the announcement
                if isinstance(ev, RunChanged):
                    row = engine.registry.get(ev.run.id)
                    stored_when_announced.append((ev.run.id, ev.kind, row.status.value if row else "missing"))

            engine.bus.subscribe_sync(check)
            handles = [await engine.start(RunSpec(TRUE, kind="executable"), mode=RunMode.ASYNC) for _ in range(n)]
            runs = [await h.wait(timeout=60) for h in handles]
            engine.registry._db.set_trace_callback(None)
            assert all(r.status is RunStatus.DONE and r.exit_code == 0 for r in runs)
            for h in handles:  # the waiter is released only once the end is stored
                assert engine.registry.get(h.id).status is RunStatus.DONE  # type: ignore[union-attr]
                mine = [(k, st) for rid, k, st in stored_when_announced if rid == h.id]
                assert mine == [("queued", "queued"), ("started", "running"), ("finished", "done")], mine
            # 1 insert for the burst + at most 2 a run unbatched; batched, runs share them
            assert writes[0] < 1 + 2 * n, writes[0]
        _no_children_left()

    asyncio.run(main())


def test_a_locked_registry_keeps_batched_ends_until_stored(home, scripts, monkeypatch) -> None:
    from prismq_desktop.core.paths import registry_path
    from prismq_desktop.core.store.schema import ENV_BUSY_TIMEOUT
    from tests.helpers import LockHolder

    monkeypatch.setenv(ENV_BUSY_TIMEOUT, "0.2")

    async def main() -> None:
        async with RunEngine(home) as engine:
            events: list[RunChanged] = []
            engine.bus.subscribe_sync(lambda ev: events.append(ev) if isinstance(ev, RunChanged) else None)
            handles = [await engine.start(RunSpec("sh", ("-c", "sleep 0.3"), kind="executable"), mode=RunMode.ASYNC)
                       for _ in range(4)]
            while not all(h.run.status is RunStatus.RUNNING for h in handles):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            holder = LockHolder(registry_path(home), scripts)  # locked while they end
            try:
                await asyncio.sleep(1.0)
                assert not any(h.done for h in handles), "released before its end was stored"
                assert not any(ev.kind == "finished" for ev in events), "announced before stored"
                assert engine.unsaved >= 1
            finally:
                holder.release()
            runs = [await h.wait(timeout=30) for h in handles]
            assert all(r.status is RunStatus.DONE and r.exit_code == 0 for r in runs)
            for h in handles:
                assert engine.registry.get(h.id).status is RunStatus.DONE  # type: ignore[union-attr]
                assert [ev.kind for ev in events if ev.run.id == h.id] == ["queued", "started", "finished"]
        _no_children_left()

    asyncio.run(main())


def test_the_cached_child_environment_follows_every_change_of_os_environ(home, monkeypatch) -> None:
    """The base environment is copied once, not per run: a change between two runs must show."""
    spec = RunSpec("sh", ("-c", 'echo "[${PRISMQ_T_X-unset}]"'), kind="executable")

    async def main() -> list[str]:
        seen = []
        async with RunEngine(home) as engine:
            for value in ("one", "two", None, "three"):
                if value is None:
                    monkeypatch.delenv("PRISMQ_T_X", raising=False)
                else:
                    monkeypatch.setenv("PRISMQ_T_X", value)
                h = await engine.run(spec, mode=RunMode.ASYNC)
                seen.append(h.stdout().strip())
            override = await engine.run(RunSpec("sh", ("-c", 'echo "[$PRISMQ_T_X]"'), kind="executable",
                                                env={"PRISMQ_T_X": "spec"}), mode=RunMode.ASYNC)
            seen.append(override.stdout().strip())
        return seen

    assert asyncio.run(main()) == ["[one]", "[two]", "[unset]", "[three]", "[spec]"]


def test_a_blocking_run_inside_a_running_loop_is_stored_and_released_before_it_returns(home) -> None:
    """run_blocking never leaves its end to a loop turn that cannot come while it blocks."""

    async def main() -> None:
        async with RunEngine(home) as engine:
            h = engine.run_blocking(RunSpec("sh", ("-c", "echo x; exit 3"), kind="executable"))
            assert h.done and h.exit_code == 3
            assert engine.registry.get(h.id).status is RunStatus.DONE  # type: ignore[union-attr]

    asyncio.run(main())


def test_the_start_record_shows_each_runs_own_environment_worked_out_once_per_launch(home, monkeypatch) -> None:
    """The shown (masked) argv/env of a cached launch is reused, but follows os.environ, keeps
    each run's own markers, masks secrets and shows removed variables as removed."""
    import json

    monkeypatch.setenv("PRISMQ_T_GONE", "here")
    spec = RunSpec("sh", ("-c", "echo out", "--password=hunter2"), kind="executable",
                   env={"PRISMQ_T_API_TOKEN": "s3cr3t-value", "PRISMQ_T_PLAIN": "p", "PRISMQ_T_GONE": None})

    def start_record(path: str) -> dict:
        for rec, _ in read_log(path):
            if rec.stream is Stream.META:
                data = json.loads(rec.data)
                if data.get("event") == "start":
                    return data
        raise AssertionError("no start record")

    async def main() -> list[dict]:
        records = []
        async with RunEngine(home) as engine:
            for same in (False, False, True):  # the third: our environment now has the spec's value
                if same:
                    monkeypatch.setenv("PRISMQ_T_PLAIN", "p")
                else:
                    monkeypatch.delenv("PRISMQ_T_PLAIN", raising=False)
                h = await engine.run(spec, mode=RunMode.ASYNC)
                assert h.stdout().strip() == "out"
                records.append(start_record(h.run.log_path))
        return records

    records = asyncio.run(main())
    tags = [r["env"].pop("PRISMQ_RUN_TAG") for r in records]
    ids = [r["env"].pop("PRISMQ_RUN_ID") for r in records]
    assert len(set(tags)) == 3 and len(set(ids)) == 3 and all(tag.split("-")[1] == i for tag, i in zip(tags, ids, strict=True))
    shown = [{k: v for k, v in r["env"].items() if k.startswith("PRISMQ_T_")} for r in records]
    assert shown[0] == shown[1] == {"PRISMQ_T_API_TOKEN": "••••••", "PRISMQ_T_PLAIN": "p", "PRISMQ_T_GONE": None}
    assert shown[2] == {"PRISMQ_T_API_TOKEN": "••••••", "PRISMQ_T_GONE": None}  # no longer differs from ours
    for r in records:
        assert "hunter2" not in json.dumps(r) and r["argv"][-1] == "--password=••••••"
    text = " ".join(json.dumps(r) for r in records)
    assert "s3cr3t-value" not in text
