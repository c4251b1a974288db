"""Containment: every process a run starts stops with it, however it tries to get away.

Each trial starts `scripts/contain.py` with one way of escaping (grandchildren, SIGTERM
ignorers, setsid() escapers, double-fork daemons, writers blocked on a full pipe) and stops
it one way (API cancel, timeout, engine shutdown; CLI --timeout, SIGINT to the CLI) in one
mode (async, threaded, local). When the run (or the CLI) has returned, the whole system is
searched with psutil for a live process carrying the trial's own environment tag - not only
this process's descendants - and every one found is a survivor.

``PRISMQ_CONTAINMENT_TRIALS`` sets the number of trials (default 100, spread over every
combination; four run at a time).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from prismq_desktop.core import RunEngine, RunMode, RunSpec

# POSIX-only: setsid escapers, double forks and the Linux child subreaper (Windows: Job Objects, test_windows.py)
pytestmark = pytest.mark.posix_only

TRIALS = int(os.environ.get("PRISMQ_CONTAINMENT_TRIALS", "100"))
SCRIPT = Path(__file__).parents[2] / "scripts" / "contain.py"
KINDS = ("grandchild", "ignorer", "setsid", "daemon", "blocked")
WAYS = (
    ("api", "async", "cancel"),
    ("api", "async", "timeout"),
    ("api", "async", "shutdown"),
    ("api", "threaded", "cancel"),
    ("api", "threaded", "timeout"),
    ("api", "threaded", "shutdown"),
    ("api", "local", "cancel"),
    ("api", "local", "timeout"),
    ("cli", "async", "timeout"),
    ("cli", "async", "sigint"),
    ("cli", "threaded", "timeout"),
    ("cli", "threaded", "sigint"),
    ("cli", "local", "timeout"),
    ("cli", "local", "sigint"),
)
GRACE = 0.3
TIMEOUT = 1.5  # soft timeout: long enough for every descendant to be in place first
TAG = "CONTAIN_TRIAL"


def tagged(tag: str) -> list[psutil.Process]:
    """Every live (non-zombie) process on the system whose environment carries `tag`."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(TAG) == tag and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def wait_ready(path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"the run never got ready ({path})")
        time.sleep(0.01)


def spec_for(kind: str, tag: str, ready: Path, timeout: float | None) -> RunSpec:
    return RunSpec(
        target=str(SCRIPT),
        args=(kind,),
        interpreter=sys.executable,
        env={TAG: tag, "CONTAIN_READY": str(ready)},
        soft_timeout=timeout,
        grace_period=GRACE,
    )


def api_async(home: Path, mode: str, stop: str, spec: RunSpec, ready: Path) -> None:
    async def go() -> None:
        engine = RunEngine(home, mode=mode, monitor_interval=60)
        try:
            handle = await engine.start(spec, mode=mode)
            if stop != "timeout":
                await asyncio.to_thread(wait_ready, ready)
            if stop == "cancel":
                engine.cancel(handle.id)
                await handle.wait()
            elif stop == "shutdown":
                await engine.shutdown()
            else:
                await handle.wait()
        finally:
            await engine.shutdown()

    asyncio.run(go())


def api_local(home: Path, stop: str, spec: RunSpec, ready: Path) -> None:
    engine = RunEngine(home, mode=RunMode.LOCAL, monitor_interval=60)
    canceller: list[threading.Thread] = []

    def started(handle) -> None:  # noqa: ANN001
        if stop == "cancel":
            def cancel() -> None:
                wait_ready(ready)
                engine.cancel(handle.id)

            canceller.append(threading.Thread(target=cancel, daemon=True))
            canceller[0].start()

    try:
        engine.run_blocking(spec, mode=RunMode.LOCAL, on_started=started)
    finally:
        engine.close()
        for t in canceller:
            t.join(15)


def cli(home: Path, mode: str, stop: str, kind: str, tag: str, ready: Path, grace: float = GRACE,
        timeout: float = TIMEOUT) -> None:
    argv = [sys.executable, "-m", "prismq_desktop", "--data-dir", str(home), "run", "--mode", mode,
            "--grace", str(grace), "--env", f"{TAG}={tag}", "--env", f"CONTAIN_READY={ready}"]
    if stop == "timeout":
        argv += ["--timeout", str(timeout)]
    argv += ["--python", sys.executable, str(SCRIPT), kind]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if stop == "sigint":
            wait_ready(ready)
            proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def trial(index: int, tmp: Path) -> tuple[tuple[str, str, str], str, list[str]]:
    way = WAYS[(index // len(KINDS)) % len(WAYS)]
    kind = KINDS[index % len(KINDS)]
    where, mode, stop = way
    tag = uuid.uuid4().hex
    home = tmp / f"t{index}"
    home.mkdir()
    ready = home / "ready"
    timeout = TIMEOUT if stop == "timeout" else None
    if where == "cli":
        cli(home, mode, stop, kind, tag, ready)
    elif mode == "local":
        api_local(home, stop, spec_for(kind, tag, ready, timeout), ready)
    else:
        api_async(home, mode, stop, spec_for(kind, tag, ready, timeout), ready)
    survivors = tagged(tag)  # at once: stopping is over when the run (or the CLI) returns
    names = []
    for proc in survivors:
        with contextlib.suppress(psutil.Error):
            names.append(f"{proc.pid} {' '.join(proc.cmdline())}")
            proc.kill()
    return way, kind, names


def test_nothing_a_run_starts_outlives_it(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: trial(i, tmp_path), range(TRIALS)))
    table: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for way, kind, names in results:
        for key in ("/".join(way), kind, "all"):
            table[key][0] += 1
            table[key][1] += len(names)
    print("\ncontainment trials (trials, survivors):")
    for key, (n, s) in table.items():
        print(f"  {key:22} {n:4} {s:4}")
    leaks = [(way, kind, names) for way, kind, names in results if names]
    assert not leaks, f"{len(leaks)} of {TRIALS} trials left processes running: {leaks[:5]}"


@pytest.mark.parametrize("stop", ["timeout", "sigint"])
def test_local_cli_finishes_the_stop_before_it_returns(tmp_path: Path, stop: str) -> None:
    """LOCAL mode: a setsid() escaper ignoring SIGTERM outlasts the root and the pipe linger;
    the CLI still returns only once the grace is over and the escaper is killed."""
    tag = uuid.uuid4().hex
    ready = tmp_path / "ready"
    started = time.monotonic()
    cli(tmp_path, "local", stop, "stubborn", tag, ready, grace=3.0, timeout=1.0)
    survivors = tagged(tag)
    for proc in survivors:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    assert not survivors, [p.pid for p in survivors]
    assert time.monotonic() - started >= 3.0  # the grace was waited out, not cut short by the exit


def test_local_run_returns_only_after_its_stop(tmp_path: Path) -> None:
    """LOCAL mode through the API: the graceful stop's grace and final kill are over when
    `run_blocking` returns (they used to go on in a daemon thread)."""
    tag = uuid.uuid4().hex
    ready = tmp_path / "ready"
    spec = dataclasses.replace(spec_for("stubborn", tag, ready, 0.8), grace_period=2.5)
    api_local(tmp_path, "timeout", spec, ready)
    survivors = tagged(tag)
    for proc in survivors:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    assert not survivors, [p.pid for p in survivors]
