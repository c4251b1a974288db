"""Control of a run's whole process tree: stop, kill, pause and resume.

POSIX: every run starts in a session (and so a process group) of its own. Stopping sends
SIGTERM to the group, waits a grace period, sends SIGKILL to the group, then kills every
descendant snapshotted *before* the first signal - which catches children that left the
group with setsid(). Windows: every run starts suspended, is put in a Job Object that kills
its members when the job closes (breakaway is not allowed), and only then runs (winjob.contain);
stopping terminates the job - at once: a child started with CREATE_NO_WINDOW has no console, so
GenerateConsoleCtrlEvent's CTRL_BREAK cannot reach it ("sends a signal to a console process group
that shares the console associated with the calling process", learn.microsoft.com,
GenerateConsoleCtrlEvent), and Windows has no other gentle ask; the outcome says so (supervisor).

Re-parented descendants (Linux). A double-forked daemon (fork, setsid, fork, the middle
exits) is no longer anyone's descendant of the run's root, so no snapshot of the tree sees
it. Before its first spawn the app makes itself a *child subreaper*
(``prctl(PR_SET_CHILD_SUBREAPER)``, `become_subreaper`): orphans of everything it started
re-parent to the app instead of init. Every run's environment carries a tag unique to that
start (``PRISMQ_RUN_TAG``, set by `launch.mark_run`, inherited by everything the run starts);
`ProcessTree.adopted` reads ``/proc/<pid>/environ`` of the app's *direct* children only (a
handful, no process-table scan) and returns those with the run's tag, with their
descendants. They are stopped with the tree - at a stop request, and at every run's end - and
the app reaps them (it is their parent now): it waits only on pids it found this way (never on
a pid asyncio or Popen waits for: the run's root is never one of them), plus zombies that
provably were never its own forks (their session is neither the app's nor their own).

What still escapes: a descendant that *clears or rewrites its environment* (``env -i``, an
``execve`` with a fresh environment) before it double-forks carries no tag, so it cannot be
told from other orphans and is left alone; so is, where the subreaper is unavailable (not
Linux, or prctl refused), any daemon that re-parented to init before the stop (on other POSIX
systems a system-wide search by tag runs at stop requests only). A run in a fork-server pool
worker that double-forks *without exec* keeps the worker's original ``/proc`` environment
(the tag is set after the fork), so only its exec'd descendants are found.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable

import psutil

IS_WINDOWS = sys.platform == "win32"
IS_LINUX = sys.platform.startswith("linux")
POLL = 0.02
PR_SET_CHILD_SUBREAPER = 36
RUN_TAG_VAR = "PRISMQ_RUN_TAG"  # the same name as launch.RUN_TAG_VAR (set there)
REAP_WITHIN = 5.0  # how long a reaper thread waits for killed orphans to die

_subreaper: bool | None = None
_subreaper_lock = threading.Lock()


def become_subreaper() -> bool:
    """Linux: make this process a child subreaper (once), so the orphans of what it started
    re-parent to it rather than to init. True if it is one."""
    global _subreaper
    if _subreaper is None:
        with _subreaper_lock:
            if _subreaper is None:
                ok = False
                if IS_LINUX:
                    try:
                        ok = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
                    except (OSError, AttributeError):
                        ok = False
                _subreaper = ok
    return _subreaper


def popen_kwargs() -> dict[str, object]:
    """Keyword arguments that give a new process its own group/session (and no console).

    Also makes the app a child subreaper first (Linux), so a run's daemons stay findable.
    """
    become_subreaper()
    if IS_WINDOWS:
        return {"creationflags": windows_creationflags()}
    return {"start_new_session": True}


CREATE_SUSPENDED = 0x00000004  # learn.microsoft.com, "Process Creation Flags"


def windows_creationflags() -> int:
    """A run's CreateProcess flags: its own process group, no console window, and suspended until
    `ProcessTree` has put it in its job (winjob.contain resumes it)."""
    return (getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200) | getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000)
            | CREATE_SUSPENDED)


class ProcessTree:
    """The process tree rooted at one started child."""

    def __init__(
        self, pid: int, tag: str | None = None, spawned: tuple[int, int] | None = None, ticks: int | None = None
    ) -> None:
        self.pid = pid
        #: The run's ``PRISMQ_RUN_TAG`` (the Supervisor sets it): finds re-parented descendants.
        self.tag = tag
        self._job = None
        self.stopped = 0  # how many live processes the last stop sequence found (for "tree of N stopped")
        # the start time is read once from /proc/PID/stat (psutil's formula, its boot time kept):
        # a psutil.Process costs more and is made only when a stop or a snapshot needs one
        # (`spawned`: the boot clock read just before and after the spawn, see `spawn_clock`;
        # `ticks`: the start as whoever forked it already knows it - a pool's fork server)
        self._ticks = (ticks if ticks is not None else start_ticks(pid, spawned)) if IS_LINUX else None
        self.create_time: float | None = (self._ticks / _CLOCK_TICKS + _boot_time() if self._ticks is not None
                                          else None if IS_LINUX else start_time(pid))
        self._proc: psutil.Process | None = None
        self._proc_made = False
        if IS_WINDOWS:  # started suspended (popen_kwargs): into the job first, then it runs
            from prismq_desktop.core.process import winjob

            self._job = winjob.contain(pid)

    @property
    def _root(self) -> psutil.Process | None:
        """The root as a psutil.Process, made on first use; None once it is gone (or its pid
        now belongs to another process: the start time is checked)."""
        if not self._proc_made:
            self._proc_made = True
            try:  # no start time: the process was gone at once; never guess at whoever has its pid now
                if IS_LINUX:  # the kernel's own ticks compared: no boot time (it moves with the clock)
                    same = self._ticks is not None and start_ticks(self.pid) == self._ticks
                else:
                    same = self.create_time is not None and abs(
                        psutil.Process(self.pid).create_time() - self.create_time) < 0.01
                if same:
                    self._proc = psutil.Process(self.pid)
            except psutil.Error:
                self._proc = None
        return self._proc

    @_root.setter
    def _root(self, proc: psutil.Process | None) -> None:
        self._proc, self._proc_made = proc, True

    # -- inspection
    def descendants(self) -> list[psutil.Process]:
        if self._root is None:
            return []
        try:
            kids: list[psutil.Process] = self._root.children(recursive=True)
        except psutil.Error:
            return []
        return [p for p in kids if not _console_host(p)] if IS_WINDOWS else kids

    def snapshot(self) -> list[psutil.Process]:
        procs = self.descendants() + self.adopted()
        if self._root is not None:
            procs.insert(0, self._root)
        return procs

    def adopted(self, everywhere: bool = False, children: list[int] | None = None) -> list[psutil.Process]:
        """The run's descendants that re-parented away from its root (see the module docstring).

        Linux with the subreaper: the app's direct children carrying the run's tag, and theirs.
        Otherwise only with `everywhere` (a stop request): every process of the system with the tag.
        """
        if self.tag is None or IS_WINDOWS:
            return []
        needle = f"{RUN_TAG_VAR}={self.tag}".encode()
        if become_subreaper():
            kids = own_children() if children is None else children
            pids = [pid for pid in kids if pid != self.pid and _environ_has(pid, needle)]
        elif everywhere:
            pids = [p.pid for p in psutil.process_iter() if p.pid != self.pid and _environ_has(p.pid, needle)]
        else:
            return []
        found: list[psutil.Process] = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                found.append(proc)
                found.extend(proc.children(recursive=True))
        return found

    def group_alive(self) -> bool:
        """Does any process of the run's group still exist (POSIX), or the job (Windows)?"""
        if IS_WINDOWS:
            live = self._job_active()
            return live if live is not None else any(_alive(p) for p in self.snapshot())
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
        """Kill the tree now: the group (or job), every snapshotted descendant, and the run's
        re-parented ones; returns once those are dead (within a second) and their reaping is under way."""
        if IS_WINDOWS and self._job is not None:
            from prismq_desktop.core.process import winjob

            winjob.terminate_job(self._job)
        elif not IS_WINDOWS:
            self._signal_group(signal.SIGKILL)
        procs = (snapshot or []) + self.descendants() + self.adopted(everywhere=True)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        self._settle([p for p in procs if p.pid != self.pid])

    def _settle(self, killed: list[psutil.Process]) -> None:
        """Wait (briefly) until every killed process is dead, then reap the ones that are ours."""
        if not killed or IS_WINDOWS:
            return
        deadline = time.monotonic() + 1.0
        while any(_alive(p) for p in killed) and time.monotonic() < deadline:
            time.sleep(0.005)
        reap([p.pid for p in killed if p.pid != self.pid])

    def suspend(self) -> None:
        if IS_WINDOWS:
            for proc in self._windows_members():
                with contextlib.suppress(psutil.Error):
                    proc.suspend()
        else:
            self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        if IS_WINDOWS:
            for proc in self._windows_members():
                with contextlib.suppress(psutil.Error):
                    proc.resume()
        else:
            self._signal_group(signal.SIGCONT)

    def _windows_members(self) -> list[psutil.Process]:
        """Windows: every member of the run's job (QueryInformationJobObject's pid list: no
        parent-pid walk, so a child whose parent exited is not missed), else the psutil tree.
        (Windows has no group-wide SIGSTOP: a member started between the listing and its
        suspension runs on - the window is one listing, not a tree walk.)"""
        if self._job is not None:
            from prismq_desktop.core.process import winjob

            procs: list[psutil.Process] = []
            try:
                pids = winjob.job_pids(self._job)
            except OSError:
                return self.snapshot()
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    procs.append(psutil.Process(pid))
            return procs
        return self.snapshot()

    def _job_active(self) -> bool | None:
        """Windows: does the run's job still have a live member (None: no job, or unreadable)?"""
        if self._job is None:
            return None
        from prismq_desktop.core.process import winjob

        try:
            return winjob.active_processes(self._job) > 0
        except OSError:
            return None

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
            self._terminate_outside_group(snap)
            return snap, True
        self.kill(snap)
        return snap, False

    def _terminate_outside_group(self, snap: list[psutil.Process]) -> None:
        """SIGTERM (+SIGCONT) the snapshotted processes that left the group (setsid escapers,
        daemons): they get the same gentle ask as the group, and the grace to act on it."""
        for proc in snap:
            try:
                if proc.pid == self.pid or os.getpgid(proc.pid) == self.pid:
                    continue
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)
            except (OSError, psutil.Error):
                continue

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

    def nothing_left(self) -> bool:
        """A run's-end probe that never waits: True when no member of the group (or job) and no
        adopted descendant remains (adopted zombies are reaped on the way). The usual end takes
        this path on the loop thread, so a run costs no worker thread; False → `kill_leftovers`."""
        if IS_WINDOWS:
            return not self.group_alive()
        if self.group_alive():
            return False
        children = own_children()  # read once for both (a /proc read per thread of this process)
        if self.adopted(children=children):
            return False
        reap_orphans(children)
        return True

    def kill_leftovers(self) -> bool:
        """After the root exited: kill what it left behind in its group (or job) and the run's
        re-parented descendants (`adopted`). True if there was any.

        Cheap on purpose (one killpg probe and a look at the app's direct children, no
        process-table scan): it runs at every run's end.
        """
        if IS_WINDOWS:
            if not self.group_alive():
                return False
            if self._job is not None:
                from prismq_desktop.core.process import winjob

                winjob.terminate_job(self._job)
            for proc in self.descendants():  # the backstop when the job could not be made
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            return True
        adopted = self.adopted()
        if adopted:
            for proc in adopted:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
        group = self.group_alive()
        if group:
            self._signal_group(signal.SIGKILL)
        self._settle(adopted)
        reap_orphans()
        return group or bool(adopted)


