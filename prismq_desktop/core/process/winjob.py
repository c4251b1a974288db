"""Windows Job Objects through ctypes: one job per run, killed as a whole.

The job is created with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, so if the app dies its runs
die with it, and `terminate_job` ends every process the run started, however deep.
Breakaway is never allowed: neither JOB_OBJECT_LIMIT_BREAKAWAY_OK (which would let a child
created with CREATE_BREAKAWAY_FROM_JOB leave) nor JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK (which
would put every child outside the job) is set - `job_limit_flags` is the only place the flags
are chosen, and it refuses both. A process that double-forks on Windows (starts a detached
child and exits) stays in the job, so it is stopped with the run.

No race with the child's own children: a run is started with CREATE_SUSPENDED (tree.popen_kwargs),
assigned here, checked with IsProcessInJob, and only then resumed (`contain`): until it runs it
can start nothing, and once it is in the job "all processes it creates are associated with that
job by default" (learn.microsoft.com, AssignProcessToJobObject, Remarks; the suspended-start
pattern is Richter, "Windows via C/C++", ch. 5 "Placing a Process in a Job"). So the venv
launcher's own python.exe child is in the job too.
Members are listed with QueryInformationJobObject(JobObjectBasicProcessIdList) and counted with
JobObjectBasicAccountingInformation.ActiveProcesses (learn.microsoft.com, QueryInformationJobObject).
A failure is logged (never a silent None); the psutil sweep in ProcessTree.kill stays as a backstop.
Imported only on Windows.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
from ctypes import wintypes
from typing import Any

import psutil

if sys.platform != "win32":  # pragma: no cover - keeps mypy and linters honest elsewhere
    raise ImportError("winjob is Windows-only")

_kernel32: Any = ctypes.WinDLL("kernel32", use_last_error=True)
log = logging.getLogger(__name__)

JobObjectBasicAccountingInformation = 1
JobObjectBasicProcessIdList = 3
JobObjectExtendedLimitInformation = 9
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000
JOB_OBJECT_LIMIT_BREAKAWAY_OK = 0x0800
JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK = 0x1000
PROCESS_SET_QUOTA = 0x0100
PROCESS_TERMINATE = 0x0001


class IO_COUNTERS(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "ReadOperationCount", "WriteOperationCount", "OtherOperationCount",
        "ReadTransferCount", "WriteTransferCount", "OtherTransferCount")]


class JOBOBJECT_BASIC_LIMIT_INFORMATION(ctypes.Structure):
    _fields_ = [
        ("PerProcessUserTimeLimit", ctypes.c_int64),
        ("PerJobUserTimeLimit", ctypes.c_int64),
        ("LimitFlags", wintypes.DWORD),
        ("MinimumWorkingSetSize", ctypes.c_size_t),
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", wintypes.DWORD),
        ("Affinity", ctypes.c_size_t),
        ("PriorityClass", wintypes.DWORD),
        ("SchedulingClass", wintypes.DWORD),
    ]


class JOBOBJECT_EXTENDED_LIMIT_INFORMATION(ctypes.Structure):
    _fields_ = [
        ("BasicLimitInformation", JOBOBJECT_BASIC_LIMIT_INFORMATION),
        ("IoInfo", IO_COUNTERS),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


_kernel32.CreateJobObjectW.restype = wintypes.HANDLE
_kernel32.CreateJobObjectW.argtypes = [ctypes.c_void_p, wintypes.LPCWSTR]
_kernel32.SetInformationJobObject.argtypes = [wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p, wintypes.DWORD]
_kernel32.AssignProcessToJobObject.argtypes = [wintypes.HANDLE, wintypes.HANDLE]
_kernel32.OpenProcess.restype = wintypes.HANDLE
_kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
_kernel32.TerminateJobObject.argtypes = [wintypes.HANDLE, wintypes.UINT]
_kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
_kernel32.IsProcessInJob.argtypes = [wintypes.HANDLE, wintypes.HANDLE, ctypes.POINTER(wintypes.BOOL)]
_kernel32.QueryInformationJobObject.argtypes = [wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p, wintypes.DWORD,
                                                ctypes.POINTER(wintypes.DWORD)]


class JOBOBJECT_BASIC_ACCOUNTING_INFORMATION(ctypes.Structure):
    _fields_ = [
        ("TotalUserTime", ctypes.c_int64),
        ("TotalKernelTime", ctypes.c_int64),
        ("ThisPeriodTotalUserTime", ctypes.c_int64),
        ("ThisPeriodTotalKernelTime", ctypes.c_int64),
        ("TotalPageFaultCount", wintypes.DWORD),
        ("TotalProcesses", wintypes.DWORD),
        ("ActiveProcesses", wintypes.DWORD),
        ("TotalTerminatedProcesses", wintypes.DWORD),
    ]


def _check(ok: Any, what: str) -> None:
    if not ok:
        raise OSError(ctypes.get_last_error(), f"{what} failed")


def job_limit_flags() -> int:
    """The limit flags of every run's job: kill on close, and no way out of the job."""
    flags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    assert not flags & (JOB_OBJECT_LIMIT_BREAKAWAY_OK | JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK)
    return flags


