"""The local HTTP API: the real aiohttp server on a free loopback port, called over real HTTP,
over a real orchestrator, registry and child processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from prismq_desktop.core import RunSpec
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.schedule.scheduler import make_trigger
from prismq_desktop.core.services.api import ENDPOINT_FILE, TOKEN_FILE, ApiServer, read_endpoint, start_from_setting
from prismq_desktop.core.services.history import run_to_json
from prismq_desktop.core.store.tasks import TaskStore
from tests.core.test_cli import argv, clean_env, cli, read_until
from tests.helpers import pid_gone, wait_for

PY = sys.executable
TICKER = "import sys, time\nfor i in range(6):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.25)\n"


def run_async(coro):
    with asyncio.Runner() as runner:
        return runner.run(coro)


@contextlib.asynccontextmanager
async def served(home: Path, **kw):
    """(orchestrator, server, client session with the token, client session without one)."""
    async with TaskOrchestrator(home, max_concurrent=4) as orch:
        server = ApiServer(orch, "127.0.0.1", 0, **kw)
        url = await server.start()
        auth = {"Authorization": f"Bearer {server.token}"}
        async with aiohttp.ClientSession(url, headers=auth) as client, aiohttp.ClientSession(url) as anon:
            try:
                yield orch, server, client, anon
            finally:
                await server.stop()


async def until_done(client, run_id, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with client.get(f"/runs/{run_id}") as r:
            body = await r.json()
        if body["status"] == "done":
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"run #{run_id} not done in {timeout}s")


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_token_rules_and_the_token_file(home):
    async def main():
        async with served(home) as (orch, server, client, anon):
            async with anon.get("/health") as r:
                health = (r.status, await r.json())
            statuses = {}
            for path in ("/runs", "/metrics", "/schedules", "/health/scheduler", "/runs/1", "/runs/1/log"):
                async with anon.get(path) as r:
                    statuses[path] = r.status
            async with anon.get("/runs", headers={"Authorization": "Bearer wrong"}) as r:
                statuses["wrong"] = r.status
            async with anon.get("/runs", headers={"Authorization": server.token}) as r:  # no "Bearer"
                statuses["no scheme"] = r.status
            async with anon.post("/runs", json={"script": "x.py"}) as r:
                statuses["post"] = r.status
            async with client.get("/runs") as r:
                statuses["ok"] = r.status
            return health, statuses, server.token, server.port

    health, statuses, token, port = run_async(main())
    assert health[0] == 200 and health[1]["status"] == "ok"
    assert statuses.pop("ok") == 200
    assert set(statuses.values()) == {401}, statuses
    path = home / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text().strip() == token
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert run_async(_token_again(home)) == token  # reused, not replaced
    assert not (home / ENDPOINT_FILE).exists()  # removed when it stopped


async def _token_again(home):
    async with TaskOrchestrator(home) as orch:
        return ApiServer(orch).token


def test_bad_json_and_invalid_specs_are_400_with_the_message(home, tmp_path):
    bodies = {
        b"{not json": "not JSON",
        b"[1, 2]": "JSON object",
        json.dumps({"args": []}).encode(): "script",
        json.dumps({"script": str(tmp_path / "missing.py")}).encode(): "script not found",
        json.dumps({"script": PY, "timeout": -1}).encode(): "timeout",
        json.dumps({"script": PY, "priority": "urgent"}).encode(): "unknown priority",
        json.dumps({"script": PY, "env": {"A": 1}}).encode(): "env",
        json.dumps({"script": PY, "cwd": str(tmp_path / "nope")}).encode(): "working directory does not exist",
        json.dumps({"script": PY, "shell": True}).encode(): "unknown field",
        json.dumps({"task": "nope"}).encode(): "no saved task",
    }

    async def main():
        async with served(home) as (orch, server, client, anon):
            answers = {}
            for body, _ in bodies.items():
                async with client.post("/runs", data=body, headers={"Content-Type": "application/json"}) as r:
                    answers[body] = (r.status, (await r.json())["error"])
            async with client.get("/runs", params={"status": "bogus"}) as r:
                answers["status"] = (r.status, (await r.json())["error"])
            async with client.get("/runs/999") as r:
                answers["404"] = (r.status, (await r.json())["error"])
            return answers, orch.registry.count()

    answers, stored = run_async(main())
    for body, says in bodies.items():
        status, error = answers[body]
        assert status == 400 and says in error, (body, answers[body])
    assert answers["status"][0] == 400 and "unknown status" in answers["status"][1]
    assert answers["404"][0] == 404
    assert stored == 0  # nothing refused was recorded or run


def test_submit_get_list_and_follow_the_log_while_it_grows(home, tmp_path):
    script = tmp_path / "ticker.py"
    script.write_text(TICKER)

    async def main():
        async with served(home) as (orch, server, client, anon):
            async with client.post("/runs", json={"script": str(script), "env": {"API_TOKEN_X": "s3cret-value"},
                                                  "name": "ticker", "priority": "high", "timeout": 60}) as r:
                assert r.status == 201, await r.text()
                run_id = (await r.json())["id"]
            first_at_active = None
            body = b""
            async with client.get(f"/runs/{run_id}/log", params={"follow": "1"}) as r:
                assert r.status == 200
                async for chunk in r.content.iter_any():
                    if first_at_active is None:
                        first_at_active = orch.registry.get(run_id).is_active
                    body += chunk
            done = await until_done(client, run_id)
            async with client.get("/runs", params={"status": "succeeded", "limit": "5"}) as r:
                listed = await r.json()
            async with client.get(f"/runs/{run_id}/log", params={"stream": "stderr"}) as r:
                stderr = await r.read()
            return run_id, first_at_active, body, done, listed, stderr, run_to_json(orch.registry.get(run_id))

    run_id, first_at_active, body, done, listed, stderr, expected = run_async(main())
    assert first_at_active is True  # the first bytes came while the run was still going
    assert body == b"".join(f"tick {i}\n".encode() for i in range(6))
    assert stderr == b""
    assert done == json.loads(json.dumps(expected))  # the same fields as `history --json`
    assert done["outcome"] == "succeeded" and done["name"] == "ticker"
    assert [r["id"] for r in listed] == [run_id]
    assert "s3cret-value" not in json.dumps(done)


def test_cancel_a_running_run_and_a_saved_task(home, tmp_path):
    TaskStore(home / "tasks.json").put("hello", RunSpec(PY, ("-c", "print('from the task')")), {})

    async def main():
        async with served(home) as (orch, server, client, anon):
            async with client.post("/runs", json={"script": PY, "args": ["-c", "import time; time.sleep(30)"]}) as r:
                run_id = (await r.json())["id"]
            await asyncio.to_thread(wait_for, lambda: orch.registry.get(run_id).pid is not None, 10)
            pid = orch.registry.get(run_id).pid
            async with client.post(f"/runs/{run_id}/cancel") as r:
                cancelled = (r.status, await r.json())
            done = await until_done(client, run_id)
            async with client.post(f"/runs/{run_id}/cancel") as r:
                again = r.status
            async with client.post("/runs", json={"task": "hello"}) as r:
                task_run = (await r.json())["id"]
            await until_done(client, task_run)
            async with client.get(f"/runs/{task_run}/log") as r:
                task_out = await r.read()
            return pid, cancelled, done, again, task_out

    pid, cancelled, done, again, task_out = run_async(main())
    assert cancelled == (200, {"id": cancelled[1]["id"], "cancelled": True})
    assert done["outcome"] == "cancelled" and again == 409
    assert pid_gone(pid)
    assert task_out == b"from the task\n"


def test_schedules_run_now_enable_disable(home, tmp_path):
    async def main():
        async with served(home) as (orch, server, client, anon):
            s = orch.scheduler.add("nightly", RunSpec(PY, ("-c", "print('fired')")), make_trigger(cron="0 2 * * *"))
            async with client.get("/schedules") as r:
                listed = await r.json()
            async with client.post("/schedules/nightly/run-now") as r:
                fired = (r.status, await r.json())
            done = await until_done(client, fired[1]["run_id"])
            async with client.post(f"/schedules/{s.id}/disable") as r:
                off = await r.json()
            async with client.post(f"/schedules/{s.id}/enable") as r:
                on = await r.json()
            async with client.post("/schedules/nope/run-now") as r:
                missing = r.status
            return listed, fired, done, off, on, missing, s.id

    listed, fired, done, off, on, missing, sid = run_async(main())
    assert [(x["id"], x["name"], x["enabled"]) for x in listed] == [(sid, "nightly", True)]
    assert fired[0] == 201 and fired[1]["action"] == "started" and done["outcome"] == "succeeded"
    assert off["enabled"] is False and on["enabled"] is True and missing == 404


def test_metrics_in_prometheus_text_format(home):
    async def main():
        async with served(home) as (orch, server, client, anon):
            ids = []
            for code in (0, 0, 3):
                async with client.post("/runs", json={"script": PY, "args": ["-c", f"raise SystemExit({code})"]}) as r:
                    ids.append((await r.json())["id"])
            for run_id in ids:
                await until_done(client, run_id)
            async with client.get("/metrics") as r:
                return r.status, r.headers["Content-Type"], await r.text()

    status, ctype, text = run_async(main())
    assert status == 200 and ctype.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    runs = {s.labels["outcome"]: s.value for s in families["prismq_runs"].samples if s.name == "prismq_runs_total"}
    assert runs["succeeded"] == 2 and runs["failed"] == 1 and runs["cancelled"] == 0
    hist = {(s.name, s.labels.get("le")): s.value for s in families["prismq_run_duration_seconds"].samples}
    assert hist[("prismq_run_duration_seconds_count", None)] == 3 and hist[("prismq_run_duration_seconds_bucket", "+Inf")] == 3
    assert hist[("prismq_run_duration_seconds_bucket", "0.1")] <= hist[("prismq_run_duration_seconds_bucket", "60")] == 3
    assert families["prismq_queue_depth"].samples[0].value == 0
    assert "prismq_scheduler_lag_seconds" in families


def test_health_scheduler_is_503_when_the_loop_is_stuck_or_stopped(home):
    offset = [0.0]

    async def main():
        async with served(home, monotonic=lambda: time.monotonic() + offset[0]) as (orch, server, client, anon):
            orch.scheduler.add("often", RunSpec(PY, ("-c", "pass")), make_trigger(interval_seconds=3600))
            async with client.get("/health/scheduler") as r:
                before = (r.status, await r.json())  # not started yet
            orch.scheduler.start()
            await asyncio.sleep(0.2)
            async with client.get("/health/scheduler") as r:
                ok = (r.status, await r.json())
            offset[0] = 60.0  # the loop's last turn now looks a minute old: it is stuck
            async with client.get("/health/scheduler") as r:
                stuck = (r.status, await r.json())
            offset[0] = 0.0
            orch.scheduler._task.cancel()  # the loop dies under a live app
            await asyncio.sleep(0.05)
            async with client.get("/health/scheduler") as r:
                dead = (r.status, await r.json())
            return before, ok, stuck, dead

    before, ok, stuck, dead = run_async(main())
    assert before[0] == 503 and before[1]["status"] == "stopped"
    assert ok[0] == 200 and ok[1]["status"] == "ok" and ok[1]["schedules_enabled"] == 1 and ok[1]["lag"] == 0
    assert ok[1]["next_fire"] > time.time() and ok[1]["last_tick"] is not None
    assert stuck[0] == 503 and stuck[1]["status"] == "stuck" and "no turn" in stuck[1]["reason"]
    assert dead[0] == 503 and dead[1]["status"] == "stopped" and "died" in dead[1]["reason"]


def test_it_listens_on_loopback_only_and_the_window_setting(home):
    async def main():
        async with TaskOrchestrator(home) as orch:
            assert await start_from_setting(orch, "") is None  # off by default
            assert await start_from_setting(orch, "nonsense:port") is None  # logged, the window goes on
            server = await start_from_setting(orch, "127.0.0.1:0")
            assert server is not None
            try:
                mine = [c for c in psutil.Process().net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
                endpoint = read_endpoint(home)
                async with aiohttp.ClientSession() as s, s.get(server.url + "/health") as r:
                    ok = r.status
            finally:
                await server.stop()
            return [c.laddr for c in mine], server.port, endpoint, ok

    listening, port, endpoint, ok = run_async(main())
    assert [a.ip for a in listening if a.port == port] == ["127.0.0.1"]
    assert endpoint["url"] == f"http://127.0.0.1:{port}" and endpoint["pid"] == os.getpid() and ok == 200


def test_submit_goes_to_the_listening_scheduler_else_says_so(home, tmp_path):
    script = tmp_path / "hello.py"
    script.write_text("import sys\nprint('hi', sys.argv[1:])\nsys.exit(4)\n")
    res = cli(home, "submit", str(script))
    assert res.returncode == 1 and "no PrismQ window or scheduler is listening" in res.stderr.decode()
    assert "Traceback" not in res.stderr.decode()
    res = cli(home, "submit", "hello.py", "--local", "--", "x", cwd=tmp_path)
    assert res.returncode == 4 and res.stdout == b"hi ['x']\n", res.stderr

    proc = subprocess.Popen(argv(home, "scheduler", "--http", "127.0.0.1:0"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env())
    try:
        assert b"http://127.0.0.1:" in read_until(proc, b"api-token)", timeout=20)
        res = cli(home, "submit", "hello.py", "--name", "sent", "--", "y", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        run_id = int(res.stdout.decode().split("#")[1].split()[0])
        from prismq_desktop.core import RunRegistry

        def finished():
            with RunRegistry(home / "registry.sqlite3") as reg:
                run = reg.get(run_id)
                return run if run and run.status.value == "done" else None

        run = wait_for(finished, timeout=20)
        assert run.owner_pid == proc.pid and run.name == "sent" and run.outcome.exit_code == 4
        assert run.argv[-2:] == (str(script), "y")
        res = cli(home, "logs", str(run_id))
        assert res.stdout == b"hi ['y']\n"
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        proc.stdout.close()
        proc.stderr.close()
    assert not (home / ENDPOINT_FILE).exists()


def test_a_wide_bind_is_only_on_request_and_warns(home):
    proc = subprocess.Popen(argv(home, "scheduler", "--http", "0.0.0.0:0"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env())
    try:
        read_until(proc, b"API listening on", timeout=20)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        err = proc.stderr.read().decode()
        proc.stdout.close()
        proc.stderr.close()
    assert "warning: the API listens on 0.0.0.0, beyond this machine" in err
    res = cli(home, "scheduler", "--http", "127.0.0.1:notaport")
    assert res.returncode == 2 and "--http" in res.stderr.decode() and "Traceback" not in res.stderr.decode()


@pytest.mark.posix_only  # POSIX-only: signals, sessions or file modes Windows does not have
def test_absurd_requests_are_refused_in_one_json_line(home):
    (home).mkdir(parents=True, exist_ok=True)
    token = home / TOKEN_FILE
    token.write_text("x" * 43 + "\n")
    os.chmod(token, 0o644)  # e.g. copied by hand: tightened, and still used

    async def main():
        async with served(home) as (orch, server, client, anon):
            out = {}
            async with client.post("/runs", data=b"{" + b" " * (2 << 20) + b"}",
                                   headers={"Content-Type": "application/json"}) as r:
                out["huge"] = (r.status, (await r.json())["error"])
            for q in ("0", "abc", "-5", "99999999"):
                async with client.get("/runs", params={"limit": q}) as r:
                    out[q] = r.status
            async with client.get("/runs/1/log", params={"stream": "both"}) as r:
                out["stream"] = r.status
            async with client.get("/runs/%00") as r:
                out["nul"] = r.status
            return out, server.token, orch.registry.count()

    out, used, stored = run_async(main())
    assert out["huge"][0] == 413 and out["huge"][1]
    assert [out[q] for q in ("0", "abc", "-5", "99999999")] == [400] * 4
    assert out["stream"] in (400, 404) and out["nul"] == 404
    assert used == "x" * 43 and stat.S_IMODE(token.stat().st_mode) == 0o600 and stored == 0


def test_submit_into_a_live_scheduler_loads_neither_the_server_nor_the_store(home, tmp_path):
    """`submit` is one short process per run: it reads the endpoint and posts, and must not
    import aiohttp, the orchestrator or the registry (that was ~1 s of imports per call)."""
    script = tmp_path / "hello.py"
    script.write_text("print('hi')\n")
    proc = subprocess.Popen(argv(home, "scheduler", "--http", "127.0.0.1:0"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env())
    probe = ("import sys, runpy; sys.argv = ['prismq-desktop', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('prismq_desktop', run_name='__main__')\n"
             "except SystemExit as e:\n    code = e.code\n"
             "heavy = sorted(m for m in sys.modules if m == 'aiohttp' or m.startswith(("
             "'prismq_desktop.core.store', 'prismq_desktop.core.orchestrator', 'prismq_desktop.core.engine')))\n"
             "print('HEAVY', heavy, 'CODE', code)\n")
    try:
        assert b"http://127.0.0.1:" in read_until(proc, b"api-token)", timeout=20)
        res = subprocess.run([sys.executable, "-c", probe, "--data-dir", str(home), "submit", str(script)],
                             capture_output=True, env=clean_env(), timeout=60)
        out = res.stdout.decode()
        assert "submitted to the app" in out and "HEAVY [] CODE 0" in out, (out, res.stderr.decode())
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        proc.stdout.close()
        proc.stderr.close()