class ServedTree(ProcessTree):
    """A pooled run's tree, when its fork server (`server`, a pid) is a child subreaper.

    What the run leaves behind re-parents to the server, not to the app, and the server lists
    it in the run's "exit" (pool/forkserver.py): `left`, (pid, start ticks) pairs - None until
    that exit came, or when it is not known (the server died). At the run's end `nothing_left`
    is then one killpg probe and no /proc read at all. The stop paths (`adopted`) take the
    reported pids and their descendants, the server's children carrying the run's tag (a daemon
    exec'd mid-run), and the app's as `ProcessTree` does (a dead server's orphans go there).
    """

    def __init__(self, pid: int, server: int, tag: str | None = None, ticks: int | None = None) -> None:
        super().__init__(pid, tag=tag, ticks=ticks)
        self.server = server
        self.left: list[tuple[int, int]] | None = None

    def nothing_left(self) -> bool:
        if self.left is None:
            return super().nothing_left()
        return not self.left and not self.group_alive()

    def adopted(self, everywhere: bool = False, children: list[int] | None = None) -> list[psutil.Process]:
        roots: list[psutil.Process] = []
        for pid, ticks in self.left or ():
            if start_ticks(pid) == ticks:  # still the process the server saw, not a reused pid
                with contextlib.suppress(psutil.Error):
                    roots.append(psutil.Process(pid))
        if self.tag is not None:
            needle = f"{RUN_TAG_VAR}={self.tag}".encode()
            reported = {p.pid for p in roots}
            for pid in children_of(self.server):
                if pid != self.pid and pid not in reported and _environ_has(pid, needle):
                    with contextlib.suppress(psutil.Error):
                        roots.append(psutil.Process(pid))
        found: dict[int, psutil.Process] = {}
        for proc in roots:
            found.setdefault(proc.pid, proc)
            with contextlib.suppress(psutil.Error):
                for kid in proc.children(recursive=True):
                    found.setdefault(kid.pid, kid)
        for proc in super().adopted(everywhere, children):
            found.setdefault(proc.pid, proc)
        found.pop(self.pid, None)
        return list(found.values())


