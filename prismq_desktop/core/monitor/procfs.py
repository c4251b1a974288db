"""The Linux backend: reads /proc itself, several times cheaper per process than psutil.

A member's CPU times, state, threads and RSS all come from its ``/proc/<pid>/stat``, its I/O
from ``/proc/<pid>/io``. Membership comes, whichever is cheaper that round, either from one scan
of every process's stat (parent links; the members' stat comes with it) or from walking the
members' ``/proc/<pid>/task/<tid>/children`` lists (cheap with few runs on a busy machine).
"""

from __future__ import annotations

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


class ProcfsBackend:
    """Linux: reads /proc directly; per tree member one read of its stat and one of its io.

    Tree membership comes from one of two equivalent sources, whichever is cheaper this round:

    - a scan of every ``/proc/<pid>/stat`` (the parent links of every process; the members' own
      stat comes with it) - its cost grows with the machine's process count;
    - each member's ``/proc/<pid>/task/<tid>/children`` (the kernel's list of a thread's children) -
      its cost grows with the members' count (and threads): the cheap way for a few runs on a busy desktop.
    """

    name = "procfs"
    # rough costs of one call, in µs, measured on the development machine (only their ratios matter)
    _COST_STAT = 14.0
    _COST_CHILDREN = 20.0
    _COST_LISTDIR = 9.0

    def __init__(self) -> None:
        self.clk = float(os.sysconf("SC_CLK_TCK"))
        self.page = int(os.sysconf("SC_PAGE_SIZE"))
        me = os.getpid()
        self.has_children_files = os.path.exists(f"{PROCFS}/{me}/task/{me}/children")
        self.system_processes = sum(1 for name in os.listdir(PROCFS) if name.isdigit())
        self.scanned = False
        self.stats: dict[int, bytes] = {}
        self.kids: dict[int, list[int]] = {}
        self.scans = 0  # rounds that scanned every process (for tests and benchmarks)

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

    @staticmethod
    def _fields(data: bytes) -> list[bytes]:
        """The fields after the command name: [0] state, [1] ppid, ... (man proc numbering minus 3)."""
        return data[data.rfind(b")") + 2 :].split()

    def baseline(self, w: Watch) -> None:
        data = self._read(f"{PROCFS}/{w.pid}/stat")
        f = self._fields(data) if data is not None else None
        if f is None or f[0] in (b"Z", b"X"):
            w.gone = True
            return
        w.root_start = float(f[19])
        w.members[w.pid] = (float(f[19]), int(f[11]) + int(f[12]), int(f[17]))

    def begin_round(self, watches: list[Watch]) -> None:
        scan_cost = self.system_processes * self._COST_STAT
        walk_cost = 0.0
        for w in watches:
            for member in w.members.values() or [(0.0, 0, 1)]:
                threads = member[2]
                walk_cost += self._COST_STAT + self._COST_CHILDREN * threads + (self._COST_LISTDIR if threads > 1 else 0.0)
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
        self.stats = {}
        self.kids = {}

    def _stat(self, pid: int) -> bytes | None:
        if self.scanned:
            return self.stats.get(pid)
        return self._read(f"{PROCFS}/{pid}/stat")

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
        for tid in tids:
            data = self._read(f"{PROCFS}/{pid}/task/{tid}/children")
            if data:
                out.extend(int(x) for x in data.split())
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
        while stack:
            pid = stack.pop()
            data = self._stat(pid)
            if data is None:
                continue  # ended meanwhile
            f = self._fields(data)
            start = float(f[19])
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
            io = self._read(f"{PROCFS}/{pid}/io")
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
