"""Control of a run's whole process tree: stop, kill, pause and resume.

POSIX: every run starts in a session (and so a process group) of its own. Stopping sends
SIGTERM to the group, waits a grace period, sends SIGKILL to the group, then kills every
descendant snapshotted *before* the first signal - which catches children that left the
group with setsid(). Windows: every run is put in a Job Object that kills its members
when the job closes; stopping terminates the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import psutil

IS_WINDOWS = sys.platform == "win32"
POLL = 0.02


def popen_kwargs() -> dict[str, object]:
    """Keyword arguments that give a new process its own group/session (and no console)."""
    if IS_WINDOWS:
        flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200) | getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000)
        return {"creationflags": flags}
    return {"start_new_session": True}


class ProcessTree:
    """The process tree rooted at one started child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._job = None
        self.stopped = 0  # how many live processes the last stop sequence found (for "tree of N stopped")
        try:
            self._root: psutil.Process | None = psutil.Process(pid)
            self.create_time: float | None = self._root.create_time()
        except psutil.Error:
            self._root = None
            self.create_time = None
        if IS_WINDOWS:
            from prismq_desktop.core.process import winjob

            self._job = winjob.assign_new_job(pid)

    # -- inspection
    def descendants(self) -> list[psutil.Process]:
        if self._root is None:
            return []
        try:
            kids: list[psutil.Process] = self._root.children(recursive=True)
            return kids
        except psutil.Error:
            return []

    def snapshot(self) -> list[psutil.Process]:
        procs = self.descendants()
        if self._root is not None:
            procs.insert(0, self._root)
        return procs

    def group_alive(self) -> bool:
        """Does any process of the run's group still exist (POSIX), or the job (Windows)?"""
        if IS_WINDOWS:
            return any(_alive(p) for p in self.snapshot())
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    # -- signals
    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def terminate(self) -> None:
        """Ask the whole tree to stop (SIGTERM; on Windows there is no gentle ask: terminate)."""
        if IS_WINDOWS:
            self.kill()
            return
        self._signal_group(signal.SIGTERM)
        self._signal_group(signal.SIGCONT)  # a paused group cannot act on SIGTERM

    def kill(self, snapshot: list[psutil.Process] | None = None) -> None:
        """Kill the tree now: the group (or job), then every snapshotted descendant."""
        if IS_WINDOWS and self._job is not None:
            from prismq_desktop.core.process import winjob

            winjob.terminate_job(self._job)
        elif not IS_WINDOWS:
            self._signal_group(signal.SIGKILL)
        for proc in (snapshot or []) + self.descendants():
            with contextlib.suppress(psutil.Error):
                proc.kill()

    def suspend(self) -> None:
        if IS_WINDOWS:
            for proc in self.snapshot():
                with contextlib.suppress(psutil.Error):
                    proc.suspend()
        else:
            self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        if IS_WINDOWS:
            for proc in self.snapshot():
                with contextlib.suppress(psutil.Error):
                    proc.resume()
        else:
            self._signal_group(signal.SIGCONT)

    def close(self) -> None:
        if self._job is not None:
            from prismq_desktop.core.process import winjob

            winjob.close_job(self._job)
            self._job = None

    # -- whole stop sequences
    def _begin_stop(self, graceful: bool) -> tuple[list[psutil.Process], bool]:
        snap = self.snapshot()
        self.stopped = max(self.stopped, len([p for p in snap if _alive(p)]))
        if graceful and not IS_WINDOWS:
            self.terminate()
            return snap, True
        self.kill(snap)
        return snap, False

    @staticmethod
    def _leftovers(snap: list[psutil.Process]) -> bool:
        # Zombies do not count: they are dead, only not yet reaped by their new parent.
        return any(_alive(p) for p in snap)

    async def stop(self, grace: float, graceful: bool = True) -> None:
        """Graceful stop on the running loop: TERM, wait up to `grace`, then KILL.

        The process-table scans (a few ms each, more on a busy desktop) run in a worker
        thread so the loop - and the window on it - never waits for them.
        """
        snap, waiting = await asyncio.to_thread(self._begin_stop, graceful)
        deadline = time.monotonic() + grace
        while waiting and time.monotonic() < deadline and self._leftovers(snap):
            await asyncio.sleep(POLL)
        await asyncio.to_thread(self.kill, snap)

    def stop_blocking(self, grace: float, graceful: bool = True, sleep: Callable[[float], None] = time.sleep) -> None:
        """The same stop sequence for callers without an event loop."""
        snap, waiting = self._begin_stop(graceful)
        deadline = time.monotonic() + grace
        while waiting and time.monotonic() < deadline and self._leftovers(snap):
            sleep(POLL)
        self.kill(snap)

    def kill_leftovers(self) -> bool:
        """After the root exited: kill what it left behind in its group (or job). True if there was any.

        Cheap on purpose (one killpg probe, no process-table scan): it runs at every run's end.
        """
        if IS_WINDOWS:
            if self._job is None:
                return False
            from prismq_desktop.core.process import winjob

            winjob.terminate_job(self._job)
            return True
        if not self.group_alive():
            return False
        self._signal_group(signal.SIGKILL)
        return True


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def kill_orphan(pid: int, create_time: float | None) -> bool:
    """Kill a run's tree left behind by a dead app (pid checked against its start time)."""
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 0.01:
            return False
    except psutil.Error:
        return False
    tree = ProcessTree.__new__(ProcessTree)
    tree.pid = pid
    tree._job = None
    tree._root = proc
    tree.create_time = create_time
    tree.stopped = 0
    tree.stop_blocking(grace=1.0)
    return True