def _console_host(proc: psutil.Process) -> bool:
    """Windows: the console host (conhost.exe) Windows starts for each console process - a child
    of it in the process table, even with CREATE_NO_WINDOW ("Windows Command-Line: Inside the
    Windows Console", Microsoft devblogs, 2018). It is the console's, not the run's work: not
    counted in "tree of N stopped" nor stopped on its own (it ends with its client, or the job)."""
    try:
        return bool(proc.name().casefold() == "conhost.exe")
    except psutil.Error:
        return False


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


_boot: list[float] = []  # [boot time, monotonic time it was read]
BOOT_REREAD = 60.0  # the boot time psutil adds moves when the clock is stepped: read again now and then


def _boot_time() -> float:
    now = time.monotonic()
    if not _boot or now - _boot[1] > BOOT_REREAD:
        _boot[:] = [psutil.boot_time(), now]
    return _boot[0]


def spawn_clock() -> int:
    """The boot clock in ns (Linux; 0 elsewhere), read just before and just after a spawn."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) if IS_LINUX else 0


def start_time(pid: int, spawned: tuple[int, int] | None = None) -> float | None:
    """A process's start time as psutil's `create_time()` gives it (what recovery compares);
    None when it is gone.

    The kernel records a child's start as the boot clock at its fork, in clock ticks
    (``/proc/PID/stat`` field 22). `spawned` is that clock read just before and after the
    spawn: when both fall in the same tick, that tick is the start, exactly, with no read at
    all (reading the file right after the spawn waits for the child's exec to finish).
    Otherwise (about one spawn in ten) one read of ``/proc/PID/stat``."""
    if IS_LINUX:
        ticks = start_ticks(pid, spawned)
        return None if ticks is None else ticks / _CLOCK_TICKS + _boot_time()
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def start_ticks(pid: int, spawned: tuple[int, int] | None = None) -> int | None:
    """Linux: the start of `pid` in clock ticks since boot (``/proc/PID/stat`` field 22), from
    the spawn's clock when it tells (see `start_time`), else from the file; None when gone."""
    if spawned is not None and spawned[0] > 0:
        tick = 1_000_000_000 // _CLOCK_TICKS
        if spawned[0] // tick == spawned[1] // tick:
            return spawned[0] // tick
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def own_children() -> list[int]:
    """This process's direct children: ``/proc/self/task/<tid>/children`` (cheap), else psutil."""
    if IS_LINUX:
        pids: list[int] = []
        try:
            for tid in os.listdir("/proc/self/task"):
                with contextlib.suppress(OSError), open(f"/proc/self/task/{tid}/children", "rb") as fh:
                    pids.extend(int(x) for x in fh.read().split())
            return pids
        except (OSError, ValueError):
            pass
    try:
        return [p.pid for p in psutil.Process().children()]
    except psutil.Error:
        return []


def children_of(pid: int) -> list[int]:
    """The direct children of process `pid` (Linux: /proc/PID/task/TID/children), else psutil's."""
    if IS_LINUX:
        pids: list[int] = []
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                    pids.extend(int(x) for x in fh.read().split())
            return pids
        except (OSError, ValueError):
            pass
    try:
        return [p.pid for p in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def _environ_has(pid: int, needle: bytes) -> bool:
    """Does process `pid` carry the environment entry `needle` (``KEY=VALUE``)?"""
    if IS_LINUX:
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                return needle in fh.read().split(b"\0")
        except OSError:
            return False
    key, _, value = needle.decode().partition("=")
    try:
        return bool(psutil.Process(pid).environ().get(key) == value)
    except psutil.Error:
        return False


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, session id) of `pid` from ``/proc/<pid>/stat``, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[1]), int(fields[3])
    except (OSError, IndexError, ValueError):
        return None


