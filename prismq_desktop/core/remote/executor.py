"""RemoteExecutor: the submitting side of a remote run (an `Executor`, core/process/executor.py).

For a job whose spec says ``where="remote:QUEUE"`` it sends the spec to QUEUE through Celery
(``apply_async``, with the run's priority), then reads the run's Redis stream from id 0 (XREAD)
and feeds the engine exactly as a local run would: output chunks into ``job.capture`` (so the
engine writes the same local log file, byte for byte, and the same registry record), the start
(``on_started`` with the worker's pid), the worker's host (``on_remote``), CPU/RSS from the
heartbeats (``on_sample``) and the outcome. Cancel, kill, pause and resume go to the worker
through the run's control list. Every other job goes to `fallback` (the local executor or the
warm pool), so one engine runs both.

Failure handling (docs/architecture.md, "Remote runs"):
- no heartbeat or output for two heartbeat intervals once a worker claimed the run: the run ends
  ``interrupted`` ("worker lost"); retrying it is the retry policy's business;
- cancelled before any worker claimed it: the submitter takes the start claim itself, so no
  worker ever starts it, and the run ends ``cancelled`` at once;
- the broker unreachable at submit: ``failed_to_start`` with one line;
- secret values and no remote key (sealing.py): ``failed_to_start`` with one line, nothing sent;
- no worker took it within the claim timeout while no live worker served its queue (a queue
  typo, workers all gone): the submitter takes the start claim ("withdrawn"), so a worker
  started later drops the message, and the run ends ``failed_to_start`` saying so;
- the stream was trimmed (nobody read it for `stream_maxlen` entries): the run keeps its real
  outcome, with a note saying how many entries were lost;
- this app dies: the worker goes on; a restarted app reattaches (`RunEngine.reattach_remote`)
  and rewrites the log from the stream's start.

The reading runs on one thread per run (blocking XREAD with a timeout); everything the engine
sees is handed to the loop with ``call_soon_threadsafe`` (or called directly in LOCAL mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from prismq_desktop.core.models import Outcome, OutcomeKind, RunMode
from prismq_desktop.core.process.executor import Executor, Job
from prismq_desktop.core.process.launch import RUN_TAG_VAR
from prismq_desktop.core.process.local import SubprocessWrapper
from prismq_desktop.core.process.logfile import Stream
from prismq_desktop.core.process.pipes import thread_future
from prismq_desktop.core.remote import protocol as P
from prismq_desktop.core.remote import sealing
from prismq_desktop.core.remote.config import (
    STREAM_TTL,
    TASK_NAME,
    RemoteSettings,
    celery_priority,
    check_broker_url,
    make_app,
    mask_url,
    redis_client,
)

log = logging.getLogger(__name__)

Dispatch = Callable[..., None]


class RemoteExecutor:
    """Runs remote jobs on Celery workers; everything else on `fallback`."""

    runs_remote = True

    def __init__(self, url: str, *, fallback: Executor | None = None, settings: RemoteSettings | None = None,
                 home: str | None = None) -> None:
        self.url = check_broker_url(url)
        #: the data dir, where `remote.key` may be (the orchestrator sets it to its engine's)
        self.home = home
        self.fallback: Executor = fallback or SubprocessWrapper()
        self.settings = settings or RemoteSettings.from_env()
        self._app: Any = None
        self._redis: Any = None
        self._submit_lock = threading.Lock()
        self.host = socket.gethostname()

    # ------------------------------------------------------------------ shared clients
    @property
    def redis(self) -> Any:
        if self._redis is None:
            self._redis = redis_client(self.url)
        return self._redis

    @property
    def app(self) -> Any:
        if self._app is None:
            self._app = make_app(self.url, self.settings)
        return self._app

    def close(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                self._redis.close()
        if self._app is not None:
            with contextlib.suppress(Exception):
                self._app.close()

    # ------------------------------------------------------------------ the Executor protocol
    def mode_for_run(self, override: RunMode | str | None = None) -> RunMode:
        return self.fallback.mode_for_run(override)

    @staticmethod
    def is_remote(job: Job) -> bool:
        return job.reattach_id is not None or (job.spec is not None and job.spec.remote_queue is not None)

    async def execute(self, job: Job, mode: RunMode) -> Outcome:
        if not self.is_remote(job):
            return await self.fallback.execute(job, mode)
        if mode is RunMode.DRY_RUN:
            return Outcome(OutcomeKind.SUCCEEDED, None, "dry run: nothing was started")
        loop = asyncio.get_running_loop()

        def dispatch(fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed at shutdown
                loop.call_soon_threadsafe(lambda: fn(*args, **kwargs))

        follower = _Follower(self, job, dispatch)
        fut = thread_future(loop, follower.run, f"run-{job.run_id}-remote")
        try:
            outcome = await fut
        except asyncio.CancelledError:
            follower.abandon.set()  # the worker goes on; a restarted app may reattach
            raise
        assert isinstance(outcome, Outcome)
        await asyncio.sleep(0)  # let the callbacks dispatched before the outcome run first
        return outcome

    def execute_blocking(self, job: Job) -> Outcome:
        if not self.is_remote(job):
            return self.fallback.execute_blocking(job)
        return _Follower(self, job, lambda fn, *a, **kw: fn(*a, **kw)).run()

    # ------------------------------------------------------------------ submitting
    def remote_key(self) -> bytes | None:
        """The key secret values are sealed with (read at each use: a key added later counts)."""
        return sealing.load_key(self.home)

    def submit(self, payload: dict[str, Any], queue: str, priority: int) -> None:
        with self._submit_lock:
            self.app.send_task(TASK_NAME, args=[payload], queue=queue, priority=celery_priority(priority),
                               retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5})


class _Follower:
    """One remote run, from submit (or reattach) to its outcome, on its own thread.

    Memory is flat in the output size: one XREAD takes at most `READ_COUNT` entries (64 KiB
    each at most), and once `MAX_UNTAKEN` bytes were fed that the loop has not taken yet, the
    reader waits for it (a firehose is read as fast as the engine writes the log, no faster).
    """

    READ_COUNT = 64
    MAX_UNTAKEN = 4 * 1024 * 1024

    def __init__(self, executor: RemoteExecutor, job: Job, dispatch: Dispatch) -> None:
        self.ex = executor
        self.job = job
        self.dispatch = dispatch
        self.rid = job.reattach_id or uuid.uuid4().hex
        self.abandon = threading.Event()
        self._taken = threading.Event()  # set each time the loop took the pending output
        self.host: str | None = None
        self.heartbeat = executor.settings.heartbeat
        self.queue = job.spec.remote_queue if job.spec is not None else None
        self._unserved_since: float | None = time.monotonic()  # the claim timeout's clock (see _unclaimed)
        self._next_check = 0.0

    # ------------------------------------------------------------------ control (any thread)
    def _on_stop(self, graceful: bool) -> None:
        r = self.ex.redis
        try:
            if r.set(P.claim_key(self.rid), P.CANCELLED_CLAIM, nx=True, ex=self.ex.settings.claim_ttl):
                # no worker has it yet: none ever will; wake the reader with the end
                r.xadd(P.stream_key(self.rid), P.encode(P.STATUS, 0, {
                    "event": "end", "outcome": OutcomeKind.CANCELLED.value, "exit_code": None,
                    "message": "cancelled before it started"}))
                return
            pipe = r.pipeline(transaction=False)
            pipe.rpush(P.control_key(self.rid), "cancel" if graceful else "kill")
            pipe.expire(P.control_key(self.rid), STREAM_TTL)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - one line, the run keeps going
            log.error("run %s: the cancel could not reach the broker: %s", self.job.run_id, exc)

    def _control(self, command: str) -> bool:
        try:
            self.ex.redis.rpush(P.control_key(self.rid), command)
            return True
        except Exception as exc:  # noqa: BLE001
            log.error("run %s: %s could not reach the broker: %s", self.job.run_id, command, exc)
            return False

    # ------------------------------------------------------------------ the run
    def run(self) -> Outcome:
        job = self.job
        job.stop_listener = self._on_stop
        job.remote_control = self._control
        try:
            if job.reattach_id is None:
                if job.stop_outcome is not None:
                    return job.stop_outcome
                failed = self._submit()
                if failed is not None:
                    return failed
            elif job.stop_outcome is not None:
                self._on_stop(job.stop_graceful)
            return self._follow()
        finally:
            job.stop_listener = None
            job.capture.finish()
            self.dispatch(self._flush)

    def _submit(self) -> Outcome | None:
        job = self.job
        assert job.spec is not None and job.spec.remote_queue is not None
        spec = job.spec.to_dict()
        payload: dict[str, Any] = {"rid": self.rid, "run_id": job.run_id,
                                   "tag": job.launch.env.get(RUN_TAG_VAR) or self.rid,
                                   "submitted": time.time(), "from": self.ex.host}
        names = sealing.secret_names(spec)
        if names:  # never in clear in the broker: sealed, or not sent at all
            try:
                key = self.ex.remote_key()
            except sealing.SealError as exc:
                return Outcome(OutcomeKind.FAILED_TO_START, None, f"{exc}; nothing was sent to queue {job.spec.remote_queue}")
            if key is None:
                return Outcome(OutcomeKind.FAILED_TO_START, None, (
                    f"the run carries secret values ({', '.join(names)}) and no remote key is configured: "
                    f"set {sealing.ENV_KEY} or make {sealing.KEY_FILE} (`prismq-desktop remote-key`) and copy it to "
                    f"every worker; nothing was sent to queue {job.spec.remote_queue}"))
            spec, payload["sealed"] = sealing.seal(spec, key)
        payload["spec"] = spec
        self.dispatch(job.on_remote, remote_id=self.rid)
        try:
            self.ex.submit(payload, job.spec.remote_queue, job.priority)
        except Exception as exc:  # noqa: BLE001 - any broker failure is one line
            return Outcome(OutcomeKind.FAILED_TO_START, None,
                           f"cannot reach the broker {mask_url(self.ex.url)}: {str(exc).splitlines()[0] if str(exc) else exc}")
        return None

    def _flush(self) -> None:
        try:
            chunks = self.job.capture.take_pending()
            if chunks:
                self.job.on_output(chunks)
        finally:
            self._taken.set()

    def _follow(self) -> Outcome:
        job, r = self.job, self.ex.redis
        stream = P.stream_key(self.rid)
        last = b"0-0"
        expected = 0
        trimmed = 0
        silent_since = time.monotonic()
        untaken = 0
        outcome: Outcome | None = None
        while outcome is None:
            if self.abandon.is_set():
                return Outcome(OutcomeKind.INTERRUPTED, None, "this app stopped following the run")
            block = max(50, int(self.heartbeat * 500))
            try:
                got = r.xread({stream: last}, count=self.READ_COUNT, block=block)
            except Exception as exc:  # noqa: BLE001 - the broker away: keep trying, it is not the worker's fault
                log.warning("run %s: reading its stream: %s", job.run_id, exc)
                time.sleep(min(1.0, self.heartbeat))
                continue
            now = time.monotonic()
            if not got:
                lost = self._lost(now - silent_since) or self._unclaimed(now)
                if lost is not None:
                    if lost.kind is OutcomeKind.FAILED_TO_START:
                        with contextlib.suppress(Exception):
                            r.delete(stream, P.control_key(self.rid))
                    return lost
                continue
            silent_since = now
            fed = 0
            for entry_id, fields in got[0][1]:
                last = entry_id
                kind, n, data = P.decode(fields)
                if n > expected:
                    trimmed += n - expected
                expected = max(expected, n + 1)
                if kind == P.OUT or kind == P.ERR:
                    job.capture.feed(Stream.STDOUT if kind == P.OUT else Stream.STDERR, data)
                    fed += len(data)
                elif kind == P.HEARTBEAT:
                    beat = P.decode_json(data)
                    if not beat.get("rss"):
                        continue  # before the process exists or after it exited (a zombie reads 0): no reading
                    with contextlib.suppress(TypeError, ValueError):
                        self.dispatch(job.on_sample, float(beat.get("cpu", 0.0)), int(beat.get("rss", 0)))
                elif kind == P.STATUS:
                    outcome = self._status(P.decode_json(data))
                    if outcome is not None:
                        break
            if fed:
                untaken += fed
                if untaken >= self.MAX_UNTAKEN:  # let the loop catch up before reading more
                    self._taken.clear()
                    self.dispatch(self._flush)
                    while not self._taken.wait(0.5) and not self.abandon.is_set():
                        pass
                    untaken = 0
                else:
                    self.dispatch(self._flush)
        if trimmed:
            note = f"{trimmed} stream entries of output were trimmed before this app read them"
            outcome = Outcome(outcome.kind, outcome.exit_code, f"{outcome.message}; {note}" if outcome.message else note)
        with contextlib.suppress(Exception):  # consumed: the stream has done its job
            r.delete(stream, P.control_key(self.rid))
        return outcome

    def _lost(self, silence: float) -> Outcome | None:
        """Two heartbeat intervals without a word from a worker that claimed the run: lost."""
        if self.host is None:
            if self.job.reattach_id is not None:
                try:
                    claimed = self.ex.redis.get(P.claim_key(self.rid))
                    exists = self.ex.redis.exists(P.stream_key(self.rid))
                except Exception:  # noqa: BLE001
                    return None
                if claimed is not None and not exists:
                    return Outcome(OutcomeKind.INTERRUPTED, None, "its stream is gone from the broker (expired or deleted)")
                if claimed is not None and silence > 2 * self.heartbeat:
                    return Outcome(OutcomeKind.INTERRUPTED, None,
                                   f"worker lost: no heartbeat from {claimed.decode(errors='replace')} for {silence:.1f}s")
            return None  # still waiting in the queue for a worker
        if silence > 2 * self.heartbeat:
            return Outcome(OutcomeKind.INTERRUPTED, None,
                           f"worker lost: no heartbeat from {self.host} for {silence:.1f}s")
        return None

    def _unclaimed(self, now: float) -> Outcome | None:
        """The claim timeout: no worker took the run while none could (see config.DEFAULT_CLAIM_TIMEOUT).

        The clock runs while no live worker serves the queue, or one does but the queue is empty
        (the message is gone); a run waiting behind others on a served queue is only waiting.
        At the timeout the submitter takes the start claim itself ("withdrawn"), so a worker
        started later drops the message instead of running it."""
        if self.host is not None or self.queue is None:
            return None
        timeout = self.ex.settings.claim_timeout
        if now < self._next_check:
            return None
        self._next_check = now + min(1.0, timeout / 4)
        r = self.ex.redis
        try:
            if r.exists(P.claim_key(self.rid)):
                return None  # a worker has it (its "claimed" entry is on its way), or it ended
            if self._served(r):
                self._unserved_since = None
                return None
        except Exception:  # noqa: BLE001 - the broker away: not the queue's fault, keep waiting
            return None
        if self._unserved_since is None:
            self._unserved_since = now
        waited = now - self._unserved_since
        if waited < timeout:
            return None
        try:
            if not r.set(P.claim_key(self.rid), P.WITHDRAWN_CLAIM, nx=True, ex=self.ex.settings.claim_ttl):
                return None  # a worker took it just now: follow it
        except Exception:  # noqa: BLE001
            return None
        return Outcome(OutcomeKind.FAILED_TO_START, None,
                       f"no worker took it from queue {self.queue} in {timeout:g} s (no live worker serves that queue); "
                       "it was withdrawn, so a worker started later will not run it")

    def _served(self, r: Any) -> bool:
        """Whether a live worker takes from the queue and the queue holds messages (ours among them)."""
        assert self.queue is not None
        now = time.time()
        live = False
        for host in r.smembers(P.WORKERS_SET):
            fields = r.hgetall(P.worker_key(host.decode(errors="replace")))
            try:
                queues = json.loads(fields.get(b"queues", b"[]"))
                last = float(fields.get(b"last", b"0"))
                hb = float(fields.get(b"heartbeat", b"2")) or 2.0
            except (TypeError, ValueError):
                continue
            if isinstance(queues, list) and self.queue in queues and now - last <= 2 * hb + 1:
                live = True
                break
        if not live:
            return False
        pipe = r.pipeline(transaction=False)
        for key in P.queue_keys(self.queue):
            pipe.llen(key)
        return sum(int(n or 0) for n in pipe.execute()) > 0

    def _status(self, ev: dict[str, Any]) -> Outcome | None:
        job = self.job
        event = ev.get("event")
        if event in ("claimed", "started"):
            self.host = str(ev.get("host") or "?")
            with contextlib.suppress(TypeError, ValueError):
                self.heartbeat = float(ev.get("heartbeat") or self.heartbeat)
        if event == "claimed":
            self.dispatch(job.on_remote, worker_host=self.host)
        elif event == "started":
            fields: dict[str, Any] = {"worker_host": self.host}
            if isinstance(ev.get("argv"), list):
                fields["argv"] = tuple(str(a) for a in ev["argv"])
            if isinstance(ev.get("cwd"), str):
                fields["cwd"] = ev["cwd"]
            self.dispatch(job.on_remote, **fields)
            pid = ev.get("pid")
            created = ev.get("create_time")
            self.dispatch(job.on_started, int(pid) if isinstance(pid, int) else 0,
                          float(created) if isinstance(created, (int, float)) else None)
        elif event == "failed_to_start":
            return Outcome(OutcomeKind.FAILED_TO_START, None, str(ev.get("message") or "failed to start on the worker"))
        elif event == "end":
            try:
                kind = OutcomeKind(str(ev.get("outcome")))
            except ValueError:
                kind = OutcomeKind.FAILED
            code = ev.get("exit_code")
            message = ev.get("message")
            if isinstance(ev.get("result"), str):
                job.remote_result = ev["result"]  # a function's report: the engine stores it as a local one
            return Outcome(kind, int(code) if isinstance(code, int) else None, str(message) if message else None)
        return None
