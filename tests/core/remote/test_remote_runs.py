"""Remote runs end to end: a real redis-server, real `prismq-desktop worker` processes, the real CLI."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from prismq_desktop.core.models import OutcomeKind, RunSpec, RunStatus
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.store.registry import RunRegistry
from tests.core.remote.conftest import CLI, HEARTBEAT, remote_env, run_cli, wait_for

# POSIX-only: needs redis-server (no Windows build is supported by Redis) and POSIX signals to kill workers
pytestmark = [pytest.mark.slow, pytest.mark.posix_only]

SEED = 1414
SIZE = 20 * 1024 * 1024

BLOB_SCRIPT = """
import random, sys
rng = random.Random({seed})
out = sys.stdout.buffer
left = {size}
while left:
    n = min(left, rng.randint(1, 200_000))
    out.write(rng.randbytes(n))  # every byte value: NUL, \\r, bad UTF-8
    left -= n
out.flush()
sys.stderr.write("done\\n")
"""


def expected_blob(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    parts, left = [], size
    while left:
        n = min(left, rng.randint(1, 200_000))
        parts.append(rng.randbytes(n))
        left -= n
    return b"".join(parts)


def write(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def registry(home: Path) -> RunRegistry:
    return RunRegistry(home / "registry.sqlite3")


def test_20mb_binary_output_is_byte_exact_live_and_in_the_local_log(redis_url, shared_worker, tmp_path):
    script = write(tmp_path, "blob.py", BLOB_SCRIPT.format(seed=SEED, size=SIZE))
    home = tmp_path / "home"
    res = run_cli(redis_url, "--data-dir", str(home), "run", "--remote", "shared", script, timeout=120)
    want = hashlib.sha256(expected_blob(SEED, SIZE)).hexdigest()
    assert res.returncode == 0, res.stderr[-2000:]
    assert hashlib.sha256(res.stdout).hexdigest() == want  # live output
    logs = subprocess.run([*CLI, "--data-dir", str(home), "logs", "1", "--stream", "stdout"], capture_output=True, timeout=60)
    assert len(logs.stdout) == SIZE
    assert hashlib.sha256(logs.stdout).hexdigest() == want  # the local log file
    with registry(home) as reg:
        run = reg.get(1)
    assert run is not None and run.worker_host == "shared-worker" and run.remote_id
    assert run.outcome is not None and run.outcome.kind is OutcomeKind.SUCCEEDED
    assert run.peak_rss is None or run.peak_rss > 0  # a heartbeat may or may not have fallen in the run
    assert run.argv[1] == script  # the worker's own resolution, reported back


def test_exit_codes_and_a_script_missing_on_the_worker(redis_url, shared_worker, tmp_path):
    script = write(tmp_path, "code.py", "import sys; print('x'); sys.exit(int(sys.argv[1]))\n")
    home = str(tmp_path / "home")
    for code in (0, 3, 77):
        res = run_cli(redis_url, "--data-dir", home, "run", "--remote", "shared", script, "--", str(code))
        assert res.returncode == code, res.stderr
        assert res.stdout == b"x\n"
    killer = write(tmp_path, "kill.py", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)\n")
    res = run_cli(redis_url, "--data-dir", home, "run", "--remote", "shared", killer)
    assert res.returncode == 128 + 9 and b"SIGKILL" in res.stderr
    res = run_cli(redis_url, "--data-dir", home, "run", "--remote", "shared", str(tmp_path / "nowhere.py"))
    assert res.returncode != 0
    lines = res.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "script not found" in lines[0] and "shared-worker" in lines[0], lines
    assert b"Traceback" not in res.stderr


def test_timeout_is_124_and_the_remote_tree_is_stopped(redis_url, shared_worker, tmp_path):
    script = write(tmp_path, "slow.py", """
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("started", flush=True)
        time.sleep(60)
    """)
    t0 = time.monotonic()
    res = run_cli(redis_url, "--data-dir", str(tmp_path / "home"), "run", "--remote", "shared", "--timeout", "1",
                  "--grace", "1", script)
    assert res.returncode == 124, res.stderr
    assert b"started" in res.stdout and b"timed out" in res.stderr
    assert time.monotonic() - t0 < 15
    wait_for(lambda: not shared_worker.descendants(), timeout=5)


def test_bad_broker_and_queue_are_one_line(redis_url, tmp_path):
    home = str(tmp_path / "home")
    env = remote_env(redis_url)
    env.pop("PRISMQ_BROKER_URL")
    for args, needle in (
        (["run", "--remote", "q", "x.py"], "no broker configured"),
        (["run", "--remote", "q", "--broker", "http://h", "x.py"], "unsupported broker"),
        (["run", "--remote", "bad queue", "--broker", redis_url, "x.py"], "not a queue name"),
        (["worker", "--broker", "redis://:wrong@127.0.0.1:1/0"], "worker:"),
    ):
        res = subprocess.run([*CLI, "--data-dir", home, *args], env=env, capture_output=True, timeout=60)
        err = res.stderr.decode()
        assert res.returncode != 0 and needle in err and "Traceback" not in err, err
        assert "wrong" not in err  # a password is never echoed


def test_wrong_password_fails_to_start_in_one_line(redis_url, tmp_path):
    script = write(tmp_path, "ok.py", "print('never')\n")
    bad = redis_url.replace(redis_url.split(":")[2].split("@")[0], "nope")
    res = subprocess.run([*CLI, "--data-dir", str(tmp_path / "home"), "run", "--remote", "shared", "--broker", bad, script],
                         env=remote_env(redis_url), capture_output=True, timeout=60)
    err = res.stderr.decode()
    assert res.returncode != 0
    assert "cannot reach the broker" in err and "nope" not in err and "Traceback" not in err, err


DAEMON_SCRIPT = """
import os, subprocess, sys, time
pids = [os.getpid()]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
pids.append(child.pid)
r, w = os.pipe()
if os.fork() == 0:          # a double-forked daemon: leaves the tree before anyone looks
    os.setsid()
    if os.fork() == 0:
        os.close(r)
        os.write(w, str(os.getpid()).encode())
        os.close(w)
        time.sleep(120)
        os._exit(0)
    os._exit(0)