_unreaped: set[int] = set()
_reap_lock = threading.Lock()


def reap(pids: Iterable[int]) -> None:
    """Reap those of `pids` that are this process's children (re-parented orphans it killed).

    Only ever called with pids found through a run's tree or tag, never a run's root (the pid
    asyncio or Popen waits for). What has not exited yet is waited for by a short-lived thread.
    """
    if IS_WINDOWS:
        return
    me = os.getpid()
    mine = [pid for pid in pids if (st := _stat(pid)) is not None and st[1] == me]
    if not mine:
        return
    with _reap_lock:
        _unreaped.update(mine)
    if not _reap_now():
        threading.Thread(target=_reap_later, name="prismq-reaper", daemon=True).start()


def _reap_now() -> bool:
    """Reap what has exited of the pids waiting to be reaped; True when none is left."""
    with _reap_lock:
        for pid in list(_unreaped):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid  # not ours (any more): nothing to reap
            if done:
                _unreaped.discard(pid)
        return not _unreaped


def _reap_later() -> None:
    deadline = time.monotonic() + REAP_WITHIN
    while not _reap_now() and time.monotonic() < deadline:
        time.sleep(0.05)


def reap_orphans(children: list[int] | None = None) -> None:
    """Reap zombie children that provably are adopted orphans, not this process's own forks.

    A process this one forked keeps either this process's session or its own (after setsid());
    any other session means it was re-parented here (a subreaper). Cheap: direct children only.
    """
    if not become_subreaper():
        return
    me = os.getpid()
    try:
        own_sid = os.getsid(0)
    except OSError:
        return
    for pid in own_children() if children is None else children:
        st = _stat(pid)
        if st is not None and st[0] == "Z" and st[1] == me and st[2] not in (own_sid, pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


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
    tree.tag = None
    tree._job = None
    tree._root = proc
    tree.create_time = create_time
    tree.stopped = 0
    tree.stop_blocking(grace=1.0)
    return True
