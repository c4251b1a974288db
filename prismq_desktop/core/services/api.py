"""The local HTTP API: health endpoints, runs and schedules over HTTP, Prometheus metrics.

Served by aiohttp on the loop the orchestrator already runs on (asyncio for the headless
`scheduler --http`, qasync in the window), so every request is answered with the same
orchestrator the window uses: a run submitted here shows in its panes. Off by default;
binds loopback unless a wider host is asked for explicitly. Every endpoint but `/health`
needs ``Authorization: Bearer <token>``, the token being the content of the data dir's
0600 `api-token` file (made on first use). While it listens, the data dir's `api-endpoint`
file (0600) says where, so `prismq-desktop submit` can find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import math
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from prismq_desktop.core.models import RunSpec
from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
from prismq_desktop.core.paths import open_private
from prismq_desktop.core.patterns import Priority
from prismq_desktop.core.process.launch import LaunchError, resolve
from prismq_desktop.core.process.logfile import Stream
from prismq_desktop.core.schedule.model import ScheduleError
from prismq_desktop.core.secrets import masked_spec_dict
from prismq_desktop.core.services.endpoint import ENDPOINT_FILE, TOKEN_FILE, process_alive, read_endpoint  # noqa: F401 - re-exported
from prismq_desktop.core.services.history import run_to_json
from prismq_desktop.core.store import RunQuery
from prismq_desktop.core.store.atomic import atomic_write_text
from prismq_desktop.core.store.schema import RunNotFound
from prismq_desktop.core.store.tasks import TaskStore

SETTING_KEY = "api/listen"  # the window's setting: "" (off) or "HOST:PORT"
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0)
STATUSES = {"queued", "running", "paused", "done"}
OUTCOMES = {"succeeded", "failed", "failed_to_start", "cancelled", "timed_out", "interrupted", "dependency_failed",
            "skipped", "missed"}
MAX_BODY = 1024 * 1024


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prismq-desktop")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown"


class ApiError(ValueError):
    """A bad listen address, or a token file that cannot be made (one line)."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) or a bare PORT (loopback) → (host, port)."""
    raw = text.strip()
    host, sep, port = raw.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", raw
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ApiError(f"not a HOST:PORT address: {text!r} (e.g. 127.0.0.1:8765)") from None
    if not 0 <= number <= 65535:
        raise ApiError(f"port out of range: {number}")
    return host, number


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ensure_token(home: Path) -> str:
    """The API token: read from `api-token` (tightened to 0600), or made and written 0600."""
    path = Path(home) / TOKEN_FILE
    try:
        fd = open_private(path, os.O_RDONLY)
        with os.fdopen(fd, "r", encoding="ascii", errors="replace") as fh:
            token = fh.read().strip()
        if len(token) >= 32:
            return token
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ApiError(f"the API token file cannot be read: {path}: {exc.strerror or exc}") from None
    token = secrets.token_urlsafe(32)
    try:
        atomic_write_text(path, token + "\n")  # 0600, never half-written
    except OSError as exc:
        raise ApiError(f"the API token file cannot be written: {path}: {exc.strerror or exc}") from None
    return token


