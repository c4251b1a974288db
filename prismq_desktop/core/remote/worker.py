"""What runs on a worker machine: the Celery task that runs a spec, and the worker around it.

The task runs the spec with the *same* local executor as a local run (`SubprocessWrapper` in
LOCAL mode on the task's thread: own session, soft/hard timeouts, TERM-grace-KILL of the whole
tree, pause/resume, 64 KiB reads) and writes everything into the run's Redis stream
(protocol.py): output chunks as they are read, status changes, and a heartbeat with the tree's
CPU/RSS every interval. A control thread per run BLPOPs the run's control list, so a cancel
stops the whole remote tree (Celery's ``revoke(terminate=True)`` would only kill the task).

Pool choice: Celery's *threads* pool. Every run's tree is then a child of the worker process
itself, which becomes a child subreaper at its first spawn (core/process/tree.py), so a
double-forked daemon re-parents to the worker and is found by its run tag and stopped with
the tree. A prefork pool would put each tree under a pool child that Celery may recycle or
kill (``revoke(terminate=True)``, ``max_tasks_per_child``) and leave the tree behind. The task
body mostly waits on pipes and Redis, so threads cost no parallelism.

A worker killed with SIGKILL cannot stop its trees; it records each live tree (pid, start
time, tag) in ``prismq:worker:<host>:trees``, and the next worker started under the same
hostname stops what its predecessor left (`stop_leftovers`) before it takes work.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from prismq_desktop.core.functions import payload as function_payload
from prismq_desktop.core.models import Outcome, OutcomeKind, RunMode, RunSpec, TargetKind
from prismq_desktop.core.process.capture import CHUNK_SIZE, OutputCapture
from prismq_desktop.core.process.executor import Job
from prismq_desktop.core.process.launch import RUN_ID_VAR, RUN_TAG_VAR, Launch, LaunchError, resolve
from prismq_desktop.core.process.local import SubprocessWrapper
from prismq_desktop.core.process.logfile import Stream
from prismq_desktop.core.process.tree import kill_orphan
from prismq_desktop.core.remote import protocol as P
from prismq_desktop.core.remote import sealing
from prismq_desktop.core.remote.config import STREAM_TTL, RemoteSettings, redis_client, require_broker
from prismq_desktop.core.secrets import masked_argv

log = logging.getLogger(__name__)


@dataclasses.dataclass
class WorkerContext:
    """What every task of this worker process shares."""

    url: str
    host: str
    settings: RemoteSettings
    redis: Any
    queues: tuple[str, ...] = ()
    concurrency: int = 1
    active: dict[str, RemoteRun] = dataclasses.field(default_factory=dict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    started_at: float = dataclasses.field(default_factory=time.time)
    #: the key sealed secret values open with (sealing.py); None: runs with secrets fail to start
    key: bytes | None = None


_context: WorkerContext | None = None


def context() -> WorkerContext:
    """This process's worker context (made from ``PRISMQ_BROKER_URL`` if `start_worker` did not)."""
    global _context
    if _context is None:
        url = require_broker()
        _context = WorkerContext(url, socket.gethostname(), RemoteSettings.from_env(), redis_client(url),
                                 key=sealing.load_key(None))
    return _context


def run_task(payload: dict[str, Any]) -> None:
    """The Celery task: run one spec, unless another worker started it (or it was cancelled first)."""
    ctx = context()
    rid = str(payload["rid"])
    if not ctx.redis.set(P.claim_key(rid), ctx.host, nx=True, ex=ctx.settings.claim_ttl):
        log.info("run %s: already started elsewhere or cancelled before it started; dropped", rid)
        return
    RemoteRun(ctx, payload).run()