def assign_new_job(pid: int) -> int | None:
    """Create a kill-on-close job and put `pid` in it; None (logged) if Windows refuses."""
    job = _kernel32.CreateJobObjectW(None, None)
    if not job:
        log.warning("no Job Object for pid %s: CreateJobObjectW failed (error %s)", pid, ctypes.get_last_error())
        return None
    info = JOBOBJECT_EXTENDED_LIMIT_INFORMATION()
    info.BasicLimitInformation.LimitFlags = job_limit_flags()
    try:
        _check(
            _kernel32.SetInformationJobObject(job, JobObjectExtendedLimitInformation, ctypes.byref(info), ctypes.sizeof(info)),
            "SetInformationJobObject",
        )
        proc = _kernel32.OpenProcess(PROCESS_SET_QUOTA | PROCESS_TERMINATE | PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        _check(proc, "OpenProcess")
        try:
            _check(_kernel32.AssignProcessToJobObject(job, proc), "AssignProcessToJobObject")
            inside = wintypes.BOOL(False)
            _check(_kernel32.IsProcessInJob(proc, job, ctypes.byref(inside)), "IsProcessInJob")
            if not inside.value:
                raise OSError(0, "IsProcessInJob: the process is not in its job after the assignment")
        finally:
            _kernel32.CloseHandle(proc)
    except OSError as exc:
        log.warning("pid %s could not be put in its Job Object (%s, error %s): its tree is stopped by a psutil sweep only",
                    pid, exc.strerror, exc.errno)
        _kernel32.CloseHandle(job)
        return None
    return int(job)


def contain(pid: int) -> int | None:
    """A process started with CREATE_SUSPENDED: put it in a new job, then let it run.

    Resumed whatever happens (a run never stays suspended); psutil's resume resumes every
    thread of the process (psutil docs, Process.resume; NtResumeProcess on Windows).
    """
    try:
        return assign_new_job(pid)
    finally:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).resume()


def is_in_job(pid: int, job: int) -> bool:
    """IsProcessInJob for `pid` and `job` (False when the process is gone)."""
    proc = _kernel32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not proc:
        return False
    try:
        inside = wintypes.BOOL(False)
        return bool(_kernel32.IsProcessInJob(proc, job, ctypes.byref(inside)) and inside.value)
    finally:
        _kernel32.CloseHandle(proc)


def active_processes(job: int) -> int:
    """How many processes of the job still run (JobObjectBasicAccountingInformation)."""
    info = JOBOBJECT_BASIC_ACCOUNTING_INFORMATION()
    ok = _kernel32.QueryInformationJobObject(job, JobObjectBasicAccountingInformation, ctypes.byref(info),
                                             ctypes.sizeof(info), None)
    if not ok:
        raise OSError(ctypes.get_last_error(), "QueryInformationJobObject failed")
    return int(info.ActiveProcesses)


def job_pids(job: int) -> list[int]:
    """The pids of the job's live members (JobObjectBasicProcessIdList), grown until they all fit."""
    size = 64
    while True:
        class _List(ctypes.Structure):
            _fields_ = [("Assigned", wintypes.DWORD), ("InList", wintypes.DWORD), ("Ids", ctypes.c_size_t * size)]

        buf = _List()
        ok = _kernel32.QueryInformationJobObject(job, JobObjectBasicProcessIdList, ctypes.byref(buf), ctypes.sizeof(buf), None)
        if ok and buf.Assigned <= buf.InList:
            return [int(buf.Ids[i]) for i in range(buf.InList)]
        if not ok and ctypes.get_last_error() != 234:  # ERROR_MORE_DATA: grow and ask again
            raise OSError(ctypes.get_last_error(), "QueryInformationJobObject failed")
        size = max(size * 2, int(buf.Assigned) + 16)


def terminate_job(job: int) -> None:
    _kernel32.TerminateJobObject(job, 1)


def close_job(job: int) -> None:
    _kernel32.CloseHandle(job)


_kernel32.CreateMutexW.restype = wintypes.HANDLE
_kernel32.CreateMutexW.argtypes = [ctypes.c_void_p, wintypes.BOOL, wintypes.LPCWSTR]
_held: list[int] = []

#: The installer's AppMutex (packaging/windows/installer.iss): Setup waits while the app holds it.
APP_MUTEX = "PrismQDesktopRunning"


def hold_mutex(name: str = APP_MUTEX) -> bool:
    """Create (or open) the named mutex and keep its handle until the process exits, so the
    installer sees the app running (jrsoftware.org/ishelp, "[Setup]: AppMutex": the application
    creates a mutex of that name at startup with CreateMutex; the system destroys it when the
    application ends, so it is never closed here)."""
    handle = _kernel32.CreateMutexW(None, False, name)
    if not handle:
        log.warning("could not create the %s mutex (error %s)", name, ctypes.get_last_error())
        return False
    _held.append(int(handle))
    return True
