"""The pool on Windows (written from the Win32 and CPython docs; run by the Windows CI job only).

A worker is a long-lived Python (winworker.py) that runs one script at a time with runpy, its
control channel on its stdin/stdout pipes; the run's output pipes are handed over as duplicated
handles. A run's process *is* the worker, so stopping a run kills the worker and the pool
replaces it (`WinTree`).

In a venv, `sys.executable` is the venv launcher, which starts the base python.exe as a child
(docs.python.org/3/library/venv.html, "How venvs work": on Windows the venv's python.exe is a
redirector). Handles duplicated into the launcher would be in the wrong process, so (1) like
multiprocessing (Lib/multiprocessing/popen_spawn_win32.py, bpo-35797) a worker for this app's own
interpreter is started from `sys._base_executable` with `__PYVENV_LAUNCHER__` = the venv's
python.exe, and (2) whatever was started, the handles go to the pid the worker itself reports in
its "ready" message (DuplicateHandle: the target needs PROCESS_DUP_HANDLE; learn.microsoft.com,
DuplicateHandle). The worker starts suspended and joins its kill-on-close job before it runs
(winjob.contain), so a launcher's child is in the job too.
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
from prismq_desktop.core.process.tree import IS_WINDOWS, ProcessTree, windows_creationflags

PROCESS_DUP_HANDLE = 0x0040  # learn.microsoft.com, "Process Security and Access Rights"


def _path_eq(a: str, b: str) -> bool:
    return a == b or os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def worker_interpreter(python: str, env: dict[str, str], executable: str | None = None,
                       base: str | None = None) -> tuple[str, dict[str, str]]:
    """The program and environment that start a worker for `python`.

    When `python` is this app's own venv interpreter (`executable` differs from `base`, the
    interpreter the venv was made from), start `base` with ``__PYVENV_LAUNCHER__`` set to it, as
    multiprocessing does on Windows (popen_spawn_win32.py, bpo-35797): no launcher process in
    between, and the venv's site-packages still apply. Anything else is started as given.
    """
    executable = executable if executable is not None else sys.executable
    base = base if base is not None else getattr(sys, "_base_executable", executable)
    if _path_eq(python, executable) and not _path_eq(executable, base):
        return base, {**env, "__PYVENV_LAUNCHER__": executable}
    return python, env


class WinTree(ProcessTree):  # pragma: no cover - Windows only
    """A pooled run on Windows: the worker is the run's process; no Job Object of its own.

    (Closing a kill-on-close job after the run would kill the worker; `kill` kills it on
    purpose, and the pool replaces it.) Leftovers are whatever the worker started that still runs.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tag: str | None = None  # read by Supervisor.attach (it was missing: AttributeError on every pooled run)
        self._job = None
        self.stopped = 0
        try:
            self._root = psutil.Process(pid)
            self.create_time = self._root.create_time()
        except psutil.Error:
            self._root = None
            self.create_time = None

    def nothing_left(self) -> bool:
        return not self.descendants()  # the worker itself lives on: only what the run started counts

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
        #: the pid of the Python that serves runs (its "ready" message): not the launcher's
        self.server_pid: int | None = None

    def start(self) -> None:
        from prismq_desktop.core.pool import winworker as poolworker

        python, env = worker_interpreter(self.settings.python, self.settings.worker_env)
        self.proc = subprocess.Popen(
            poolworker.command(python, self.settings.preload),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=os.path.abspath(os.sep),
            creationflags=windows_creationflags(),  # suspended until it is in its job
            bufsize=0,
        )
        self.pid = self.proc.pid
        if IS_WINDOWS:  # the worker dies with the app (kill-on-close job), like every run
            from prismq_desktop.core.process import winjob

            self._job_handle = winjob.contain(self.pid)
        self._start_reader()

    def send_run(self, request: dict[str, Any], fds: tuple[int, int]) -> None:
        if sys.platform != "win32":
            raise OSError("Windows only")
        import _winapi
        import msvcrt

        assert self.proc is not None and self.proc.stdin is not None
        if self.server_pid is None:
            raise OSError("the pool worker has not said which process it is")
        target = _winapi.OpenProcess(PROCESS_DUP_HANDLE, False, self.server_pid)
        try:
            me = _winapi.GetCurrentProcess()
            request = dict(request)
            request["handles"] = [
                _winapi.DuplicateHandle(me, msvcrt.get_osfhandle(fd), target, 0, False, _winapi.DUPLICATE_SAME_ACCESS)
                for fd in fds
            ]
        finally:
            _winapi.CloseHandle(target)
        with self._send_lock:
            self.proc.stdin.write(forkserver.encode(request))
            self.proc.stdin.flush()

    def close_channel(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def make_tree(self, pid: int, ticks: int | None = None) -> ProcessTree:
        return WinTree(pid)  # (ticks are a Linux fork server's)

    def _read_channel(self) -> Iterable[dict[str, Any]]:
        assert self.proc is not None and self.proc.stdout is not None
        decoder = forkserver.Decoder()
        fd = self.proc.stdout.fileno()
        while True:
            data = os.read(fd, 256 * 1024)
            if not data:
                return
            for msg in decoder.feed(data):
                if msg.get("t") == "ready" and isinstance(msg.get("pid"), int):
                    self.server_pid = msg["pid"]  # set before the pool hears "ready" and sends a run
                yield msg

    def release_job(self) -> None:
        if self._job_handle is not None and IS_WINDOWS:
            from prismq_desktop.core.process import winjob

            winjob.close_job(self._job_handle)
            self._job_handle = None