class _StreamCapture(OutputCapture):
    """Raw chunks straight to the run's stream; the worker keeps no log and no lines.

    The pipe reader that finds no write going on XADDs at once, on its own thread: no 50 ms
    flush tick (the LOCAL supervisor's) and no hand-off to another thread before the first
    line leaves. What the other stream's reader brings meanwhile is queued and goes in the
    same pipeline. At most `MAX_PENDING` bytes wait: then that reader blocks too, so the child
    blocks on its full pipe, and the worker's memory stays flat in the output size."""

    MAX_PENDING = 4 * 1024 * 1024
    RETRIES = 5  # a broker away for a moment: retried, then the entries are lost (the reader sees a gap)

    def __init__(self, run: RemoteRun) -> None:
        super().__init__(None, tail_lines=1)
        self.run = run
        self._cv = threading.Condition()
        self._queue: collections.deque[tuple[bytes, bytes | dict[str, Any]]] = collections.deque()
        self._queued = 0
        self._busy = False  # a reader is writing the queue to the stream

    def feed(self, stream: Stream, data: bytes) -> None:
        if not data:
            return
        kind = P.OUT if stream is Stream.STDOUT else P.ERR
        with self._cv:
            while self._queued >= self.MAX_PENDING:
                self._cv.wait(1.0)
            if len(data) <= CHUNK_SIZE:
                self._queue.append((kind, data))
            else:  # a read takes up to 1 MiB: entries stay <= 64 KiB (the protocol's, and XREAD's memory bound)
                self._queue.extend((kind, data[at : at + CHUNK_SIZE]) for at in range(0, len(data), CHUNK_SIZE))
            self._queued += len(data)
            self.bytes_read[stream] += len(data)
            if self._busy:
                return  # the writing reader takes it with its next batch
            self._busy = True
        self._drain()

    def _drain(self) -> None:
        while True:
            with self._cv:
                if not self._queue:
                    self._busy = False
                    self._cv.notify_all()
                    return
                batch = list(self._queue)
                self._queue.clear()
            size = sum(len(d) for _k, d in batch if isinstance(d, bytes))
            for attempt in range(self.RETRIES):
                try:
                    self.run.emit_many(batch)
                    break
                except Exception as exc:  # noqa: BLE001 - the run goes on; its output may have a gap
                    log.warning("run %s: output to the broker: %s", self.run.rid, exc)
                    time.sleep(0.2 * (attempt + 1))
            with self._cv:
                self._queued -= size
                self._cv.notify_all()

    def finish(self) -> None:
        pass  # `close` (after the supervisor is done) waits for what is being written

    def close(self) -> None:
        """Every chunk read is in the stream (before the run's end entry)."""
        with self._cv:
            while self._busy:
                self._cv.wait(1.0)
        if self._queue:  # fed but not written (cannot happen while a reader is busy): write it here
            with self._cv:
                self._busy = True
            self._drain()


