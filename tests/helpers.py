"""Small helpers shared by tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll until predicate() is truthy; returns its value or raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


def pid_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class FakeTimer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock for the orchestrator's queue that moves only when a test calls advance().

    Starts at the real time (so stored timestamps look sane) and never moves by itself:
    a retry backoff of an hour is tested without waiting an hour or sleeping at all.
    """

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(when, callback)
        self.timers.append(timer)
        return timer

    @property
    def pending(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]

    def advance(self, seconds: float) -> None:
        """Move time on and fire every timer that came due, in time order."""
        self.now += seconds
        while True:
            due = sorted((t for t in self.pending if t.when <= self.now), key=lambda t: t.when)
            if not due:
                return
            self.timers.remove(due[0])
            due[0].callback()


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of `size` mounted at `where` (needs root, as in CI); the test is skipped,
    saying why, only when it cannot be mounted. Unmounted afterwards."""
    import pytest

    where.mkdir(exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


class LockHolder:
    """A real second process holding the registry's write lock (`BEGIN EXCLUSIVE`) until `release()`.

    `later=True` starts it without the lock: `lock()` takes it at the exact moment a test
    wants (e.g. from a bus callback between two writes), and it can be taken again after a
    release. `pid` is the holder's, as the "locked by another process (pid N)" line names it.
    """

    def __init__(self, db: Path, scripts: Path, *, later: bool = False) -> None:
        self.proc = subprocess.Popen([sys.executable, str(scripts / "lock_holder.py"), str(db), *(["--later"] if later else [])],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.locked = False
        self.released_at: float | None = None
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if later:
            assert line.strip() == "waiting", line
        else:
            assert line.strip() == "locked", line
            self.locked = True

    def _say(self, expect: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line.strip() == expect, line

    def lock(self) -> None:
        assert not self.locked
        self._say("locked")
        self.locked = True

    def release(self) -> None:
        assert self.locked
        self._say("released")
        self.locked = False
        self.released_at = time.time()
        if "--later" not in self.proc.args:
            self.proc.wait(10)

    def close(self) -> None:
        for f in (self.proc.stdin,):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
PR_CAPBSET_DROP = 24
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def drop_file_override() -> None:
    """preexec_fn: the child (still root) loses CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so file
    modes bind it like anyone else (a mode-000 file is unreadable). They are dropped from the
    bounding set (so the exec cannot give them back) and from the inheritable set; exits 97 if
    the kernel refuses, which the caller sees as a failure, never as a skip. Linux only."""
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            os._exit(97)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = Header(_LINUX_CAPABILITY_VERSION_3, 0), (Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        os._exit(97)
    keep = ~((1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH)) & 0xFFFFFFFF
    data[0].inheritable &= keep
    if libc.capset(ctypes.byref(header), data) != 0:
        os._exit(97)


def as_an_ordinary_reader() -> dict[str, object]:
    """subprocess keyword arguments for a child that file permissions really bind: nothing for a
    normal user; as root (CI), root without the capabilities that override file modes."""
    import os

    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return {}
    if not sys.platform.startswith("linux"):
        raise RuntimeError("running the tests as root needs Linux (capabilities) to test unreadable files")
    return {"preexec_fn": drop_file_override}
