"""Issue 14, second round: secret values sealed in the broker, the claim timeout, function tasks.

A real redis-server (MONITOR on its own connection, and a dump of every key while the run is
live), real `prismq-desktop worker` processes, real children. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from prismq_desktop.core.models import OutcomeKind, RunSpec, RunStatus
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.orchestrator.specs import function_spec
from prismq_desktop.core.remote.sealing import ENV_KEY, SealError, load_key, make_key_file
from prismq_desktop.core.store.registry import RunRegistry
from tests.core.remote.conftest import (
    CLI,
    Monitor,
    broker_dump,
    contains,
    give_key,
    remote_env,
    wait_for,
)

# POSIX-only: needs redis-server (no Windows build is supported by Redis); POSIX key-file modes
pytestmark = [pytest.mark.slow, pytest.mark.posix_only]

TOKEN = "tok-" + os.urandom(12).hex()
DB_PW = "pw-" + os.urandom(12).hex()
ARG_PW = "arg-" + os.urandom(12).hex()
PLAIN = "plain-" + os.urandom(12).hex()  # not secret: it must be seen, or the checks see nothing

SECRET_CHILD = """
import hashlib, os, sys, time
h = lambda v: hashlib.sha256(v.encode()).hexdigest()
print("token", h(os.environ["API_TOKEN"]), flush=True)
print("db", h(os.environ["DB_URL"]), flush=True)
print("arg", h(sys.argv[1]), flush=True)
print("plain", os.environ["PLAIN_MARKER"], flush=True)
time.sleep(1.0)
"""


def write(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def _sha(v: str) -> str:
    return hashlib.sha256(v.encode()).hexdigest()


def secret_spec(script: str, queue: str = "shared") -> RunSpec:
    return RunSpec(script, args=(f"--password={ARG_PW}",), where=f"remote:{queue}",
                   env={"API_TOKEN": TOKEN, "DB_URL": f"postgres://app:{DB_PW}@db/x", "PLAIN_MARKER": PLAIN})


def test_secret_values_never_reach_redis_in_clear_and_the_child_gets_them(redis_url, shared_worker, tmp_path,
                                                                        rclient, monkeypatch):
    monkeypatch.delenv(ENV_KEY, raising=False)
    home = tmp_path / "home"
    give_key(home)  # the submitter's key file; the worker holds the same key in its environment
    script = write(tmp_path, "sec.py", SECRET_CHILD)
    monitor = Monitor(redis_url)

    async def main():  # type: ignore[no-untyped-def]
        async with TaskOrchestrator(home, broker=redis_url) as orch:
            run_id = orch.delay(secret_spec(script))
            while orch.engine.get(run_id).status is not RunStatus.RUNNING:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)
            live = await asyncio.to_thread(broker_dump, rclient)  # while the stream, claim, message exist
            return await orch.wait(run_id, timeout=30), live

    try:
        result, live = asyncio.run(main())
    finally:
        seen = monitor.stop()
    assert result.run.outcome.kind is OutcomeKind.SUCCEEDED, result.run.outcome
    out = result.stdout
    assert f"token {_sha(TOKEN)}" in out and f"db {_sha(f'postgres://app:{DB_PW}@db/x')}" in out, out
    assert f"arg {_sha(f'--password={ARG_PW}')}" in out  # the child got every real value
    assert contains(seen, PLAIN.encode()) and contains(live, PLAIN.encode())  # the checks do see messages
    assert contains(seen, b"prismq.run")  # ... and the run's Celery message itself went by
    for secret in (TOKEN, DB_PW, ARG_PW):
        assert not contains(seen, secret.encode()), f"{secret} went through Redis in clear"
        assert not contains(live, secret.encode()), f"{secret} is held by Redis in clear"


def test_secret_values_and_no_key_fail_to_start_and_send_nothing(redis_url, shared_worker, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_KEY, raising=False)
    script = write(tmp_path, "sec.py", SECRET_CHILD)
    monitor = Monitor(redis_url)

    async def main():  # type: ignore[no-untyped-def]
        async with TaskOrchestrator(tmp_path / "home", broker=redis_url) as orch:
            return await orch.wait(orch.delay(secret_spec(script)), timeout=20)

    try:
        result = asyncio.run(main())
    finally:
        seen = monitor.stop()
    outcome = result.run.outcome
    assert outcome.kind is OutcomeKind.FAILED_TO_START, outcome
    assert "API_TOKEN" in outcome.message and "no remote key" in outcome.message and "nothing was sent" in outcome.message
    assert "\n" not in outcome.message and TOKEN not in outcome.message
    assert b"LPUSH" not in seen.upper() and not contains(seen, PLAIN.encode()), "a message was sent"
    assert result.run.remote_id is None


def test_a_worker_with_another_key_or_none_fails_to_start_in_one_line(redis_url, start_worker, tmp_path, monkeypatch):
    from cryptography.fernet import Fernet

    monkeypatch.delenv(ENV_KEY, raising=False)
    start_worker("otherkey", env={ENV_KEY: Fernet.generate_key().decode()})
    home = tmp_path / "home"
    give_key(home)
    script = write(tmp_path, "sec.py", SECRET_CHILD)

    async def main():  # type: ignore[no-untyped-def]
        async with TaskOrchestrator(home, broker=redis_url) as orch:
            return await orch.wait(orch.delay(secret_spec(script, "otherkey")), timeout=20)

    outcome = asyncio.run(main()).run.outcome
    assert outcome.kind is OutcomeKind.FAILED_TO_START, outcome
    assert "do not open with this worker's remote key" in outcome.message and "\n" not in outcome.message


def test_remote_key_file_rules(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_KEY, raising=False)
    assert load_key(tmp_path) is None
    path, made = make_key_file(tmp_path)
    assert made and (path.stat().st_mode & 0o777) == 0o600
    key = load_key(tmp_path)
    assert key is not None and make_key_file(tmp_path) == (path, False) and load_key(tmp_path) == key  # never replaced
    path.chmod(0o644)
    with pytest.raises(SealError, match="can be read by others"):
        load_key(tmp_path)
    path.chmod(0o600)
    path.write_text("not a key\n")
    with pytest.raises(SealError, match="is not a remote key"):
        load_key(tmp_path)
    monkeypatch.setenv(ENV_KEY, "x" * 44)
    with pytest.raises(SealError, match=f"{ENV_KEY} is not a remote key"):
        load_key(tmp_path)
    res = subprocess.run([*CLI, "--data-dir", str(tmp_path / "d"), "remote-key"], capture_output=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != ENV_KEY})
    assert res.returncode == 0 and b"remote.key" in res.stdout
    made_key = (tmp_path / "d" / "remote.key").read_bytes().strip()
    assert made_key not in res.stdout + res.stderr  # the key itself is never printed


def test_unclaimed_run_is_withdrawn_and_a_later_worker_does_not_run_it(redis_url, start_worker, tmp_path, rclient):
    marker = tmp_path / "ran"
    script = write(tmp_path, "mark.py", f"open({str(marker)!r}, 'a').write('x')\nprint('ran')\n")
    home = str(tmp_path / "home")
    env = remote_env(redis_url, PRISMQ_REMOTE_CLAIM_TIMEOUT="1")
    t0 = time.monotonic()
    res = subprocess.run([*CLI, "--data-dir", home, "run", "--remote", "nobody-q", script], env=env,
                         capture_output=True, timeout=60)
    took = time.monotonic() - t0
    err = res.stderr.decode()
    assert res.returncode != 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no worker took it from queue nobody-q in 1 s" in lines[0], lines
    assert took < 8, took
    with RunRegistry(Path(home) / "registry.sqlite3") as reg:
        run = reg.get(1)
    assert run is not None and run.outcome is not None and run.outcome.kind is OutcomeKind.FAILED_TO_START
    assert rclient.get(f"prismq:run:{run.remote_id}:claim") == b"withdrawn"

    worker = start_worker("nobody-q")  # the message is still queued: this worker must drop it
    wait_for(lambda: b"dropped" in worker.log.read_bytes(), timeout=15)
    assert not marker.exists()

    # a served queue: a run waiting behind a busy worker (concurrency 1) is only waiting, not lost
    slow = write(tmp_path, "slow.py", "import time; time.sleep(2.5); print('slow done')\n")

    async def main():  # type: ignore[no-untyped-def]
        async with TaskOrchestrator(tmp_path / "home2", broker=redis_url) as orch:
            first = orch.delay(RunSpec(slow, where="remote:nobody-q"))
            second = orch.delay(RunSpec(script, where="remote:nobody-q"))
            return await orch.wait(first, timeout=30), await orch.wait(second, timeout=30)

    os.environ["PRISMQ_REMOTE_CLAIM_TIMEOUT"] = "1"
    try:
        first, second = asyncio.run(main())
    finally:
        del os.environ["PRISMQ_REMOTE_CLAIM_TIMEOUT"]
    assert first.run.outcome.kind is OutcomeKind.SUCCEEDED, first.run.outcome
    assert second.run.outcome.kind is OutcomeKind.SUCCEEDED, second.run.outcome  # waited > 1 s, still ran
    assert marker.read_text() == "x"


FUNCTIONS = """
def add(a, b, scale=1):
    print("adding", a, b, flush=True)
    return {"sum": (a + b) * scale, "pid": __import__("os").getpid()}