class RemoteRun:
    """One run on this worker: the local executor, the stream writer, the control thread."""

    def __init__(self, ctx: WorkerContext, payload: dict[str, Any]) -> None:
        self.ctx = ctx
        self.payload = payload
        self.rid = str(payload["rid"])
        self.stream = P.stream_key(self.rid)
        self._seq = 0
        self._emit_lock = threading.Lock()
        self.done = threading.Event()
        self.job: Job | None = None
        self._procs: dict[int, psutil.Process] = {}
        self._scratch: str | None = None  # a function run's private call/result dir

    # ------------------------------------------------------------------ the stream
    def emit(self, kind: bytes, payload: bytes | dict[str, Any]) -> None:
        self.emit_many([(kind, payload)])

    def emit_many(self, items: list[tuple[bytes, bytes | dict[str, Any]]]) -> None:
        maxlen = self.ctx.settings.stream_maxlen
        with self._emit_lock:
            pipe = self.ctx.redis.pipeline(transaction=False)
            for kind, payload in items:
                pipe.xadd(self.stream, P.encode(kind, self._seq, payload), maxlen=maxlen, approximate=True)
                self._seq += 1
            pipe.execute()

    def _started(self, pid: int, create_time: float | None) -> None:
        assert self.job is not None
        self.ctx.redis.hset(P.trees_key(self.ctx.host), self.rid,
                            json.dumps({"pid": pid, "create_time": create_time, "tag": self.payload.get("tag")}))
        self.emit(P.STATUS, {"event": "started", "pid": pid, "create_time": create_time, "host": self.ctx.host,
                             "argv": masked_argv(self.job.launch.argv), "cwd": self.job.launch.cwd,
                             "heartbeat": self.ctx.settings.heartbeat})

    # ------------------------------------------------------------------ control and heartbeats
    def _control_loop(self) -> None:
        """BLPOP the control list (the wait doubles as the heartbeat timer) until the run ends."""
        hb = self.ctx.settings.heartbeat
        ctl = P.control_key(self.rid)
        next_beat = time.monotonic() + hb  # the "claimed" entry just said we are alive
        client = self.ctx.redis  # its pool gives each blocking BLPOP a connection of its own, kept for the next run
        while not self.done.is_set():
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + hb
                with contextlib.suppress(Exception):
                    self.emit(P.HEARTBEAT, self._sample())
            try:
                got = client.blpop([ctl], timeout=max(0.05, min(hb, next_beat - time.monotonic())))
            except Exception as exc:  # noqa: BLE001 - Redis gone for a moment: keep the run going
                log.warning("run %s: control channel: %s", self.rid, exc)
                self.done.wait(min(hb, 1.0))
                continue
            if got is not None:
                self.control(got[1].decode(errors="replace"))

    def control(self, command: str) -> None:
        job = self.job
        if job is None:
            return
        if command in ("cancel", "kill"):
            job.request_stop(OutcomeKind.CANCELLED, "cancelled by the user", graceful=command == "cancel")
        elif command == "pause" and job.pause():
            self.emit(P.STATUS, {"event": "paused"})
        elif command == "resume" and job.resume():
            self.emit(P.STATUS, {"event": "resumed"})

    def _sample(self) -> dict[str, Any]:
        """CPU (100 = one core) and RSS summed over the tree, sampled here on the worker."""
        cpu, rss = 0.0, 0
        tree = self.job.tree if self.job is not None else None
        if tree is None:
            return {"t": time.time(), "host": self.ctx.host}  # not started yet: no reading
        if tree is not None:
            try:
                root = psutil.Process(tree.pid)
                members = [root, *root.children(recursive=True)]
            except psutil.Error:
                return {"t": time.time(), "host": self.ctx.host}  # already gone: no reading
            seen = {}
            for proc in members:
                cached = self._procs.get(proc.pid, proc)
                try:
                    cpu += cached.cpu_percent(None)
                    rss += cached.memory_info().rss
                    seen[proc.pid] = cached
                except psutil.Error:
                    continue
            self._procs = seen
        return {"t": time.time(), "cpu": cpu, "rss": rss, "host": self.ctx.host}

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        ctx = self.ctx
        with ctx.lock:
            ctx.active[self.rid] = self
        self.emit(P.STATUS, {"event": "claimed", "host": ctx.host, "heartbeat": ctx.settings.heartbeat})
        control = threading.Thread(target=self._control_loop, name=f"prismq-ctl-{self.rid[:8]}", daemon=True)
        try:
            outcome = self._execute(control)
            end: dict[str, Any] = {"event": "end", "outcome": outcome.kind.value, "exit_code": outcome.exit_code,
                                   "message": outcome.message}
            report = self._report()
            if report is not None:
                end["result"] = report
            self.emit(P.STATUS, end)
        except Exception as exc:  # noqa: BLE001 - the submitter must hear of it, whatever it was
            log.exception("run %s failed on the worker", self.rid)
            with contextlib.suppress(Exception):
                self.emit(P.STATUS, {"event": "end", "outcome": OutcomeKind.FAILED.value, "exit_code": None,
                                     "message": f"internal error on worker {ctx.host}: {exc}"})
        finally:
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
            self.done.set()
            if control.is_alive():
                with contextlib.suppress(Exception):
                    ctx.redis.rpush(P.control_key(self.rid), "_end")  # wake its BLPOP: the slot is free at once
                control.join(ctx.settings.heartbeat + 1)
            with contextlib.suppress(Exception):
                ctx.redis.hdel(P.trees_key(ctx.host), self.rid)
                ctx.redis.expire(self.stream, STREAM_TTL)
                ctx.redis.expire(P.control_key(self.rid), STREAM_TTL)
            with ctx.lock:
                ctx.active.pop(self.rid, None)

    def _report(self) -> str | None:
        """A function run's report (the runner's result file), to travel back in the end entry."""
        if self._scratch is None:
            return None
        path = os.path.join(self._scratch, "result.json")
        try:
            if os.path.getsize(path) > function_payload.MAX_RESULT_BYTES + 1:
                return '"too big"'  # not a report: the submitter says the result is refused
            with open(path, "rb") as fh:
                return fh.read(function_payload.MAX_RESULT_BYTES + 1).decode("utf-8", errors="replace")
        except OSError:
            return None  # it ended without reporting: the submitter says so

    def _function_env(self, spec: RunSpec) -> dict[str, str]:
        """The call file and result file of a function run, in a private scratch dir of this run."""
        self._scratch = tempfile.mkdtemp(prefix=f"prismq-fn-{self.rid[:8]}-")  # 0700
        call = os.path.join(self._scratch, "call")
        fd = os.open(call, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (spec.payload or "").encode("utf-8"))
        finally:
            os.close(fd)
        return {function_payload.CALL_FILE_VAR: call,
                function_payload.RESULT_FILE_VAR: os.path.join(self._scratch, "result.json"),
                function_payload.SERIALIZER_VAR: spec.serializer.value}

    def _execute(self, control: threading.Thread) -> Outcome:
        payload = self.payload
        try:
            data = sealing.unseal(dict(payload["spec"]), payload.get("sealed") or {}, self.ctx.key)
            spec = RunSpec.from_dict(data)
            launch = resolve(spec)
            extra = self._function_env(spec) if spec.kind is TargetKind.FUNCTION else {}
        except (LaunchError, KeyError, TypeError, ValueError, OSError) as exc:
            message = f"{exc} (on worker {self.ctx.host})"
            self.emit(P.STATUS, {"event": "failed_to_start", "message": message})
            return Outcome(OutcomeKind.FAILED_TO_START, None, message)
        env = {**launch.env, **extra, RUN_ID_VAR: str(payload.get("run_id", "")),
               RUN_TAG_VAR: str(payload.get("tag") or self.rid)}
        launch = dataclasses.replace(launch, env=env)
        capture = _StreamCapture(self)
        try:
            return self._run_job(control, spec, launch, capture)
        finally:
            capture.close()  # every output entry is in the stream before the end entry

    def _run_job(self, control: threading.Thread, spec: RunSpec, launch: Launch, capture: _StreamCapture) -> Outcome:
        self.job = Job(
            run_id=int(self.payload.get("run_id") or 0),
            launch=launch,
            capture=capture,
            soft_timeout=spec.soft_timeout,
            hard_timeout=spec.hard_timeout,
            grace_period=spec.grace_period,
            on_started=self._started,
        )
        control.start()  # a cancel made before the start is in the list already: taken first
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline and self.ctx.redis.llen(P.control_key(self.rid)):
            time.sleep(0.01)  # let the control thread take what waited before the start
        if self.job.stop_outcome is not None:
            return Outcome(self.job.stop_outcome.kind, None, "cancelled before it started")
        return SubprocessWrapper(RunMode.LOCAL).execute_blocking(self.job)


