"""Windows Job Objects through ctypes: one job per run, killed as a whole.

The job is created with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, so if the app dies its runs
die with it, and `terminate_job` ends every process the run started, however deep.
Breakaway is never allowed: neither JOB_OBJECT_LIMIT_BREAKAWAY_OK (which would let a child
created with CREATE_BREAKAWAY_FROM_JOB leave) nor JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK (which
would put every child outside the job) is set - `job_limit_flags` is the only place the flags
are chosen, and it refuses both. A process that double-forks on Windows (starts a detached
child and exits) stays in the job, so it is stopped with the run. (Written from the Win32
documentation; not exercised on Windows in this project's CI.)
The child is assigned right after it starts; a grandchild spawned in that first instant
escapes the job, which the psutil descendant sweep in ProcessTree.kill still catches.
Imported only on Windows.
"""

from __future__ import annotations

import ctypes
import sys
from ctypes import wintypes
from typing import Any

if sys.platform != "win32":  # pragma: no cover - keeps mypy and linters honest elsewhere
    raise ImportError("winjob is Windows-only")

_kernel32: Any = ctypes.WinDLL("kernel32", use_last_error=True)

JobObjectExtendedLimitInformation = 9
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


def _check(ok: Any, what: str) -> None:
    if not ok:
        raise OSError(ctypes.get_last_error(), f"{what} failed")


def job_limit_flags() -> int:
    """The limit flags of every run's job: kill on close, and no way out of the job."""
    flags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    assert not flags & (JOB_OBJECT_LIMIT_BREAKAWAY_OK | JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK)
    return flags


def assign_new_job(pid: int) -> int | None:
    """Create a kill-on-close job and put `pid` in it; None if Windows refuses."""
    job = _kernel32.CreateJobObjectW(None, None)
    if not job:
        return None
    info = JOBOBJECT_EXTENDED_LIMIT_INFORMATION()
    info.BasicLimitInformation.LimitFlags = job_limit_flags()
    try:
        _check(
            _kernel32.SetInformationJobObject(job, JobObjectExtendedLimitInformation, ctypes.byref(info), ctypes.sizeof(info)),
            "SetInformationJobObject",
        )
        proc = _kernel32.OpenProcess(PROCESS_SET_QUOTA | PROCESS_TERMINATE, False, pid)
        _check(proc, "OpenProcess")
        try:
            _check(_kernel32.AssignProcessToJobObject(job, proc), "AssignProcessToJobObject")
        finally:
            _kernel32.CloseHandle(proc)
    except OSError:
        _kernel32.CloseHandle(job)
        return None
    return int(job)


def terminate_job(job: int) -> None:
    _kernel32.TerminateJobObject(job, 1)


def close_job(job: int) -> None:
    _kernel32.CloseHandle(job)