def boom(word):
    raise ValueError(f"no {word} here")
"""


def test_function_tasks_run_on_the_worker_and_their_result_is_stored_like_a_local_one(redis_url, shared_worker,
                                                                                      tmp_path):
    mod = write(tmp_path, "fnmod.py", FUNCTIONS)
    home = tmp_path / "home"

    async def main():  # type: ignore[no-untyped-def]
        async with TaskOrchestrator(home, broker=redis_url) as orch:
            ok = orch.delay(function_spec(f"{mod}:add", [2, 3], {"scale": 10}, where="remote:shared"))
            bad = orch.delay(function_spec(f"{mod}:boom", ["luck"], where="remote:shared"))
            return await orch.wait(ok, timeout=30), await orch.wait(bad, timeout=30)

    ok, bad = asyncio.run(main())
    assert ok.ok and ok.result["sum"] == 50, ok.run.outcome
    assert ok.result["pid"] != os.getpid()
    assert ok.run.worker_host == "shared-worker" and "adding 2 3" in ok.stdout
    assert bad.run.outcome.kind is OutcomeKind.FAILED and bad.error is not None
    assert bad.error["type"] == "ValueError" and bad.error["message"] == "no luck here"
    assert "raise ValueError" in bad.error["traceback"] and "ValueError: no luck here" in bad.stderr
    with RunRegistry(home / "registry.sqlite3") as reg:  # stored: what a later app reads
        stored_ok, stored_bad = reg.get(ok.run_id), reg.get(bad.run_id)
    assert stored_ok is not None and '"sum": 50' in (stored_ok.result or "")
    assert stored_bad is not None and "no luck here" in (stored_bad.result or "")
    assert not list(Path("/tmp").glob(f"prismq-fn-{(stored_ok.remote_id or '')[:8]}-*"))  # scratch removed


FIREHOSE = """
import os, sys
b = os.urandom(1 << 16)
w = sys.stdout.buffer
for _ in range((int(sys.argv[1]) << 20) >> 16):
    w.write(b)