# ---------------------------------------------------------------------- the worker process
def stop_leftovers(ctx: WorkerContext) -> int:
    """Stop the trees a dead worker of the same hostname left running; how many were found."""
    key = P.trees_key(ctx.host)
    entries = ctx.redis.hgetall(key)
    stopped = 0
    for rid_b, raw in entries.items():
        rid = rid_b.decode()
        info = P.decode_json(raw)
        pid, created, tag = info.get("pid"), info.get("create_time"), info.get("tag")
        found = False
        if isinstance(pid, int) and isinstance(created, float):  # never a pid without its start time (reuse)
            found = kill_orphan(pid, created)
        if isinstance(tag, str) and tag:
            found = _kill_tagged(tag) or found
        stopped += int(found)
        with contextlib.suppress(Exception):
            ctx.redis.xadd(P.stream_key(rid), P.encode(P.STATUS, 0, {  # n=0: never read as a gap
                "event": "end", "outcome": OutcomeKind.INTERRUPTED.value, "exit_code": None,
                "message": f"worker lost: {ctx.host} was restarted; the tree it left was stopped"}))
            ctx.redis.expire(P.stream_key(rid), STREAM_TTL)
        ctx.redis.hdel(key, rid)
    return stopped


def _kill_tagged(tag: str) -> bool:
    """Kill every process carrying the run tag (daemons re-parented to init when the worker died)."""
    needle = f"{RUN_TAG_VAR}={tag}"
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != os.getpid() and proc.environ().get(RUN_TAG_VAR) == tag:
                found.append(proc)
        except psutil.Error:
            continue
    for proc in found:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(found, timeout=2)
    log.info("stopped %d leftover process(es) tagged %s", len(found), needle)
    return bool(found)