os.close(w)
pids.append(int(os.read(r, 32)))
with open({pidfile!r} + ".tmp", "w") as fh:
    fh.write(" ".join(map(str, pids)))
os.rename({pidfile!r} + ".tmp", {pidfile!r})
print("tree up", flush=True)
time.sleep(120)
"""


def test_cancel_stops_the_whole_remote_tree_with_its_double_forked_daemon(redis_url, shared_worker, tmp_path):
    pidfile = str(tmp_path / "pids")
    script = write(tmp_path, "tree.py", DAEMON_SCRIPT.format(pidfile=pidfile))

    async def main() -> tuple[list[int], object]:
        async with TaskOrchestrator(tmp_path / "home", broker=redis_url) as orch:
            run_id = orch.delay(RunSpec(script, where="remote:shared"))
            while not os.path.exists(pidfile):
                await asyncio.sleep(0.05)
            pids = [int(p) for p in Path(pidfile).read_text().split()]
            assert all(psutil.pid_exists(p) for p in pids)
            assert orch.engine.get(run_id).status is RunStatus.RUNNING
            t0 = time.monotonic()
            orch.cancel(run_id)
            result = await orch.wait(run_id, timeout=20)
            assert time.monotonic() - t0 < 10
            return pids, result

    pids, result = asyncio.run(main())
    assert result.run.outcome.kind is OutcomeKind.CANCELLED, result.run.outcome
    assert "tree of" in (result.run.outcome.message or "")
    wait_for(lambda: not any(_alive(p) for p in pids), timeout=5)
    assert not shared_worker.descendants()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_pause_and_resume_reach_the_worker(redis_url, shared_worker, tmp_path):
    script = write(tmp_path, "tick.py", """
        import time
        for i in range(400):
            print(i, flush=True)
            time.sleep(0.02)
    """)

    async def main():  # type: ignore[no-untyped-def]
        async with TaskOrchestrator(tmp_path / "home", broker=redis_url) as orch:
            run_id = orch.delay(RunSpec(script, where="remote:shared"))
            while orch.engine.get(run_id).status is not RunStatus.RUNNING:
                await asyncio.sleep(0.05)
            pid = orch.engine.get(run_id).pid
            assert orch.engine.pause(run_id)
            for _ in range(100):
                if psutil.Process(pid).status() == psutil.STATUS_STOPPED:
                    break
                await asyncio.sleep(0.05)
            assert psutil.Process(pid).status() == psutil.STATUS_STOPPED  # stopped on the worker
            assert orch.engine.resume(run_id)
            result = await orch.wait(run_id, timeout=30)
            return result

    result = asyncio.run(main())
    assert result.run.outcome.kind is OutcomeKind.SUCCEEDED


def test_worker_sigkilled_mid_run_is_interrupted_within_two_heartbeats(redis_url, start_worker, tmp_path):
    worker = start_worker("lossy", hostname="lossy-host")
    pidfile = tmp_path / "pid"
    script = write(tmp_path, "long.py", f"""
        import os, time
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        print("working", flush=True)
        time.sleep(120)
    """)

    async def main():  # type: ignore[no-untyped-def]
        async with TaskOrchestrator(tmp_path / "home", broker=redis_url) as orch:
            run_id = orch.delay(RunSpec(script, where="remote:lossy"))
            while not pidfile.exists() or orch.engine.get(run_id).status is not RunStatus.RUNNING:
                await asyncio.sleep(0.02)
            await asyncio.sleep(HEARTBEAT * 1.5)
            killed = time.monotonic()
            worker.kill()
            result = await orch.wait(run_id, timeout=10)
            return result, time.monotonic() - killed

    result, took = asyncio.run(main())
    outcome = result.run.outcome
    assert outcome.kind is OutcomeKind.INTERRUPTED and "worker lost" in outcome.message and "lossy-host" in outcome.message
    assert took <= 2 * HEARTBEAT + 0.5, took  # two intervals (+ the reader's poll)
    child = int(pidfile.read_text())
    assert _alive(child)  # SIGKILL cannot stop the tree: the next worker of that name does
    start_worker("lossy", hostname="lossy-host")
    wait_for(lambda: not _alive(child), timeout=10)


MONITOR = """
import asyncio, sys
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator

async def main():
    async with TaskOrchestrator(sys.argv[1], broker=sys.argv[2]) as orch:
        handles = orch.engine.reattach_remote()
        print("reattached", [h.id for h in handles], flush=True)
        for h in handles:
            await h.wait(120)
            print("ended", h.id, h.run.outcome.kind.value, flush=True)

asyncio.run(main())
"""


def test_a_monitor_restarted_mid_run_still_writes_the_whole_log(redis_url, shared_worker, tmp_path):
    size = 6 * 1024 * 1024
    script = write(tmp_path, "drip.py", f"""
        import random, sys, time
        rng = random.Random(7)
        out = sys.stdout.buffer
        for i in range(60):
            out.write(rng.randbytes({size} // 60)); out.flush()
            time.sleep(0.05)
    """)
    home = tmp_path / "home"
    first = subprocess.Popen([*CLI, "--data-dir", str(home), "run", "--remote", "shared", script],
                             env=remote_env(redis_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert first.stdout is not None
    got = first.stdout.read(1024 * 1024)  # it is live and writing the log
    assert len(got) == 1024 * 1024
    first.kill()  # the submitting app dies mid-run (SIGKILL)
    first.wait()
    first.stdout.close()
    first.stderr.close()
    monitor = write(tmp_path, "monitor.py", MONITOR)
    res = subprocess.run([sys.executable, monitor, str(home), redis_url], env=remote_env(redis_url),
                         capture_output=True, timeout=90, cwd=str(Path(__file__).parents[3]))
    assert b"reattached [1]" in res.stdout and b"ended 1 succeeded" in res.stdout, res.stdout + res.stderr
    rng = random.Random(7)
    want = b"".join(rng.randbytes(size // 60) for _ in range(60))
    logs = subprocess.run([*CLI, "--data-dir", str(home), "logs", "1"], capture_output=True, timeout=60)
    assert hashlib.sha256(logs.stdout).hexdigest() == hashlib.sha256(want).hexdigest()


def test_the_broker_keeps_nothing_of_a_consumed_run(redis_url, shared_worker, tmp_path, rclient):
    script = write(tmp_path, "hi.py", "print('hi')\n")
    home = tmp_path / "home"
    res = run_cli(redis_url, "--data-dir", str(home), "run", "--remote", "shared", script)
    assert res.returncode == 0
    with registry(home) as reg:
        rid = reg.get(1).remote_id
    assert not rclient.exists(f"prismq:run:{rid}:out") and not rclient.exists(f"prismq:run:{rid}:ctl")
    assert rclient.ttl(f"prismq:run:{rid}:claim") > 0  # the start claim expires by itself


def test_workers_service_lists_workers_queues_and_stale_ones(redis_url, start_worker, rclient):
    from prismq_desktop.core.services.workers import snapshot

    w = start_worker("svc-q", hostname="svc-host", concurrency=3)
    snap = wait_for(lambda: (s := snapshot(redis_url)) and any(x.host == "svc-host" for x in s.workers) and s)
    info = next(x for x in snap.workers if x.host == "svc-host")
    assert info.queues == ("svc-q",) and info.concurrency == 3 and not info.stale and info.pid == w.pid
    assert info.rss_bytes and info.rss_bytes > 0
    q = next(q for q in snap.queues if q.name == "svc-q")
    assert q.depth == 0 and q.workers >= 1
    w.kill()
    later = snapshot(redis_url, now=time.time() + 3 * HEARTBEAT)
    assert next(x for x in later.workers if x.host == "svc-host").stale
    assert snapshot("redis://:x@127.0.0.1:1/0").error is not None  # one line, no exception
    rclient.delete("prismq:worker:svc-host")