w.flush()
"""


def _peak_rss_of_cli(redis_url: str, home: str, script: str, mb: int) -> tuple[int, int, int]:
    proc = subprocess.Popen([*CLI, "--data-dir", home, "run", "--remote", "shared", script, "--", str(mb)],
                            env=remote_env(redis_url), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    import psutil

    me, peak, got = psutil.Process(proc.pid), 0, 0
    assert proc.stdout is not None
    while chunk := proc.stdout.read(1 << 20):  # the reader keeps up: what grows is the app's own holding
        got += len(chunk)
        try:
            peak = max(peak, me.memory_info().rss)
        except psutil.Error:
            break
    return proc.wait(60), got, peak


def test_a_firehose_keeps_the_submitting_app_flat_in_the_output_size(redis_url, shared_worker, tmp_path):
    script = write(tmp_path, "hose.py", FIREHOSE)
    home = str(tmp_path / "home")
    code_s, got_s, small = _peak_rss_of_cli(redis_url, home, script, 8)
    code_b, got_b, big = _peak_rss_of_cli(redis_url, home, script, 48)
    assert (code_s, got_s, code_b, got_b) == (0, 8 << 20, 0, 48 << 20)
    assert big - small < 24 * 2**20, f"peak RSS {small / 2**20:.0f} MiB at 8 MB, {big / 2**20:.0f} MiB at 48 MB"
