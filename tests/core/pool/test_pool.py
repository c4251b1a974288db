"""ResourcePool: pooled runs behave like spawned ones, and the pool manages its workers.

Real processes throughout (fork servers and their children); every test closes its pool and
the autouse fixture checks with psutil that nothing is left running.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from prismq_desktop.core import OutcomeKind, RunEngine, RunMode, RunSpec, RunStatus, Stream, TargetKind, read_log
from prismq_desktop.core.pool import ResourcePool, pool_supported
from prismq_desktop.core.process.launch import resolve
from tests.helpers import pid_gone

# POSIX-only: the fork server (the Windows pool is tested in tests/core/process/test_windows.py)
pytestmark = [pytest.mark.posix_only, pytest.mark.skipif(not pool_supported(), reason="no fork server here")]

PY = sys.executable
PRELOAD = ("json",)  # small, so each test's servers start quickly


def spec(scripts: Path, name: str, *args: str, **kw) -> RunSpec:
    return RunSpec(target=str(scripts / name), args=tuple(args), interpreter=PY, **kw)


def log_bytes(path: str, stream: Stream) -> bytes:
    return b"".join(rec.data for rec, _ in read_log(path) if rec.stream is stream)


def lines_of(handle) -> list[str]:
    return [line for _, line in handle.capture.tail_lines()] if handle.capture else []


async def until_output(handle, needle: str, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = lines_of(handle)
        if any(needle in line for line in lines):
            return lines
        if handle.done:
            break
        await asyncio.sleep(0.01)
    raise AssertionError(f"{needle!r} never appeared; got {lines_of(handle)}")


async def until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def kv(lines: list[str]) -> dict[str, str]:
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] if " " in line else "" for line in lines}


def run_async(coro):
    with asyncio.Runner() as runner:
        return runner.run(coro)


# ---------------------------------------------------------------------------- behaviour of one run
def test_pooled_run_output_is_captured_separately_and_byte_exact(home, scripts, tmp_path):
    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            hello = await engine.run(spec(scripts, "hello.py", "0", "a b", cwd=str(tmp_path), env={"PRISMQ_TEST_VAR": "yes"}))
            binary = await engine.run(spec(scripts, "rawbytes.py", "binary"))
            nonutf8 = await engine.run(spec(scripts, "rawbytes.py", "nonutf8"))
            stored = engine.registry.get(hello.id)
            return hello, binary, nonutf8, stored, pool.stats()

    hello, binary, nonutf8, stored, stats = run_async(main())
    assert hello.outcome.kind is OutcomeKind.SUCCEEDED and hello.exit_code == 0
    assert hello.stdout().splitlines() == ["hello a b", f"cwd {tmp_path}", "env yes 1 1"]
    assert hello.stderr() == "to stderr"
    assert log_bytes(stored.log_path, Stream.STDOUT) == f"hello a b\ncwd {tmp_path}\nenv yes 1 1\n".encode()
    assert log_bytes(stored.log_path, Stream.STDERR) == b"to stderr\n"
    assert stored.status is RunStatus.DONE and stored.pid and stored.argv[0] == PY
    metas = [rec.data for rec, _ in read_log(stored.log_path) if rec.stream is Stream.META]
    assert any(b'"event": "pool"' in m for m in metas)
    assert log_bytes(binary.run.log_path, Stream.STDOUT) == bytes(range(256)) * 64
    assert log_bytes(nonutf8.run.log_path, Stream.STDOUT) == b"caf\xe9 latin1\n\xff\xfe broken \xc3\n ok \xe2\x82\xac\n"
    assert stats.runs_served == 3 and stats.fallback_runs == 0


CASES = [
    ("ok",),
    ("exit", "3"),
    ("exit", "300"),
    ("exit-none",),
    ("exit-msg",),
    ("raise",),
    ("chained",),
    ("kbd",),
    ("thread",),
    ("atexit",),
    ("buffered",),
    ("unicode",),
    ("excepthook",),
]


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
@pytest.mark.parametrize("mode", [RunMode.ASYNC, RunMode.THREADED])
def test_pooled_runs_end_exactly_like_spawned_runs(home, scripts, mode):
    """Outcome, exit code and both streams (byte for byte, tracebacks included) match a fresh interpreter's."""

    async def main():
        results = []
        async with (
            ResourcePool(size=1, preload=PRELOAD) as pool,
            RunEngine(home / "pool", executor=pool) as pooled,
            RunEngine(home / "spawn") as spawned,
        ):
            for case in CASES:
                env = {"PYTHONUNBUFFERED": None} if case[0] == "buffered" else {}
                s = spec(scripts, "pool_outcomes.py", *case, env=env)
                a, b = await pooled.run(s, mode=mode), await spawned.run(s, mode=mode)
                results.append((case, a.run, b.run))
            return results, pool.stats()

    results, stats = run_async(main())
    assert stats.runs_served == len(CASES) and stats.fallback_runs == 0
    for case, a, b in results:
        assert (a.outcome, a.exit_code) == (b.outcome, b.exit_code), case
        for stream in (Stream.STDOUT, Stream.STDERR):
            assert log_bytes(a.log_path, stream) == log_bytes(b.log_path, stream), (case, stream)
    by_case = {case[0]: a for case, a, _ in results}
    assert by_case["raise"].outcome.kind is OutcomeKind.FAILED and by_case["raise"].exit_code == 1
    err = log_bytes(by_case["raise"].log_path, Stream.STDERR).decode()
    assert err.startswith("to stderr\nTraceback (most recent call last):\n") and "ValueError: boom from the script" in err
    assert "runpy" not in err and "forkserver" not in err
    assert by_case["kbd"].exit_code == -signal.SIGINT
    assert by_case["exit-msg"].exit_code == 1
    assert log_bytes(by_case["exit-msg"].log_path, Stream.STDERR).endswith(b"a message for stderr\n")
    assert log_bytes(by_case["thread"].log_path, Stream.STDOUT).endswith(b"thread done\n")
    assert log_bytes(by_case["atexit"].log_path, Stream.STDOUT).endswith(b"atexit ran\n")


