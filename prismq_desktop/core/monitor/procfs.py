"""The Linux backend: reads /proc itself, several times cheaper per process than psutil.

A member's CPU times, state, threads and RSS all come from its ``/proc/<pid>/stat``, its I/O
(only when asked for: nothing shows it today) from ``/proc/<pid>/io``; those files and the
children lists are kept open between rounds and read with pread. Membership comes, whichever
is cheaper that round, either from one scan of every process's stat (parent links; the members'
stat comes with it) or from walking the members' ``/proc/<pid>/task/<tid>/children`` lists.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from prismq_desktop.core.monitor.watch import Totals, Watch, children_map

PROCFS = "/proc"
HAS_PROCFS = sys.platform.startswith("linux") and os.path.exists(f"{PROCFS}/self/stat")


def boot_clock() -> float:
    """Seconds since boot, on the clock /proc/<pid>/stat start times use (0 where there is none)."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(clock) if clock is not None else 0.0


#: The most /proc files kept open between rounds (each read again with pread): a quarter of the
#: soft fd limit, so the app's own files, pipes and sockets always have room.
try:
    import resource

    KEPT_FILES_MAX = max(0, min(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4))
except (ImportError, OSError, ValueError):  # pragma: no cover - no resource module / no limit
    KEPT_FILES_MAX = 256


def _pread(fd: int) -> bytes:
    """The whole of a /proc file from its start (a read at offset 0 regenerates it)."""
    size = 4096
    while True:
        data = os.pread(fd, size, 0)
        if len(data) < size:
            return data
        size *= 4


