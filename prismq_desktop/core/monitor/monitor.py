"""Resource monitor: CPU, memory, threads and I/O of every live run's process tree, and of the machine.

`ResourceMonitor` samples on a daemon thread of its own (never on the caller's thread), once
per `interval` seconds (1 s by default, changeable while it runs). Each round it publishes

- one `RunSample` per watched run: the whole process tree rooted at the run's pid (the root and
  all its descendants, membership refreshed every round), CPU % summed over the tree (100 = one
  full core), RSS, threads and live descendants summed, and I/O bytes where the platform has them;
- then one `SystemSample`: CPU % per core, memory, swap, disk usage of one path, load average.

It also keeps per-run aggregates (peak and mean CPU % and RSS, sample count) that `usage()` returns
while the run is watched and `unwatch()` returns at the end.

Threading: `publish` is called **on the sampler thread**. The engine must not touch its state
from there; it marshals each sample onto its event loop, e.g.
``publish=lambda ev: loop.call_soon_threadsafe(bus.publish, ev)``. An exception raised by
`publish` is logged and never stops the sampler. `watch`, `unwatch`, `usage` and the `interval`
property may be called from any thread.

CPU % is a difference of CPU times between two readings, so the first reading of a process is
only a baseline: `watch()` takes that baseline at once (one cheap read of the root, no tree walk),
so the first `RunSample` published - at least half an interval later - is already real. A
descendant first seen in a round counts in full if it started since the previous round (all its
CPU time falls in the interval), and as a baseline (0) otherwise. A descendant that starts and
ends between two rounds is not seen at all. I/O counts the live members of the tree; on Linux the
kernel adds a reaped child's I/O to its parent's counters, so the root's figures include its
finished children.

Cost. Two backends read the same figures:

- ``"procfs"`` (Linux, the default there): reads /proc itself, several times cheaper per process than
  psutil here. A member's CPU times, state, threads and RSS all come from its ``/proc/<pid>/stat``,
  its I/O from ``/proc/<pid>/io``. Membership comes, whichever is cheaper that round, either from one
  scan of every process's stat (parent links; the members' stat comes with it) or from walking the
  members' ``/proc/<pid>/task/<tid>/children`` lists (cheap with few runs on a busy machine);
- ``"psutil"`` (everywhere else): one parent map per round shared by all runs (instead of one
  ``children(recursive=True)`` per run, each of which scans every process on the machine), and
  ``psutil.Process`` objects kept across rounds (so `cpu_percent` has its baseline) and read
  inside ``oneshot()``.

`stats()` reports the CPU time the sampler itself has used (``time.thread_time`` around each round);
benchmarks/bench_monitor.py measures it for 10 and 100 live run trees.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import psutil

log = logging.getLogger(__name__)

Backend = Literal["auto", "procfs", "psutil"]

PROCFS = "/proc"
HAS_PROCFS = sys.platform.startswith("linux") and os.path.exists(f"{PROCFS}/self/stat")
_PSUTIL_HAS_IO = hasattr(psutil.Process, "io_counters")
_MIN_INTERVAL = 0.01


# ---------------------------------------------------------------------------------------------
# what is published


@dataclass(frozen=True, slots=True)
class RunSample:
    """One round's reading of a run's whole process tree (the root and all its live descendants)."""

    run_id: int
    time: float  # unix time of the reading
    cpu_percent: float  # summed over the tree since the previous reading; 100 = one full core
    rss_bytes: int  # summed over the tree
    threads: int  # summed over the tree
    children: int  # live descendants, not counting the root
    io_read_bytes: int | None  # summed over the tree; None where the platform (or permissions) give none
    io_write_bytes: int | None


@dataclass(frozen=True, slots=True)
class SystemSample:
    """One round's reading of the whole machine."""

    time: float  # unix time
    cpu_percent_per_core: tuple[float, ...]  # one entry per logical CPU, each 0-100
    mem_total: int
    mem_used: int
    mem_percent: float
    swap_percent: float
    disk_path: str
    disk_total: int | None  # None when the path cannot be read
    disk_used: int | None
    disk_percent: float | None
    load_avg: tuple[float, float, float] | None  # 1, 5, 15 minutes; None where unsupported

    @property
    def cpu_percent(self) -> float:
        """Mean over the cores (0-100)."""
        per = self.cpu_percent_per_core
        return sum(per) / len(per) if per else 0.0