def beat(ctx: WorkerContext) -> None:
    """One worker heartbeat: the hash the Workers view reads (services/workers.py)."""
    me = psutil.Process()
    with ctx.lock:
        active = list(ctx.active)
    fields = {
        "host": ctx.host, "queues": json.dumps(list(ctx.queues)), "concurrency": ctx.concurrency,
        "active": json.dumps(active), "last": time.time(), "heartbeat": ctx.settings.heartbeat,
        "cpu": me.cpu_percent(None), "rss": me.memory_info().rss, "pid": os.getpid(), "started": ctx.started_at,
    }
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.hset(P.worker_key(ctx.host), mapping={k: str(v) for k, v in fields.items()})
    pipe.expire(P.worker_key(ctx.host), int(max(60, ctx.settings.heartbeat * 30)))
    pipe.sadd(P.WORKERS_SET, ctx.host)
    pipe.execute()


def _beat_loop(ctx: WorkerContext, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            beat(ctx)
        except Exception as exc:  # noqa: BLE001 - the broker may be away for a moment
            log.warning("worker heartbeat: %s", exc)
        stop.wait(ctx.settings.heartbeat)


def start_worker(url: str, queues: list[str], concurrency: int, hostname: str | None = None,
                 loglevel: str = "WARNING", app_hook: Callable[[Any], None] | None = None,
                 home: str | os.PathLike[str] | None = None) -> int:
    """Run a Celery worker (Celery's own machinery, threads pool) until it is told to stop."""
    from celery import signals

    from prismq_desktop.core.remote.config import make_app

    global _context
    settings = RemoteSettings.from_env()
    app = make_app(url, settings, task=run_task)
    if app_hook is not None:
        app_hook(app)  # e.g. the benchmark's bare Celery tasks, on the very same worker
    host = hostname or socket.gethostname()
    key = sealing.load_key(home)  # a bad key stops the worker here, in one line (SealError)
    ctx = _context = WorkerContext(url, host, settings, redis_client(url), tuple(queues), concurrency, key=key)
    ctx.redis.ping()
    left = stop_leftovers(ctx)
    if left:
        log.warning("stopped %d process tree(s) left by a previous worker named %s", left, host)
    stop = threading.Event()
    beater = threading.Thread(target=_beat_loop, args=(ctx, stop), name="prismq-worker-beat", daemon=True)
    beater.start()

    def cancel_all(**_kw: Any) -> None:  # a warm shutdown would wait for every run: stop them instead
        with ctx.lock:
            runs = list(ctx.active.values())
        for run in runs:
            if run.job is not None:
                run.job.request_stop(OutcomeKind.CANCELLED, f"worker {host} shut down")

    signals.worker_shutting_down.connect(cancel_all, weak=False)
    worker = app.Worker(pool="threads", concurrency=concurrency, queues=queues, hostname=f"prismq@{host}",
                        loglevel=loglevel, without_mingle=True, without_gossip=True, optimization="fair")
    try:
        worker.start()
    finally:
        stop.set()
        beater.join(2)
        with contextlib.suppress(Exception):
            ctx.redis.delete(P.worker_key(host))
    return int(getattr(worker, "exitcode", 0) or 0)


__all__ = ["RemoteRun", "WorkerContext", "beat", "context", "run_task", "start_worker", "stop_leftovers"]
