"""The portable backend (everywhere but Linux): psutil, with the per-round costs kept down.

One parent map per round shared by all runs (instead of one ``children(recursive=True)`` per
run, each of which scans every process on the machine), and ``psutil.Process`` objects kept
across rounds (so `cpu_percent` has its baseline) and read inside ``oneshot()``.
"""

from __future__ import annotations

import psutil

from prismq_desktop.core.monitor.watch import Totals, Watch, children_map, descendants

_PSUTIL_HAS_IO = hasattr(psutil.Process, "io_counters")


class PsutilBackend:
    """Portable: one parent map per round for all runs; Process objects kept across rounds, read in oneshot()."""

    name = "psutil"

    def __init__(self, io: bool = False) -> None:
        self.io = io and _PSUTIL_HAS_IO
        self.kids: dict[int, list[int]] | None = None

    def baseline(self, w: Watch) -> None:
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

    def begin_round(self, watches: list[Watch]) -> None:
        try:
            ppid_map = getattr(psutil, "_ppid_map", None)  # what Process.children() uses
            if ppid_map is not None:
                pairs: dict[int, int] = ppid_map()
            else:  # pragma: no cover - every current psutil has it
                pairs = {p.pid: p.info["ppid"] for p in psutil.process_iter(["ppid"])}
            self.kids = children_map(pairs.items())
        except (psutil.Error, OSError):
            self.kids = None  # per-run children() below

    def end_round(self) -> None:
        self.kids = None

    def sample(self, w: Watch, now_mono: float, now_wall: float, boot_now: float) -> Totals:
        t = Totals()
        root = w.members.get(w.pid)
        if root is None:
            return t
        if self.kids is not None:
            pids = [w.pid, *descendants(w.pid, self.kids)]
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
                    if self.io:
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
            return Totals()
        return t
