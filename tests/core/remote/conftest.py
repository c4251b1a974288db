"""A real redis-server (password, free port on 127.0.0.1) and real `prismq-desktop worker` processes.

Nothing is mocked. If redis-server is not installed the tests FAIL (never skip): `.ci/run`
installs the Debian package. Heartbeats are 0.5 s here (PRISMQ_REMOTE_HEARTBEAT) so "two
heartbeat intervals" is fast to test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

HEARTBEAT = 0.5
PASSWORD = "t3st-" + uuid.uuid4().hex[:12]
#: the remote key the shared worker holds (PRISMQ_REMOTE_KEY); submitters get it as a remote.key file
REMOTE_KEY = __import__("cryptography.fernet", fromlist=["Fernet"]).Fernet.generate_key()
CLI = [sys.executable, "-m", "prismq_desktop.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: the remote tests need a real one "
                    "(apt-get install -y redis-server; .ci/run does it)", pytrace=False)
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
                             "--save", "", "--appendonly", "no", "--dir", str(workdir), "--protected-mode", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"redis-server did not start on port {port}", pytrace=False)
            time.sleep(0.05)
    client.close()
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def rclient(redis_url: str):  # type: ignore[no-untyped-def]
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def remote_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PRISMQ_BROKER_URL=redis_url, PRISMQ_REMOTE_HEARTBEAT=str(HEARTBEAT), **extra)
    env.pop("PRISMQ_RUN_MODE", None)
    return env


class Worker:
    """One `prismq-desktop worker` subprocess."""

    def __init__(self, redis_url: str, queue: str, hostname: str, concurrency: int, home: Path,
                 env: dict[str, str] | None = None) -> None:
        self.queue, self.hostname = queue, hostname
        self.log = home / f"worker-{hostname}.log"
        self.proc = subprocess.Popen(
            [*CLI, "--data-dir", str(home / "worker-data"), "worker", "--queue", queue, "--hostname", hostname,
             "--concurrency", str(concurrency), "--loglevel", "INFO"],
            env={**remote_env(redis_url), **(env or {})}, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        import redis

        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 30
        try:
            while not self.ready(client):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"worker {hostname} did not start:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.1)
        finally:
            client.close()

    def ready(self, client) -> bool:  # type: ignore[no-untyped-def]
        return bool(client.exists(f"prismq:worker:{self.hostname}")) and b"ready" in self.log.read_bytes()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def shared_worker(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One worker (concurrency 4) on queue `shared` for the tests that do not kill theirs."""
    w = Worker(redis_url, "shared", "shared-worker", 4, tmp_path_factory.mktemp("shared-worker"),
               env={"PRISMQ_REMOTE_KEY": REMOTE_KEY.decode()})
    try:
        yield w
    finally:
        w.stop()
        assert w.proc.returncode is not None


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Start workers of one test (stopped at its end; their trees are checked by the leftover check)."""
    made: list[Worker] = []

    def start(queue: str, hostname: str | None = None, concurrency: int = 1, env: dict[str, str] | None = None) -> Worker:
        w = Worker(redis_url, queue, hostname or f"w-{uuid.uuid4().hex[:8]}", concurrency, tmp_path, env)
        made.append(w)
        return w

    yield start
    for w in made:
        w.stop()


def run_cli(redis_url: str, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess[bytes]:  # type: ignore[no-untyped-def]
    return subprocess.run([*CLI, *args], env=remote_env(redis_url), capture_output=True, timeout=timeout, **kw)


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step)


def kill_tree(pid: int) -> None:
    with contextlib.suppress(psutil.Error):
        for p in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                p.kill()


def give_key(home: Path, key: bytes = REMOTE_KEY) -> Path:
    """A submitter's data dir holding `key` as remote.key (0600), as `prismq-desktop remote-key` makes it."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "remote.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, key + b"\n")
    os.close(fd)
    return path


class Monitor:
    """Every command Redis executes, raw (a MONITOR connection of its own, read on a thread)."""

    def __init__(self, redis_url: str) -> None:
        import threading
        import urllib.parse

        parts = urllib.parse.urlsplit(redis_url)
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=10)
        self.sock.sendall(f"AUTH {parts.password}\r\nMONITOR\r\n".encode())
        self.data = bytearray()
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        wait_for(lambda: self.data.count(b"+OK") >= 2, timeout=5)

    def _read(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                got = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return
            if not got:
                return
            self.data += got

    def stop(self) -> bytes:
        time.sleep(0.3)  # what Redis executed last is on its way
        self._stop = True
        self._thread.join(5)
        self.sock.close()
        return bytes(self.data)


def contains(blob: bytes, needle: bytes, depth: int = 2) -> bool:
    """`needle` in `blob` in clear, or inside any base64 run of it (Celery's message body is base64 JSON)."""
    import base64
    import re

    if needle in blob:
        return True
    if depth == 0:
        return False
    for run in re.findall(rb"[A-Za-z0-9+/]{16,}={0,2}", blob):
        for cut in (run, run[: len(run) - len(run) % 4]):
            try:
                decoded = base64.b64decode(cut + b"=" * (-len(cut) % 4))
            except ValueError:
                continue
            if contains(decoded, needle, depth - 1):
                return True
    return False


def broker_dump(client) -> bytes:  # type: ignore[no-untyped-def]
    """Everything Redis holds now: every key's DUMP, and every stream's entries and list's items."""
    out = bytearray()
    for key in client.scan_iter(count=1000):
        out += key + b"\n" + (client.dump(key) or b"") + b"\n"
        kind = client.type(key)
        if kind == b"stream":
            for _id, fields in client.xrange(key):
                out += b"".join(k + b"=" + v for k, v in fields.items())
        elif kind == b"list":
            out += b"".join(client.lrange(key, 0, -1))
        elif kind == b"string":
            out += client.get(key) or b""
        elif kind == b"hash":
            out += b"".join(k + b"=" + v for k, v in client.hgetall(key).items())
    return bytes(out)