@dataclass(frozen=True, slots=True)
class RunUsage:
    """A run's aggregates over the samples published for it (the watch-time baseline is not one)."""

    run_id: int
    pid: int
    samples: int
    cpu_percent_peak: float
    cpu_percent_mean: float
    rss_bytes_peak: int
    rss_bytes_mean: int
    threads_peak: int
    children_peak: int
    io_read_bytes: int | None  # as of the last sample
    io_write_bytes: int | None
    watched_at: float  # unix time
    last_sample_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def run_fields(self) -> dict[str, float | int | None]:
        """The registry's `Run` columns (peak_cpu, mean_cpu, peak_rss, mean_rss); all None without samples."""
        if self.samples == 0:
            return {"peak_cpu": None, "mean_cpu": None, "peak_rss": None, "mean_rss": None}
        return {
            "peak_cpu": self.cpu_percent_peak,
            "mean_cpu": self.cpu_percent_mean,
            "peak_rss": self.rss_bytes_peak,
            "mean_rss": self.rss_bytes_mean,
        }


@dataclass(frozen=True, slots=True)
class MonitorStats:
    """What the sampler itself costs: rounds done and thread CPU time spent in them."""

    rounds: int
    cpu_seconds: float  # time.thread_time() spent inside rounds
    last_round_seconds: float  # thread CPU time of the latest round
    native_thread_id: int | None  # of the sampler thread while it runs (for OS-level per-thread times)


# ---------------------------------------------------------------------------------------------
# per-run state


@dataclass(slots=True)
class _Agg:
    samples: int = 0
    cpu_sum: float = 0.0
    cpu_peak: float = 0.0
    rss_sum: int = 0
    rss_peak: int = 0
    threads_peak: int = 0
    children_peak: int = 0
    io_read: int | None = None
    io_write: int | None = None
    last_time: float | None = None

    def add(self, s: RunSample) -> None:
        self.samples += 1
        self.cpu_sum += s.cpu_percent
        self.cpu_peak = max(self.cpu_peak, s.cpu_percent)
        self.rss_sum += s.rss_bytes
        self.rss_peak = max(self.rss_peak, s.rss_bytes)
        self.threads_peak = max(self.threads_peak, s.threads)
        self.children_peak = max(self.children_peak, s.children)
        self.io_read, self.io_write = s.io_read_bytes, s.io_write_bytes
        self.last_time = s.time


@dataclass(slots=True)
class _Watch:
    run_id: int
    pid: int
    watched_at: float  # unix time
    root_start: float | None = None  # identity of the root: starttime ticks (procfs) or create_time (psutil)
    last_mono: float = 0.0  # monotonic time of the last reading (the watch-time baseline at first)
    last_wall: float = 0.0
    gone: bool = False  # the root has ended: nothing more to read
    # procfs: pid -> (starttime ticks, utime + stime ticks, threads); psutil: pid -> Process
    members: dict[int, Any] = field(default_factory=dict)
    agg: _Agg = field(default_factory=_Agg)

    def usage(self) -> RunUsage:
        a = self.agg
        n = a.samples
        return RunUsage(
            run_id=self.run_id,
            pid=self.pid,
            samples=n,
            cpu_percent_peak=a.cpu_peak,
            cpu_percent_mean=a.cpu_sum / n if n else 0.0,
            rss_bytes_peak=a.rss_peak,
            rss_bytes_mean=a.rss_sum // n if n else 0,
            threads_peak=a.threads_peak,
            children_peak=a.children_peak,
            io_read_bytes=a.io_read,
            io_write_bytes=a.io_write,
            watched_at=self.watched_at,
            last_sample_at=a.last_time,
        )


@dataclass(slots=True)
class _Totals:
    cpu: float = 0.0
    rss: int = 0
    threads: int = 0
    children: int = 0
    io_read: int | None = None
    io_write: int | None = None
    alive: bool = False

    def add_io(self, read: int, write: int) -> None:
        self.io_read = (self.io_read or 0) + read
        self.io_write = (self.io_write or 0) + write


def _descendants(root: int, kids: dict[int, list[int]]) -> list[int]:
    """Every pid below `root` in the parent map (cycle-safe: pid 0 is its own parent on some systems)."""
    out: list[int] = []
    seen = {root}
    stack = [root]
    while stack:
        for child in kids.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                out.append(child)
                stack.append(child)
    return out