def test_argv_cwd_env_per_run_and_module_runs(home, scripts, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()

    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            a = await engine.run(spec(scripts, "pool_state.py", "x", "y z", cwd=str(one), env={"POOL_VAR": "first"}))
            b = await engine.run(spec(scripts, "pool_state.py", "--flag", cwd=str(two), env={"POOL_VAR": None}))
            m = await engine.run(
                RunSpec(target="pool_state", kind=TargetKind.MODULE, args=("mod-arg",), cwd=str(scripts), interpreter=PY)
            )
            return a, b, m, pool.stats()

    a, b, m, stats = run_async(main())
    assert stats.runs_served == 3 and stats.fallback_runs == 0
    ka, kb, km = kv(lines_of(a)), kv(lines_of(b)), kv(lines_of(m))
    assert ka["argv"] == "['x', 'y z'] pool_state.py __main__" and ka["cwd"] == str(one) and ka["env"] == "- first"
    assert kb["argv"] == "['--flag'] pool_state.py __main__" and kb["cwd"] == str(two) and kb["env"] == "- -"
    assert ka["path0"] == str(scripts) and ka["session"] == "True"
    assert km["argv"] == "['mod-arg'] pool_state.py __main__" and km["path0"] == str(scripts)
    assert all(h.outcome.kind is OutcomeKind.SUCCEEDED for h in (a, b, m))


def test_each_run_is_isolated_from_the_previous_ones(home, scripts):
    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            return [await engine.run(spec(scripts, "pool_state.py")) for _ in range(3)]

    handles = run_async(main())
    outputs = [kv(lines_of(h)) for h in handles]
    assert len({o["ppid"] for o in outputs}) == 1  # one fork server served all three
    for out in outputs:
        assert out["preimported"] == "False"
        assert out["counter"] == "0"  # the module global one run changed is fresh in the next
        assert out["mark"] == "None"  # so is the attribute set on the (preloaded) json module
        assert out["env"] == "- -"
        assert out["session"] == "True"


# ---------------------------------------------------------------------------- control
@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_cancel_kills_the_whole_tree_of_a_pooled_run(home, scripts):
    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            handle = await engine.start(spec(scripts, "tree.py", "2"))
            await until_output(handle, "ready")
            await until(lambda: len([x for x in lines_of(handle) if x.startswith("pid ")]) >= 4)
            pids = [int(x.split()[1]) for x in lines_of(handle) if x.startswith("pid ")] + [handle.run.pid]
            assert len(pids) == 5 and all(psutil.pid_exists(p) for p in pids)
            assert psutil.Process(handle.run.pid).ppid() == pool.stats().workers[0].pid
            assert handle.pause() and handle.run.status is RunStatus.PAUSED
            await until(lambda: psutil.Process(handle.run.pid).status() == psutil.STATUS_STOPPED, 5)
            assert handle.resume()
            assert handle.cancel()
            run = await handle.wait(15)
            return run, pids, pool.stats()

    run, pids, stats = run_async(main())
    assert run.outcome.kind is OutcomeKind.CANCELLED
    assert all(pid_gone(p) for p in pids)
    assert run.duration < 4.5  # SIGTERM to the group was enough
    assert stats.crashes == 0 and stats.workers[0].state == "idle"


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_soft_timeout_of_a_pooled_run(home, scripts):
    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            return await engine.run(spec(scripts, "ticker.py", soft_timeout=0.3))

    handle = run_async(main())
    assert handle.outcome.kind is OutcomeKind.TIMED_OUT
    assert handle.exit_code == -signal.SIGTERM
    assert "soft timeout" in handle.outcome.message


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_worker_crash_fails_the_run_and_the_pool_replaces_the_worker(home, scripts):
    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            handle = await engine.start(spec(scripts, "ticker.py"))
            await until_output(handle, "3")
            before = pool.stats()
            server = before.workers[0]
            assert server.state == "busy" and server.current_run == handle.id
            child = handle.run.pid
            os.kill(server.pid, signal.SIGKILL)
            run = await handle.wait(15)
            await until(lambda: pool.stats().workers and pool.stats().workers[0].pid != server.pid)
            after = await engine.run(spec(scripts, "hello.py"))
            return run, child, server.pid, pool.stats(), after

    run, child, server_pid, stats, after = run_async(main())
    assert run.outcome.kind is OutcomeKind.FAILED and run.exit_code is None
    assert f"fork server (pid {server_pid}) died" in run.outcome.message
    assert "killed by SIGKILL" in run.outcome.message and "process tree was killed" in run.outcome.message
    assert pid_gone(child)
    assert stats.crashes == 1 and len(stats.workers) == 1 and stats.workers[0].pid != server_pid
    assert after.outcome.kind is OutcomeKind.SUCCEEDED


def test_resize_while_running(home, scripts, tmp_path):
    gate = tmp_path / "gate"

    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            first = await engine.start(spec(scripts, "pool_gate.py", str(gate)))
            await until_output(first, "ready")
            pool.resize(3)
            assert pool.size == 3 and len(pool.stats().workers) == 3
            more = [await engine.start(spec(scripts, "pool_gate.py", str(gate))) for _ in range(2)]
            for h in more:
                await until_output(h, "ready")
            busy = pool.stats()
            pool.resize(1)  # all three are busy: they retire as their runs end
            during = pool.stats()
            gate.touch()
            runs = [await h.wait(15) for h in (first, *more)]
            await until(lambda: len(pool.stats().workers) == 1 and pool.stats().workers[0].state == "idle")
            last = await engine.run(spec(scripts, "hello.py"))
            return busy, during, runs, [first, *more], pool.stats(), last

    busy, during, runs, handles, final, last = run_async(main())
    assert busy.busy == 3 and busy.queued == 0
    assert len({kv(lines_of(h))["ready"].split()[1] for h in handles}) == 3  # three different fork servers
    assert during.size == 1 and len(during.workers) == 3  # nobody was stopped mid-run
    assert all(r.outcome.kind is OutcomeKind.SUCCEEDED for r in runs)
    assert final.size == 1 and len(final.workers) == 1 and final.crashes == 0
    assert last.outcome.kind is OutcomeKind.SUCCEEDED


def test_workers_are_recycled_after_max_runs(home, scripts):
    async def main():
        pool = ResourcePool(size=1, preload=PRELOAD, max_runs_per_worker=2)
        async with pool, RunEngine(home, executor=pool) as engine:
            handles = [await engine.run(spec(scripts, "pool_state.py")) for _ in range(5)]
            return handles, pool.stats()

    handles, stats = run_async(main())
    ppids = [kv(lines_of(h))["ppid"] for h in handles]
    assert ppids[0] == ppids[1] != ppids[2] == ppids[3] != ppids[4]
    assert len(set(ppids)) == 3
    assert stats.recycled == 2 and stats.runs_served == 5 and stats.crashes == 0
    assert len(stats.workers) == 1 and stats.workers[0].runs_served == 1


def test_queue_stats_and_cancel_while_queued(home, scripts, tmp_path):
    gate = tmp_path / "gate"

    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            handles = [await engine.start(spec(scripts, "pool_gate.py", str(gate))) for _ in range(4)]
            await until_output(handles[0], "ready")
            await until(lambda: pool.stats().queued == 3)
            queued = pool.stats()
            assert handles[3].cancel()
            cancelled = await handles[3].wait(5)
            gate.touch()
            runs = [await h.wait(15) for h in handles[:3]]
            return queued, cancelled, runs, handles, pool.stats()

    queued, cancelled, runs, handles, stats = run_async(main())
    assert queued.size == 1 and queued.busy == 1 and queued.idle == 0 and queued.queued == 3
    assert queued.workers[0].current_run == handles[0].id and queued.workers[0].state == "busy"
    assert cancelled.outcome.kind is OutcomeKind.CANCELLED and cancelled.pid is None
    assert all(r.outcome.kind is OutcomeKind.SUCCEEDED for r in runs)
    assert stats.runs_served == 3 and stats.queued == 0 and stats.workers[0].runs_served == 3
    assert stats.start_latency_mean_ms is not None and stats.start_latency_mean_ms > 0
    assert stats.start_latency_p95_ms is not None and stats.start_latency_p95_ms > 0


def test_start_failure_is_failed_to_start(home, scripts, tmp_path):
    gate, doomed = tmp_path / "gate", tmp_path / "doomed"
    doomed.mkdir()

    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            blocker = await engine.start(spec(scripts, "pool_gate.py", str(gate)))
            await until_output(blocker, "ready")
            victim = await engine.start(spec(scripts, "hello.py", cwd=str(doomed)))  # resolved now, started later
            await until(lambda: pool.stats().queued == 1)
            doomed.rmdir()
            gate.touch()
            return await victim.wait(15), await blocker.wait(15)

    victim, blocker = run_async(main())
    assert victim.outcome.kind is OutcomeKind.FAILED_TO_START
    assert "cannot change directory" in victim.outcome.message and victim.pid is None
    assert blocker.outcome.kind is OutcomeKind.SUCCEEDED


def test_runs_the_pool_cannot_take_are_spawned_normally(home, scripts):
    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            ex = await engine.run(RunSpec(target=PY, args=("-c", "print('plain')"), kind=TargetKind.EXECUTABLE))
            other_path = await engine.run(spec(scripts, "hello.py", env={"PYTHONPATH": "/nowhere"}))
            reasons = (
                pool.why_not_pooled(resolve(RunSpec(target=PY, args=("-c", "1"), kind=TargetKind.EXECUTABLE))),
                pool.why_not_pooled(resolve(spec(scripts, "hello.py", env={"PYTHONHASHSEED": "7"}))),
                pool.why_not_pooled(resolve(spec(scripts, "hello.py"))),
            )
            return ex, other_path, reasons, pool.stats()

    ex, other_path, reasons, stats = run_async(main())
    assert ex.stdout() == "plain" and ex.outcome.kind is OutcomeKind.SUCCEEDED
    assert other_path.outcome.kind is OutcomeKind.SUCCEEDED
    assert "interpreter option -c" in reasons[0] and "PYTHONHASHSEED" in reasons[1] and reasons[2] is None
    assert stats.fallback_runs == 2 and stats.runs_served == 0


def test_accept_routes_only_chosen_runs_to_the_pool(home, scripts):
    async def main():
        pool = ResourcePool(size=1, preload=PRELOAD, accept=lambda job: job.run_id % 2 == 0)
        async with pool, RunEngine(home, executor=pool) as engine:
            handles = [await engine.run(spec(scripts, "pool_state.py")) for _ in range(4)]
            return handles, pool.stats()

    handles, stats = run_async(main())
    server = {h.id: kv(lines_of(h))["ppid"] for h in handles}
    pooled = [rid for rid in server if rid % 2 == 0]
    assert len({server[rid] for rid in pooled}) == 1 and all(server[rid] != server[pooled[0]] for rid in server if rid % 2)
    assert stats.runs_served == 2 and stats.fallback_runs == 0


def test_close_stops_workers_and_runs_then_spawns_normally(home, scripts):
    async def main():
        pool = ResourcePool(size=2, preload=PRELOAD)
        async with RunEngine(home, executor=pool) as engine:
            handle = await engine.start(spec(scripts, "ticker.py"))
            await until_output(handle, "2")
            servers = [w.pid for w in pool.stats().workers]
            child = handle.run.pid
            await pool.close()
            run = await handle.wait(10)
            after = await engine.run(spec(scripts, "hello.py"))
            return run, servers, child, after, pool.stats()

    run, servers, child, after, stats = run_async(main())
    assert run.outcome.kind is OutcomeKind.INTERRUPTED and "pool was closed" in run.outcome.message
    assert pid_gone(child) and all(pid_gone(p) for p in servers)
    assert after.outcome.kind is OutcomeKind.SUCCEEDED and stats.closed and stats.fallback_runs == 1
    assert stats.workers == ()


def test_without_a_spare_child_and_with_overflow_spawning(home, scripts, tmp_path):
    """The fork-per-request path (no spare) behaves the same; overflow="spawn" and size 0 spawn normally."""
    gate, doomed = tmp_path / "gate", tmp_path / "doomed"
    doomed.mkdir()

    async def main():
        pool = ResourcePool(size=1, preload=PRELOAD, spare=False)
        async with pool, RunEngine(home, executor=pool) as engine:
            hello = await engine.run(spec(scripts, "hello.py", "4", "x"))
            state = await engine.run(spec(scripts, "pool_state.py", "q"))
            blocker = await engine.start(spec(scripts, "pool_gate.py", str(gate)))
            await until_output(blocker, "ready")
            victim = await engine.start(spec(scripts, "hello.py", cwd=str(doomed)))
            await until(lambda: pool.stats().queued == 1)
            doomed.rmdir()
            pool.overflow = "spawn"
            overflow = await engine.run(spec(scripts, "hello.py"))  # the only worker is busy: spawned at once
            gate.touch()
            victim = await victim.wait(15)
            await blocker.wait(15)
            pool.resize(0)
            zero = await engine.run(spec(scripts, "hello.py"))
            return hello, state, overflow, victim, zero, pool.stats()

    hello, state, overflow, victim, zero, stats = run_async(main())
    assert hello.exit_code == 4 and hello.stdout().startswith("hello x")
    assert kv(lines_of(state))["argv"] == "['q'] pool_state.py __main__" and kv(lines_of(state))["session"] == "True"
    assert victim.outcome.kind is OutcomeKind.FAILED_TO_START and "cannot change directory" in victim.outcome.message
    assert overflow.outcome.kind is OutcomeKind.SUCCEEDED and zero.outcome.kind is OutcomeKind.SUCCEEDED
    assert stats.runs_served == 3 and stats.fallback_runs == 2 and stats.size == 0 and stats.workers == ()


# ---------------------------------------------------------------------------- the fast paths are exact
def test_pooled_script_sees_what_a_fresh_interpreter_gives_it(home, scripts, tmp_path):
    """The fork server compiles and runs the script itself (not through runpy) and sends only the
    environment's difference from its own: the output, the traceback and the environment are the
    spawned run's, byte for byte, including variables the run removes from the workers' environment."""
    from prismq_desktop.core.process.launch import child_environment

    worker_env = child_environment({"POOL_WORKER_ONLY": "drop me", "POOL_SHARED": "worker"})

    async def main():
        pool = ResourcePool(size=1, preload=PRELOAD, env=worker_env)
        async with pool, RunEngine(home, executor=pool) as engine:
            env = {"POOL_WORKER_ONLY": None, "POOL_SHARED": "run", "POOL_NEW": "new \u00e9 = ;"}
            s = spec(scripts, "pool_semantics.py", "a b", cwd=str(tmp_path), env=env)
            pooled = await engine.run(s)
            spawned_engine = RunEngine(home)  # the same registry, the default executor: a fresh interpreter
            spawned = await spawned_engine.run(s)
            await spawned_engine.shutdown()
            return pooled, spawned, pool.stats()

    pooled, spawned, stats = run_async(main())
    assert stats.runs_served == 1 and stats.fallback_runs == 0
    out_p, out_s = log_bytes(pooled.run.log_path, Stream.STDOUT), log_bytes(spawned.run.log_path, Stream.STDOUT)
    err_p, err_s = log_bytes(pooled.run.log_path, Stream.STDERR), log_bytes(spawned.run.log_path, Stream.STDERR)
    lines = out_p.decode().splitlines()
    assert lines[0] == "annotations {'x': <class 'int'>, 'return': None}"
    assert lines[1] == "name __main__ pool_semantics.py pool_semantics.py ['a b']" and lines[2] == "main True"
    per_run = ("PRISMQ_RUN_TAG", "PRISMQ_RUN_ID")  # differ between the two runs by design
    env = json.loads(lines[3].split(" ", 1)[1])
    fresh = json.loads(out_s.decode().splitlines()[3].split(" ", 1)[1])
    assert all(env.pop(k) and fresh.pop(k) for k in per_run)
    assert env == fresh and len(env) > 5
    assert "POOL_WORKER_ONLY" not in env and env["POOL_SHARED"] == "run" and env["POOL_NEW"] == "new \u00e9 = ;"
    # the spawned run's lines, except its own run tag
    assert [x for x in lines if not x.startswith("environ")] == [
        x for x in out_s.decode().splitlines() if not x.startswith("environ")
    ]
    assert err_p == err_s and err_p.endswith(b"ValueError: the end\n") and b"forkserver" not in err_p
    assert pooled.run.exit_code == spawned.run.exit_code == 1


def test_a_zip_application_still_runs_in_the_pool_through_runpy(home, tmp_path):
    import zipapp

    src = tmp_path / "app"
    src.mkdir()
    (src / "__main__.py").write_text("import sys\nprint('zipapp', __name__, sys.argv[1:])\n")
    target = tmp_path / "app_zip.py"  # `python app_zip.py` runs the archive's __main__: so must the pool
    zipapp.create_archive(src, target)

    async def main():
        async with ResourcePool(size=1, preload=PRELOAD) as pool, RunEngine(home, executor=pool) as engine:
            s = RunSpec(target=str(target), args=("x",), interpreter=PY)
            handle = await engine.run(s)
            return handle, pool.stats()

    handle, stats = run_async(main())
    assert stats.runs_served == 1 and handle.run.exit_code == 0, log_bytes(handle.run.log_path, Stream.STDERR)
    assert log_bytes(handle.run.log_path, Stream.STDOUT) == b"zipapp __main__ ['x']\n"