class ProcfsBackend:
    """Linux: reads /proc directly; per tree member one read of its stat (and of its io, if asked for).

    Tree membership comes from one of two equivalent sources, whichever is cheaper this round:

    - a scan of every ``/proc/<pid>/stat`` (the parent links of every process; the members' own
      stat comes with it) - its cost grows with the machine's process count;
    - each member's ``/proc/<pid>/task/<tid>/children`` (the kernel's list of a thread's children) -
      its cost grows with the members' count (and threads): the usual way.

    A member's stat and children files are kept open from round to round and read again with
    `os.pread` (about 5 µs and 1 µs against 12 µs and 7 µs for open/read/close: the path lookup is
    most of it). A kept file stays bound to the process it was opened for: once that process has
    ended it reads ESRCH and is opened afresh (so a reused pid is read as the new process, as an
    open would), and files of processes no longer in any tree are closed at the round's end. At
    most `KEPT_FILES_MAX` are kept; the rest are opened and closed each time, as before.
    """

    name = "procfs"
    # rough costs of one call, in µs, measured on the development machine (only their ratios matter)
    _COST_STAT = 12.5  # open/read/close (what a scan pays per process)
    _COST_STAT_KEPT = 5.0  # pread of a kept stat file
    _COST_CHILDREN_KEPT = 1.0
    _COST_LISTDIR = 9.0

    def __init__(self, io: bool = False, kept_max: int | None = None) -> None:
        self.io = io
        self.clk = float(os.sysconf("SC_CLK_TCK"))
        self.page = int(os.sysconf("SC_PAGE_SIZE"))
        me = os.getpid()
        self.has_children_files = os.path.exists(f"{PROCFS}/{me}/task/{me}/children")
        self.system_processes = sum(1 for name in os.listdir(PROCFS) if name.isdigit())
        self.scanned = False
        self.stats: dict[int, bytes] = {}
        self.kids: dict[int, list[int]] = {}
        self.scans = 0  # rounds that scanned every process (for tests and benchmarks)
        self.kept_max = KEPT_FILES_MAX if kept_max is None else kept_max
        self.kept: dict[str, int] = {}  # path -> fd, files kept open between rounds
        self._used: set[str] = set()  # kept paths read this round

    @staticmethod
    def _read(path: str) -> bytes | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            return os.read(fd, 65536)
        except OSError:
            return None
        finally:
            os.close(fd)

    def _read_kept(self, path: str) -> bytes | None:
        """`path` through its kept fd (opened, and kept if there is room, on first use)."""
        fd = self.kept.get(path)
        if fd is not None:
            try:
                data = _pread(fd)
            except OSError:  # the process it was opened for has ended
                del self.kept[path]
                os.close(fd)
            else:
                self._used.add(path)
                return data
        if len(self.kept) >= self.kept_max:
            return self._read(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            data = _pread(fd)
        except OSError:
            os.close(fd)
            return None
        self.kept[path] = fd
        self._used.add(path)
        return data

    def close(self) -> None:
        """Close every kept file."""
        kept, self.kept = self.kept, {}
        for fd in kept.values():
            os.close(fd)
        self._used.clear()

    def __del__(self) -> None:  # a monitor dropped without stop(): its kept files go with it
        kept = getattr(self, "kept", None)
        if kept:
            for fd in kept.values():
                with contextlib.suppress(OSError):
                    os.close(fd)

    @staticmethod
    def _fields(data: bytes) -> list[bytes]:
        """The fields after the command name: [0] state, [1] ppid, ... (man proc numbering minus 3), up to [21] rss."""
        return data[data.rfind(b")") + 2 :].split(None, 22)

    def baseline(self, w: Watch) -> None:
        # (on the caller's thread, not the sampler's: a plain read, never a kept file)
        data = self._read(f"{PROCFS}/{w.pid}/stat")
        f = self._fields(data) if data is not None else None
        if f is None or f[0] in (b"Z", b"X"):
            w.gone = True
            return
        w.root_start = float(f[19])
        w.members[w.pid] = (float(f[19]), int(f[11]) + int(f[12]), int(f[17]))

    def begin_round(self, watches: list[Watch]) -> None:
        self._used = set()
        scan_cost = self.system_processes * self._COST_STAT
        walk_cost = 0.0
        for w in watches:
            for member in w.members.values() or [(0.0, 0, 1)]:
                threads = member[2]
                walk_cost += (
                    self._COST_STAT_KEPT
                    + self._COST_CHILDREN_KEPT * threads
                    + (self._COST_LISTDIR if threads > 1 else 0.0)
                )
        if self.has_children_files and walk_cost < scan_cost:
            self.scanned = False
            return
        stats: dict[int, bytes] = {}
        pairs: list[tuple[int, int]] = []
        read = self._read
        for name in os.listdir(PROCFS):
            if not name.isdigit():
                continue
            data = read(f"{PROCFS}/{name}/stat")
            if data is None:  # ended since the listing
                continue
            r = data.rfind(b")")
            # after ")": " S ppid ..." - the state is one character, the ppid follows
            end = data.find(b" ", r + 4)
            pid = int(name)
            stats[pid] = data
            pairs.append((pid, int(data[r + 4 : end])))
        self.stats = stats
        self.kids = children_map(pairs)
        self.system_processes = len(stats)
        self.scanned = True
        self.scans += 1

    def end_round(self) -> None:
        """Drop the round's scan; close the kept files no tree needed this round."""
        self.stats = {}
        self.kids = {}
        used = self._used
        for path in [p for p in self.kept if p not in used]:
            os.close(self.kept.pop(path))
        self._used = set()

    def _stat(self, pid: int) -> bytes | None:
        if self.scanned:
            return self.stats.get(pid)
        path = f"{PROCFS}/{pid}/stat"
        fd = self.kept.get(path)
        if fd is not None:  # the usual case, inlined: one pread (a stat is well under 4 KiB)
            try:
                data = os.pread(fd, 4096, 0)
            except OSError:
                pass  # ended: _read_kept closes it and opens the path afresh
            else:
                self._used.add(path)
                return data
        return self._read_kept(path)

    def _children(self, pid: int, threads: int) -> list[int]:
        if self.scanned:
            return self.kids.get(pid, [])
        if threads <= 1:
            tids = [str(pid)]
        else:
            try:
                tids = os.listdir(f"{PROCFS}/{pid}/task")
            except OSError:
                return []
        out: list[int] = []
        kept, used = self.kept, self._used
        for tid in tids:
            path = f"{PROCFS}/{pid}/task/{tid}/children"
            fd = kept.get(path)
            data: bytes | None = None
            if fd is not None:  # inlined as in _stat; a list that fills the buffer is read whole below
                try:
                    data = os.pread(fd, 4096, 0)
                except OSError:
                    data = None
                else:
                    used.add(path)
            if data is None or len(data) >= 4096:
                data = self._read_kept(path)
            if data:
                out.extend(map(int, data.split()))
        return out

    def sample(self, w: Watch, now_mono: float, now_wall: float, boot_now: float) -> Totals:
        t = Totals()
        elapsed = now_mono - w.last_mono
        since_prev = boot_now - elapsed  # boot-clock time of the previous reading
        clk = self.clk
        prev = w.members
        members: dict[int, tuple[float, int, int]] = {}
        ticks_delta = 0
        seen = {w.pid}
        stack = [w.pid]
        io_on = self.io
        while stack:
            pid = stack.pop()
            data = self._stat(pid)
            if data is None:
                continue  # ended meanwhile
            f = self._fields(data)
            start = float(f[19])
            if f[0] in (b"Z", b"X"):
                self._used.discard(f"{PROCFS}/{pid}/stat")  # ended, not yet reaped: its file closes at the round's end
            if pid == w.pid:
                if start != w.root_start or f[0] in (b"Z", b"X"):
                    return t  # the root ended (a zombie, or its pid reused): not alive
            elif f[0] in (b"Z", b"X"):
                continue  # ended, not yet reaped (and without children: they were re-parented)
            else:
                t.children += 1
            ticks = int(f[11]) + int(f[12])
            threads = int(f[17])
            before = prev.get(pid)
            if before is not None and before[0] == start:
                ticks_delta += ticks - before[1]
            elif start / clk >= since_prev:  # started since the previous reading: all of its CPU is new
                ticks_delta += ticks
            members[pid] = (start, ticks, threads)
            t.threads += threads
            t.rss += int(f[21]) * self.page
            if io_on:
                io = self._read_kept(f"{PROCFS}/{pid}/io")
                if io is not None:
                    i = io.find(b"read_bytes: ")
                    j = io.find(b"write_bytes: ", i)
                    if i >= 0 and j >= 0:
                        t.add_io(int(io[i + 12 : io.index(b"\n", i)]), int(io[j + 13 : io.index(b"\n", j)]))
            for child in self._children(pid, threads):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        w.members = members
        t.cpu = max(0.0, ticks_delta / clk / elapsed * 100.0) if elapsed > 0 else 0.0
        t.alive = True
        return t