def _children_map(ppids: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for pid, ppid in ppids:
        lst = kids.get(ppid)
        if lst is None:
            kids[ppid] = [pid]
        else:
            lst.append(pid)
    return kids


# ---------------------------------------------------------------------------------------------
# backends: how one round reads the trees


class _ProcfsBackend:
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

    def baseline(self, w: _Watch) -> None:
        data = self._read(f"{PROCFS}/{w.pid}/stat")
        f = self._fields(data) if data is not None else None
        if f is None or f[0] in (b"Z", b"X"):
            w.gone = True
            return
        w.root_start = float(f[19])
        w.members[w.pid] = (float(f[19]), int(f[11]) + int(f[12]), int(f[17]))

    def begin_round(self, watches: list[_Watch]) -> None:
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
        self.kids = _children_map(pairs)
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

    def sample(self, w: _Watch, now_mono: float, now_wall: float, boot_now: float) -> _Totals:
        t = _Totals()
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


class _PsutilBackend:
    """Portable: one parent map per round for all runs; Process objects kept across rounds, read in oneshot()."""

    name = "psutil"

    def __init__(self) -> None:
        self.kids: dict[int, list[int]] | None = None

    def baseline(self, w: _Watch) -> None:
        try:
            proc = psutil.Process(w.pid)
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:
                    w.gone = True
                    return
                proc.cpu_percent(None)
                w.root_start = float(proc.create_time())
        except psutil.Error:
            w.gone = True
            return
        w.members[w.pid] = proc

    def begin_round(self, watches: list[_Watch]) -> None:
        try:
            ppid_map = getattr(psutil, "_ppid_map", None)  # what Process.children() uses
            if ppid_map is not None:
                pairs: dict[int, int] = ppid_map()
            else:  # pragma: no cover - every current psutil has it
                pairs = {p.pid: p.info["ppid"] for p in psutil.process_iter(["ppid"])}
            self.kids = _children_map(pairs.items())
        except (psutil.Error, OSError):
            self.kids = None  # per-run children() below

    def end_round(self) -> None:
        self.kids = None

    def sample(self, w: _Watch, now_mono: float, now_wall: float, boot_now: float) -> _Totals:
        t = _Totals()
        root = w.members.get(w.pid)
        if root is None:
            return t
        if self.kids is not None:
            pids = [w.pid, *_descendants(w.pid, self.kids)]
        else:
            try:
                pids = [w.pid, *(c.pid for c in root.children(recursive=True))]
            except psutil.Error:
                pids = [w.pid]
        elapsed = now_mono - w.last_mono
        prev_wall = w.last_wall
        prev = w.members
        members: dict[int, psutil.Process] = {}
        for pid in pids:
            proc = prev.get(pid)
            new = proc is None
            try:
                if proc is None:
                    proc = psutil.Process(pid)
                with proc.oneshot():
                    if proc.status() == psutil.STATUS_ZOMBIE:
                        continue
                    cpu = float(proc.cpu_percent(None))
                    if new:  # a baseline; counted in full if it started since the previous reading
                        created = float(proc.create_time())
                        cpu = 0.0
                        if created >= prev_wall and elapsed > 0:
                            times = proc.cpu_times()
                            cpu = (float(times.user) + float(times.system)) / elapsed * 100.0
                    try:
                        t.rss += int(proc.memory_info().rss)
                    except psutil.AccessDenied:
                        pass
                    try:
                        t.threads += int(proc.num_threads())
                    except psutil.AccessDenied:
                        pass
                    if _PSUTIL_HAS_IO:
                        try:
                            io = proc.io_counters()
                            t.add_io(int(io.read_bytes), int(io.write_bytes))
                        except (psutil.AccessDenied, NotImplementedError):
                            pass
            except psutil.NoSuchProcess:  # gone (ZombieProcess is one too)
                continue
            except psutil.AccessDenied:
                if proc is None:
                    continue
                cpu = 0.0
            if pid == w.pid:
                t.alive = True
            else:
                t.children += 1
            t.cpu += cpu
            members[pid] = proc
        w.members = members
        if not t.alive:
            return _Totals()
        return t


def _make_backend(backend: Backend) -> _ProcfsBackend | _PsutilBackend:
    if backend == "procfs" or (backend == "auto" and HAS_PROCFS):
        if not HAS_PROCFS:
            raise ValueError("the procfs backend needs Linux /proc")
        return _ProcfsBackend()
    if backend not in ("auto", "psutil"):
        raise ValueError(f"unknown backend {backend!r}")
    return _PsutilBackend()


def _boot_clock() -> float:
    """Seconds since boot, on the clock /proc/<pid>/stat start times use (0 where there is none)."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(clock) if clock is not None else 0.0


# ---------------------------------------------------------------------------------------------
# the machine


class _SystemReader:
    """Whole-machine figures; CPU % per core from its own baseline of cpu_times (not psutil's global one)."""

    def __init__(self, disk_path: str) -> None:
        self.disk_path = disk_path
        self._last: list[tuple[float, float]] | None = self._cpu_times()

    @staticmethod
    def _cpu_times() -> list[tuple[float, float]]:
        """(busy, total) seconds per core, counted as psutil.cpu_percent counts them."""
        out = []
        for ct in psutil.cpu_times(percpu=True):
            total = float(sum(ct))
            # guest time is already inside user/nice on Linux
            total -= float(getattr(ct, "guest", 0.0)) + float(getattr(ct, "guest_nice", 0.0))
            idle = float(ct.idle) + float(getattr(ct, "iowait", 0.0))
            out.append((total - idle, total))
        return out

    def read(self) -> SystemSample:
        now = self._cpu_times()
        last = self._last if self._last is not None and len(self._last) == len(now) else None
        per: list[float] = []
        for i, (busy, total) in enumerate(now):
            if last is None:
                per.append(0.0)
                continue
            d_total = total - last[i][1]
            d_busy = busy - last[i][0]
            per.append(round(min(100.0, max(0.0, d_busy / d_total * 100.0)), 1) if d_total > 0 else 0.0)
        self._last = now
        vm = psutil.virtual_memory()
        try:
            swap = float(psutil.swap_memory().percent)
        except (OSError, RuntimeError):
            swap = 0.0
        disk_total: int | None = None
        disk_used: int | None = None
        disk_percent: float | None = None
        try:
            du = psutil.disk_usage(self.disk_path)
            disk_total, disk_used, disk_percent = int(du.total), int(du.used), float(du.percent)
        except OSError:
            pass
        load: tuple[float, float, float] | None = None
        getloadavg = getattr(psutil, "getloadavg", None)
        if getloadavg is not None:
            try:
                one, five, fifteen = getloadavg()
                load = (float(one), float(five), float(fifteen))
            except (OSError, RuntimeError, AttributeError):
                load = None
        return SystemSample(
            time=time.time(),
            cpu_percent_per_core=tuple(per),
            mem_total=int(vm.total),
            mem_used=int(vm.used),
            mem_percent=float(vm.percent),
            swap_percent=swap,
            disk_path=self.disk_path,
            disk_total=disk_total,
            disk_used=disk_used,
            disk_percent=disk_percent,
            load_avg=load,
        )


# ---------------------------------------------------------------------------------------------
# the monitor


class ResourceMonitor:
    """Samples watched runs' process trees and the machine on a daemon thread; see the module docstring.

    >>> with ResourceMonitor(1.0, publish=print) as mon:   # doctest: +SKIP
    ...     mon.watch(run_id, pid)
    ...     ...
    ...     usage = mon.unwatch(run_id)
    """

    def __init__(
        self,
        interval: float = 1.0,
        publish: Callable[[object], None] | None = None,
        *,
        disk_path: str | os.PathLike[str] | None = None,
        backend: Backend = "auto",
    ) -> None:
        self._interval = self._check_interval(interval)
        self.publish = publish
        self._backend = _make_backend(backend)
        self._system = _SystemReader(os.fspath(disk_path) if disk_path is not None else os.path.expanduser("~"))
        self._lock = threading.Lock()  # guards _runs and the aggregates
        self._round_lock = threading.Lock()  # one round at a time (thread or sample_once)
        self._runs: dict[int, _Watch] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_due = 0.0
        self._last_round = 0.0
        self._rounds = 0
        self._cpu_seconds = 0.0
        self._last_cost = 0.0

    # -- configuration
    @staticmethod
    def _check_interval(value: float) -> float:
        value = float(value)
        if not math.isfinite(value) or value < _MIN_INTERVAL:
            raise ValueError(f"interval must be a finite number of seconds >= {_MIN_INTERVAL}, not {value!r}")
        return value

    @property
    def interval(self) -> float:
        """Seconds between rounds; setting it takes effect at once (the next round is due one new interval
        after the previous one)."""
        return self._interval

    @interval.setter
    def interval(self, value: float) -> None:
        value = self._check_interval(value)
        with self._lock:
            self._interval = value
            self._next_due = self._last_round + value
        self._wake.set()

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def disk_path(self) -> str:
        return self._system.disk_path

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle
    def start(self) -> None:
        """Start the sampler thread (no-op if it runs)."""
        if self.running:
            return
        self._stop.clear()
        self._wake.clear()
        with self._lock:
            self._last_round = time.monotonic()
            self._next_due = self._last_round + self._interval
        self._thread = threading.Thread(target=self._loop, name="prismq-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the sampler thread and wait for it (a round in progress is finished first)."""
        thread = self._thread
        self._stop.set()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("resource monitor thread did not stop within %s s", timeout)
            else:
                self._thread = None

    def __enter__(self) -> ResourceMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- runs
    def watch(self, run_id: int, pid: int) -> None:
        """Start sampling the process tree rooted at `pid` for run `run_id`.

        Takes the CPU baseline of the root at once (one read, no tree walk; tens of µs). A pid that
        has already ended is accepted: it yields no samples, and `unwatch` returns zero samples.
        Watching a run id again replaces the earlier watch.
        """
        w = _Watch(run_id=run_id, pid=pid, watched_at=time.time())
        self._backend.baseline(w)
        w.last_mono = time.monotonic()
        w.last_wall = w.watched_at
        with self._lock:
            self._runs[run_id] = w

    def unwatch(self, run_id: int) -> RunUsage | None:
        """Stop sampling a run; its aggregates, or None if it was not watched."""
        with self._lock:
            w = self._runs.pop(run_id, None)
            return w.usage() if w is not None else None

    def usage(self, run_id: int) -> RunUsage | None:
        """The aggregates so far of a watched run (None if not watched)."""
        with self._lock:
            w = self._runs.get(run_id)
            return w.usage() if w is not None else None

    def watched(self) -> list[int]:
        with self._lock:
            return list(self._runs)

    def stats(self) -> MonitorStats:
        thread = self._thread
        return MonitorStats(
            rounds=self._rounds,
            cpu_seconds=self._cpu_seconds,
            last_round_seconds=self._last_cost,
            native_thread_id=thread.native_id if thread is not None and thread.is_alive() else None,
        )

    # -- sampling
    def sample_once(self) -> tuple[list[RunSample], SystemSample]:
        """Run one round now, on the calling thread: read, update aggregates, publish, and return the samples."""
        return self._round()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                due = self._next_due
            delay = due - time.monotonic()
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()
                continue  # re-check stop and the (maybe changed) due time
            t0 = time.thread_time()
            try:
                self._round()
            except Exception:  # noqa: BLE001 - a bug in one round must not end the sampling
                log.exception("resource monitor round failed")
            cost = time.thread_time() - t0
            self._cpu_seconds += cost
            self._last_cost = cost
            self._rounds += 1

    def _round(self) -> tuple[list[RunSample], SystemSample]:
        with self._round_lock:
            start = time.monotonic()
            with self._lock:
                self._last_round = start
                # fixed rate; after a stall (or a slow round) start again from now rather than catch up
                due = self._next_due + self._interval
                self._next_due = due if due > start else start + self._interval
                watches = list(self._runs.values())
                min_age = self._interval / 2
            samples: list[tuple[_Watch, RunSample]] = []
            live = [w for w in watches if not w.gone and start - w.last_mono >= min_age]
            if live:
                backend = self._backend
                backend.begin_round(live)
                try:
                    boot = _boot_clock()
                    now_mono = time.monotonic()
                    now_wall = time.time()
                    for w in live:
                        try:
                            t = backend.sample(w, now_mono, now_wall, boot)
                        except Exception:  # noqa: BLE001 - one odd process must not cost the other runs
                            log.exception("sampling run %s (pid %s) failed", w.run_id, w.pid)
                            continue
                        w.last_mono, w.last_wall = now_mono, now_wall
                        if not t.alive:
                            w.gone = True
                            w.members = {}
                            continue
                        samples.append(
                            (
                                w,
                                RunSample(
                                    run_id=w.run_id,
                                    time=now_wall,
                                    cpu_percent=round(t.cpu, 1),
                                    rss_bytes=t.rss,
                                    threads=t.threads,
                                    children=t.children,
                                    io_read_bytes=t.io_read,
                                    io_write_bytes=t.io_write,
                                ),
                            )
                        )
                finally:
                    backend.end_round()
            system = self._system.read()
            published: list[RunSample] = []
            with self._lock:
                for w, s in samples:
                    if self._runs.get(s.run_id) is w:  # not unwatched (or watched anew) meanwhile
                        w.agg.add(s)
                        published.append(s)
            self._publish([*published, system])
            return published, system

    def _publish(self, events: list[RunSample | SystemSample]) -> None:
        publish = self.publish
        if publish is None:
            return
        failures = 0
        for ev in events:
            try:
                publish(ev)
            except Exception:  # noqa: BLE001 - a subscriber's bug must not stop the sampling
                if failures == 0:
                    log.exception("resource monitor: publish(%s) failed", type(ev).__name__)
                failures += 1
        if failures > 1:
            log.error("resource monitor: publish failed for %d events this round", failures)
