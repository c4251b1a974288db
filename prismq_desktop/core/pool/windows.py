"""The pool on Windows (written from the Win32 and CPython docs; cannot run on the POSIX CI).

A worker is a long-lived Python (winworker.py) that runs one script at a time with runpy, its
control channel on its stdin/stdout pipes; the run's output pipes are handed over as duplicated
handles. A run's process *is* the worker, so stopping a run kills the worker and the pool
replaces it (`WinTree`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import psutil

from prismq_desktop.core.pool import forkserver
from prismq_desktop.core.pool.workers import Worker, WorkerSettings
from prismq_desktop.core.process.tree import IS_WINDOWS, ProcessTree


class WinTree(ProcessTree):  # pragma: no cover - Windows only
    """A pooled run on Windows: the worker is the run's process; no Job Object of its own.

    (Closing a kill-on-close job after the run would kill the worker; `kill` kills it on
    purpose, and the pool replaces it.) Leftovers are whatever the worker started that still runs.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._job = None
        self.stopped = 0
        try:
            self._root = psutil.Process(pid)
            self.create_time = self._root.create_time()
        except psutil.Error:
            self._root = None
            self.create_time = None

    def kill_leftovers(self) -> bool:
        kids = self.descendants()
        for proc in kids:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        return bool(kids)


class WinWorker(Worker):  # pragma: no cover - Windows only
    """Windows: winworker.py with its control channel on its stdin/stdout pipes."""

    def __init__(
        self,
        settings: WorkerSettings,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[Worker, dict[str, Any], float], None],
        on_eof: Callable[[Worker], None],
    ) -> None:
        super().__init__(settings, loop, on_message, on_eof)
        self._job_handle: int | None = None
        self._send_lock = threading.Lock()

    def start(self) -> None:
        from prismq_desktop.core.pool import winworker as poolworker

        flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200) | getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000)
        self.proc = subprocess.Popen(
            poolworker.command(self.settings.python, self.settings.preload),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.settings.worker_env,
            cwd=os.path.abspath(os.sep),
            creationflags=flags,
            bufsize=0,
        )
        self.pid = self.proc.pid
        if IS_WINDOWS:  # the worker dies with the app (kill-on-close job), like every run
            from prismq_desktop.core.process import winjob

            self._job_handle = winjob.assign_new_job(self.pid)
        self._start_reader()

    def send_run(self, request: dict[str, Any], fds: tuple[int, int]) -> None:
        if sys.platform != "win32":
            raise OSError("Windows only")
        import _winapi
        import msvcrt

        assert self.proc is not None and self.proc.stdin is not None
        target = int(getattr(self.proc, "_handle"))  # noqa: B009 - private to Popen, no stub
        me = _winapi.GetCurrentProcess()
        request = dict(request)
        request["handles"] = [
            _winapi.DuplicateHandle(me, msvcrt.get_osfhandle(fd), target, 0, False, _winapi.DUPLICATE_SAME_ACCESS)
            for fd in fds
        ]
        with self._send_lock:
            self.proc.stdin.write(forkserver.encode(request))
            self.proc.stdin.flush()

    def close_channel(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def make_tree(self, pid: int) -> ProcessTree:
        return WinTree(pid)

    def _read_channel(self) -> Iterable[dict[str, Any]]:
        assert self.proc is not None and self.proc.stdout is not None
        decoder = forkserver.Decoder()
        fd = self.proc.stdout.fileno()
        while True:
            data = os.read(fd, 256 * 1024)
            if not data:
                return
            yield from decoder.feed(data)

    def release_job(self) -> None:
        if self._job_handle is not None and IS_WINDOWS:
            from prismq_desktop.core.process import winjob

            winjob.close_job(self._job_handle)
            self._job_handle = None