def _records(path: str, offset: int) -> list[tuple[Any, int]]:
    """The log's records from `offset` on (read off the loop: a big log never stalls it)."""
    from prismq_desktop.core.process.logfile import read_log

    try:
        return list(read_log(path, offset))
    except FileNotFoundError:  # not made yet (no output so far), or gone
        return []


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, allow_nan=False, default=str))


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def spec_from_json(body: Any) -> tuple[RunSpec, str]:
    """A POST /runs body → (spec, priority); ValueError with the validation message."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    unknown = set(body) - {"script", "args", "cwd", "env", "timeout", "priority", "name", "module", "python", "task"}
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    script = body.get("script")
    if not isinstance(script, str) or not script.strip():
        raise ValueError("script: a non-empty string is required")
    args = body.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ValueError("args: a list of strings")
    env = body.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ValueError("env: an object of string values")
    cwd = body.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise ValueError("cwd: a string")
    timeout = body.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not math.isfinite(timeout) or timeout <= 0):
        raise ValueError("timeout: a positive number of seconds")
    for key in ("name", "python"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise ValueError(f"{key}: a string")
    priority = body.get("priority", "normal")
    if not isinstance(priority, str):
        raise ValueError("priority: critical, high, normal or low")
    Priority.parse(priority)  # ValueError names the choices
    from prismq_desktop.core.models import TargetKind

    spec = RunSpec(script, tuple(args), kind=TargetKind.MODULE if body.get("module") else TargetKind.AUTO, cwd=cwd,
                   env=env, interpreter=body.get("python"), soft_timeout=float(timeout) if timeout is not None else None,
                   name=body.get("name"))
    return spec, priority.strip().lower()


class ApiServer:
    """One listening API over `orch`. `start()` on the orchestrator's loop, `stop()` to close."""

    def __init__(self, orch: TaskOrchestrator, host: str = "127.0.0.1", port: int = 0, *, home: Path | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.orch = orch
        self.host = host
        self.port = port
        self.home = Path(home) if home is not None else Path(orch.engine.home)
        self.monotonic = monotonic
        self.token = ensure_token(self.home)
        self._runner: web.AppRunner | None = None
        self._followers: set[asyncio.Task[Any]] = set()
        self.url = ""

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> str:
        """Listen (port 0: a free one); the base URL. OSError (one line) when the port is taken."""
        app = web.Application(middlewares=[self._auth], client_max_size=MAX_BODY)
        app.add_routes([
            web.get("/health", self._health),
            web.get("/health/scheduler", self._health_scheduler),
            web.get("/runs", self._runs),
            web.post("/runs", self._submit),
            web.get("/runs/{id}", self._run),
            web.post("/runs/{id}/cancel", self._cancel),
            web.get("/runs/{id}/log", self._log),
            web.get("/schedules", self._schedules),
            web.post("/schedules/{id}/run-now", self._run_now),
            web.post("/schedules/{id}/enable", self._enable),
            web.post("/schedules/{id}/disable", self._disable),
            web.get("/metrics", self._metrics),
        ])
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else self.port
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{self.port}"
        self._write_endpoint()
        return self.url

    async def stop(self) -> None:
        for task in list(self._followers):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(OSError, ValueError):
            data = json.loads((self.home / ENDPOINT_FILE).read_text(encoding="utf-8"))
            if data.get("pid") == os.getpid() and data.get("url") == self.url:
                (self.home / ENDPOINT_FILE).unlink()

    def _write_endpoint(self) -> None:
        import psutil

        url = self.url if not self.host.startswith("0.") and self.host not in ("::", "") else f"http://127.0.0.1:{self.port}"
        data = {"url": url, "pid": os.getpid(), "create_time": psutil.Process().create_time(), "version": _version()}
        with contextlib.suppress(OSError):
            atomic_write_text(self.home / ENDPOINT_FILE, json.dumps(data))

    # ------------------------------------------------------------------ auth
    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if request.path != "/health":
            given = request.headers.get("Authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.token.encode()):
                return web.json_response({"error": "a valid bearer token is required (the data dir's api-token file)"},
                                         status=401, headers={"WWW-Authenticate": 'Bearer realm="prismq"'})
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _error(exc.status, exc.reason)
            raise
        return response

    # ------------------------------------------------------------------ health
    async def _health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok", "version": _version(), "pid": os.getpid(),
                      "active_runs": len(self.orch.engine.active()), "queue_depth": self.orch.queue_length,
                      "scheduler": self.orch.scheduler.running})

    async def _health_scheduler(self, request: web.Request) -> web.Response:
        h = self.orch.scheduler.health(self.monotonic)
        body = {"status": h.status, "running": h.running, "last_tick": h.last_tick,
                "seconds_since_tick": h.seconds_since_tick, "next_fire": h.next_fire, "lag": h.lag,
                "schedules_enabled": h.schedules_enabled}
        if h.reason:
            body["reason"] = h.reason
        return _json(body, 200 if h.healthy else 503)

    # ------------------------------------------------------------------ runs
    def _resolve_run(self, request: web.Request) -> int:
        try:
            run_id = self.orch.registry.resolve(request.match_info["id"])
        except RunNotFound:
            raise web.HTTPNotFound(reason=f"no run {request.match_info['id']!r}") from None
        if not 0 < run_id < 2**63 or self.orch.registry.get(run_id) is None:
            raise web.HTTPNotFound(reason=f"no run #{run_id}")
        return run_id

    async def _runs(self, request: web.Request) -> web.Response:
        wanted = request.query.get("status", "").strip().lower().replace("-", "_") or None
        if wanted is not None and wanted not in STATUSES | OUTCOMES:
            return _error(400, f"unknown status {wanted!r} (choose from {', '.join(sorted(STATUSES | OUTCOMES))})")
        try:
            limit = int(request.query.get("limit", "20"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            return _error(400, "limit and offset must be whole numbers")
        if not 0 < limit <= 10_000 or not 0 <= offset < 2**63:
            return _error(400, "limit must be 1..10000 and offset 0 or more")
        query = RunQuery.of(wanted, limit=limit)
        from dataclasses import replace

        runs = self.orch.registry.query(replace(query, offset=offset))
        return _json([run_to_json(r) for r in runs])

    async def _submit(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(400, f"the body is not JSON: {exc}")
        options: dict[str, Any] = {}
        try:
            if isinstance(body, dict) and "task" in body:
                spec, options = self._task_spec(body)
                priority = options.pop("priority", "normal")  # as saved: a name or a number
            else:
                spec, priority = spec_from_json(body)
            resolve(spec)  # a missing script, bad cwd or interpreter is a 400 now, not a failed run later
        except (ValueError, LaunchError) as exc:
            return _error(400, str(exc))
        allowed = {"max_retries", "retry_on", "backoff_base", "backoff_factor", "backoff_cap", "priority", "use_pool"}
        opts = {k: v for k, v in options.items() if k in allowed}
        try:
            run_id = self.orch.delay(spec, priority=priority, **opts)
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        return _json({"id": run_id, "url": f"/runs/{run_id}"}, 201)

    def _task_spec(self, body: dict[str, Any]) -> tuple[RunSpec, dict[str, Any]]:
        name = body.get("task")
        extra = set(body) - {"task", "priority"}
        if not isinstance(name, str) or not name.strip():
            raise ValueError("task: the name of a saved task")
        if extra:
            raise ValueError(f"a saved task is run as saved: {', '.join(sorted(extra))} cannot be given with task")
        found = TaskStore(self.home / "tasks.json").get(name)
        if found is None:
            raise ValueError(f"no saved task named {name!r}")
        spec, options = found
        if "priority" in body:
            if not isinstance(body["priority"], str):
                raise ValueError("priority: critical, high, normal or low")
            Priority.parse(body["priority"])
            options["priority"] = body["priority"].strip().lower()
        return spec, options

    async def _run(self, request: web.Request) -> web.Response:
        run = self.orch.registry.get(self._resolve_run(request))
        assert run is not None
        return _json(run_to_json(run))

    async def _cancel(self, request: web.Request) -> web.Response:
        run_id = self._resolve_run(request)
        run = self.orch.registry.get(run_id)
        assert run is not None
        if not run.is_active:
            return _error(409, f"run #{run_id} has already ended ({run.outcome.describe() if run.outcome else 'done'})")
        if not self.orch.cancel(run_id):
            return _error(409, f"run #{run_id} is not run by this process (cancel it where it runs)")
        return _json({"id": run_id, "cancelled": True})

    async def _log(self, request: web.Request) -> web.StreamResponse:
        run_id = self._resolve_run(request)
        stream = request.query.get("stream")
        if stream not in (None, "stdout", "stderr"):
            return _error(400, "stream must be stdout or stderr")
        wanted = {"stdout": {Stream.STDOUT}, "stderr": {Stream.STDERR}, None: {Stream.STDOUT, Stream.STDERR}}[stream]
        follow = request.query.get("follow", "0").lower() in ("1", "true", "yes")
        run = self.orch.registry.get(run_id)
        assert run is not None
        path = run.log_path
        if not path:
            return _error(404, f"run #{run_id} has no log file")
        # no file yet: made at the first output; a finished run without one wrote nothing
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream", "X-Run-Id": str(run_id)})
        await response.prepare(request)
        offset = 0

        async def copy() -> None:
            nonlocal offset
            if not path or not os.path.exists(path):
                return
            for record, end in await asyncio.to_thread(_records, path, offset):
                if record.stream in wanted:
                    await response.write(record.data)
                offset = end

        await copy()
        task = asyncio.current_task()
        if task is not None:
            self._followers.add(task)
        try:
            while follow:
                current = self.orch.registry.get(run_id)
                if current is None or not current.is_active or not process_alive(current.owner_pid,
                                                                                  current.owner_create_time):
                    await copy()
                    break
                await asyncio.sleep(0.2)
                await copy()
        finally:
            if task is not None:
                self._followers.discard(task)
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ schedules
    def _schedule_key(self, request: web.Request) -> int | str:
        raw = request.match_info["id"]
        key: int | str = int(raw) if raw.isdigit() else raw
        try:
            self.orch.scheduler.get(key)
        except (ScheduleError, KeyError, ValueError):
            raise web.HTTPNotFound(reason=f"no schedule {raw!r}") from None
        return key

    def _schedule_json(self, s: Any) -> dict[str, Any]:
        return {"id": s.id, "name": s.name, "trigger": s.trigger.to_dict(), "describe": s.describe(),
                "enabled": s.enabled, "overlap": s.overlap.value, "catchup": s.catchup.value,
                "next_fire": s.next_fire, "last_fire": s.last_fire, "spec": masked_spec_dict(s.spec.to_dict())}

    async def _schedules(self, request: web.Request) -> web.Response:
        self.orch.scheduler.reload()
        rows = [self._schedule_json(s) for s in self.orch.scheduler.all()]
        rows += [{"id": b.id, "name": b.name, "broken": b.reason} for b in self.orch.scheduler.broken()]
        return _json(rows)

    async def _run_now(self, request: web.Request) -> web.Response:
        key = self._schedule_key(request)
        result = self.orch.scheduler.fire_now(key)
        return _json({"schedule_id": result.schedule_id, "action": result.action.value, "message": result.message,
                      "run_id": result.run_id, "blocking_run": result.blocking_run}, 201 if result.run_id else 200)

    async def _enable(self, request: web.Request) -> web.Response:
        return _json(self._schedule_json(self.orch.scheduler.enable(self._schedule_key(request))))

    async def _disable(self, request: web.Request) -> web.Response:
        return _json(self._schedule_json(self.orch.scheduler.disable(self._schedule_key(request))))

    # ------------------------------------------------------------------ metrics
    async def _metrics(self, request: web.Request) -> web.Response:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        counts, buckets, total, n = self.orch.registry.outcome_stats(DURATION_BUCKETS)
        health = self.orch.scheduler.health(self.monotonic)
        families: list[Any] = []
        runs = CounterMetricFamily("prismq_runs", "Finished runs in the registry, by outcome", labels=["outcome"])
        for outcome in sorted(OUTCOMES | set(counts)):
            runs.add_metric([outcome], counts.get(outcome, 0))
        families.append(runs)
        hist = HistogramMetricFamily("prismq_run_duration_seconds", "Wall time of finished runs that started")
        hist.add_metric([], [*((f"{b:g}", c) for b, c in zip(DURATION_BUCKETS, buckets, strict=True)), ("+Inf", n)], total)
        families.append(hist)
        families.append(GaugeMetricFamily("prismq_queue_depth", "Runs waiting for a slot", value=self.orch.queue_length))
        families.append(GaugeMetricFamily("prismq_active_runs", "Runs started by this process and not ended",
                                          value=len(self.orch.engine.active())))
        families.append(GaugeMetricFamily("prismq_scheduler_lag_seconds", "How late the most overdue fire is",
                                          value=health.lag))
        families.append(GaugeMetricFamily("prismq_scheduler_up", "1 when the scheduler loop is healthy",
                                          value=1 if health.healthy else 0))
        families.append(GaugeMetricFamily("prismq_schedules_enabled", "Enabled schedules",
                                          value=health.schedules_enabled))

        class _Snapshot:
            def collect(self) -> list[Any]:
                return families

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot())
        return web.Response(body=generate_latest(registry), headers={"Content-Type": "text/plain; version=0.0.4"})


async def start_from_setting(orch: TaskOrchestrator, listen: object) -> ApiServer | None:
    """The window's hook: serve the API when the `api/listen` setting holds HOST:PORT (off when
    empty). A bad address or a taken port is logged in one line; the window starts anyway."""
    import logging

    text = str(listen or "").strip()
    if not text or text.lower() in ("off", "false", "0", "no"):
        return None
    log = logging.getLogger(__name__)
    try:
        host, port = parse_listen(text)
        if not is_loopback(host):
            log.warning("the API listens on %s, beyond this machine: anyone with the token can run programs", host)
        server = ApiServer(orch, host, port)
        url = await server.start()
    except (ApiError, OSError) as exc:
        log.error("setting %s=%r: the API is not served (%s)", SETTING_KEY, text, exc)
        return None
    log.info("API listening on %s", url)
    return server
