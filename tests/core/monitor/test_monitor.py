"""ResourceMonitor against real processes: CPU, RSS, tree membership, aggregates, the sampler thread.

No mocks: every test starts real children (with sys.executable) and kills and reaps everything it
started. Figures are checked loosely - the machine is shared - and never against wall-clock speed.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from prismq_desktop.core.monitor import HAS_PROCFS, ResourceMonitor, RunSample, RunUsage, SystemSample
from tests.helpers import pid_gone, wait_for

PY = sys.executable
MB = 2**20
BACKENDS = ["procfs", "psutil"] if HAS_PROCFS else ["psutil"]


class Collector:
    """A publish callback that keeps everything (called on the sampler thread)."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.threads: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, event: object) -> None:
        with self._lock:
            self.events.append(event)
            self.threads.add(threading.get_ident())

    def runs(self, run_id: int) -> list[RunSample]:
        with self._lock:
            return [e for e in self.events if isinstance(e, RunSample) and e.run_id == run_id]

    def systems(self) -> list[SystemSample]:
        with self._lock:
            return [e for e in self.events if isinstance(e, SystemSample)]


def spawn(scripts: Path, name: str, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [PY, str(scripts / name), *args],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    return proc


def read_until(proc: subprocess.Popen[str], word: str) -> list[str]:
    assert proc.stdout is not None
    lines = []
    while True:
        line = proc.stdout.readline()
        assert line, f"child ended before printing {word!r}: {lines}"
        lines.append(line.strip())
        if line.strip() == word:
            return lines


def kill_tree(proc: subprocess.Popen[str]) -> None:
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        kids = []
    proc.kill()
    proc.wait(10)
    for kid in kids:
        try:
            kid.kill()
        except psutil.Error:
            pass
    wait_for(lambda: all(pid_gone(k.pid) for k in kids), timeout=10)
    for stream in (proc.stdout, proc.stdin):
        if stream is not None:
            stream.close()


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        kill_tree(proc)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_busy_child_shows_about_one_core(scripts, children, backend):
    """The readings match the CPU the child really got, measured on the side from its own
    cpu_times over the same window (on a loaded machine a busy child gets less than a core, so
    "about one core" means "what the kernel gave it", not a fixed 100 %)."""
    proc = spawn(scripts, "mon_busy.py")
    children.append(proc)
    read_until(proc, "ready")
    got = Collector()
    side = psutil.Process(proc.pid)
    with ResourceMonitor(0.2, publish=got, backend=backend) as mon:
        t0, c0 = time.monotonic(), sum(side.cpu_times()[:2])
        mon.watch(1, proc.pid)
        wait_for(lambda: len(got.runs(1)) >= 10, timeout=20)
        usage = mon.unwatch(1)
        t1, c1 = time.monotonic(), sum(side.cpu_times()[:2])
    truth = (c1 - c0) / (t1 - t0) * 100
    samples = got.runs(1)
    cpus = [s.cpu_percent for s in samples]
    load = psutil.getloadavg()
    assert truth > 10, f"the busy child got {truth:.0f} % of a core (load {load})"
    mean = sum(cpus) / len(cpus)
    assert abs(mean - truth) <= max(15.0, truth * 0.25), f"readings {cpus} (mean {mean:.0f}) vs {truth:.0f} % got; load {load}"
    assert cpus[0] > 10, f"the watch-time baseline makes the first published sample real: {cpus}"
    assert max(cpus) <= 130, cpus  # one thread: about one core at most
    assert all(s.children == 0 and s.threads == 1 for s in samples)
    assert usage is not None and usage.samples == len(samples)
    assert usage.cpu_percent_peak >= min(cpus) and usage.cpu_percent_peak == max(cpus)
    assert got.threads and threading.get_ident() not in got.threads  # published from the sampler thread


def test_allocating_child_shows_rss_growth(scripts, children, backend):
    proc = spawn(scripts, "mon_alloc.py", "200", "10", stdin=True)
    children.append(proc)
    read_until(proc, "ready")
    got = Collector()
    with ResourceMonitor(0.2, publish=got, backend=backend) as mon:
        mon.watch(7, proc.pid)
        wait_for(lambda: got.runs(7), timeout=10)
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        read_until(proc, "allocated")
        first = got.runs(7)[0].rss_bytes
        wait_for(lambda: any(s.rss_bytes - first >= 150 * MB for s in got.runs(7)), timeout=10)
        usage = mon.unwatch(7)
    assert usage is not None
    assert usage.rss_bytes_peak - first >= 150 * MB
    assert usage.rss_bytes_peak >= usage.rss_bytes_mean >= first


def test_tree_counts_grandchildren(scripts, children, backend):
    proc = spawn(scripts, "mon_tree.py", "3")
    children.append(proc)
    kids = [int(line.split()[1]) for line in read_until(proc, "ready") if line.startswith("pid ")]
    assert len(kids) == 3
    got = Collector()
    with ResourceMonitor(0.2, publish=got, backend=backend) as mon:
        mon.watch(3, proc.pid)
        sample = wait_for(lambda: next(iter(got.runs(3)), None), timeout=10)
        root_rss = psutil.Process(proc.pid).memory_info().rss
        assert sample.children == 3
        assert sample.threads >= 4
        # four python processes: the tree's RSS is well over the root's own
        assert sample.rss_bytes >= root_rss
        assert sample.rss_bytes >= 2 * min(root_rss, psutil.Process(kids[0]).memory_info().rss)
        # a grandchild that vanishes leaves the tree; the sampler carries on
        psutil.Process(kids[0]).kill()
        wait_for(lambda: pid_gone(kids[0]))
        seen = len(got.runs(3))
        wait_for(lambda: any(s.children == 2 for s in got.runs(3)[seen:]), timeout=10)
        assert mon.unwatch(3) is not None


def test_children_that_exit_between_rounds_do_not_break_sampling(scripts, children, backend):
    proc = spawn(scripts, "mon_tree.py", "3", "exit")
    children.append(proc)
    got = Collector()
    with ResourceMonitor(0.1, publish=got, backend=backend) as mon:
        mon.watch(4, proc.pid)
        read_until(proc, "reaped")
        seen = len(got.runs(4))
        wait_for(lambda: len(got.runs(4)) >= seen + 2, timeout=10)
        assert got.runs(4)[-1].children == 0
        assert mon.running


def test_unwatch_returns_sensible_aggregates(scripts, children, backend):
    proc = spawn(scripts, "mon_busy.py")
    children.append(proc)
    read_until(proc, "ready")
    got = Collector()
    with ResourceMonitor(0.1, publish=got, backend=backend, io=True) as mon:
        mon.watch(5, proc.pid)
        wait_for(lambda: len(got.runs(5)) >= 5, timeout=10)
        live = mon.usage(5)
        assert isinstance(live, RunUsage) and live.samples >= 5
        usage = mon.unwatch(5)
        assert mon.unwatch(5) is None and mon.usage(5) is None
        n = len(got.runs(5))
        time.sleep(0.3)
        assert len(got.runs(5)) <= n + 1, "no samples after unwatch (but one round may have been under way)"
    assert usage is not None
    samples = got.runs(5)[: usage.samples]
    assert usage.samples >= 5 and usage.pid == proc.pid
    assert usage.cpu_percent_peak >= usage.cpu_percent_mean > 0
    assert usage.cpu_percent_peak == max(s.cpu_percent for s in samples)
    assert usage.cpu_percent_mean == pytest.approx(sum(s.cpu_percent for s in samples) / usage.samples)
    assert usage.rss_bytes_peak >= usage.rss_bytes_mean > 0
    assert usage.last_sample_at is not None and usage.last_sample_at >= usage.watched_at
    fields = usage.run_fields()
    assert fields["peak_cpu"] == usage.cpu_percent_peak and fields["mean_rss"] == usage.rss_bytes_mean
    if sys.platform.startswith("linux"):
        assert usage.io_read_bytes is not None and usage.io_write_bytes is not None


def test_vanished_and_zombie_roots_do_not_stop_the_sampler(scripts, children, backend):
    gone = subprocess.Popen([PY, "-S", "-c", "pass"])
    gone.wait()
    zombie = spawn(scripts, "mon_busy.py")
    children.append(zombie)
    read_until(zombie, "ready")
    got = Collector()
    with ResourceMonitor(0.1, publish=got, backend=backend) as mon:
        mon.watch(1, gone.pid)  # ended before watch
        mon.watch(2, zombie.pid)
        wait_for(lambda: got.runs(2), timeout=10)
        zombie.kill()  # not reaped yet: a zombie while we sample
        wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE)
        rounds = mon.stats().rounds
        wait_for(lambda: mon.stats().rounds >= rounds + 3, timeout=10)
        n = len(got.runs(2))
        wait_for(lambda: mon.stats().rounds >= rounds + 5, timeout=10)
        assert len(got.runs(2)) == n, "a zombie root yields no more samples"
        zombie.wait()
        wait_for(lambda: mon.stats().rounds >= rounds + 7, timeout=10)
        assert mon.running
        assert got.runs(1) == []
        u1, u2 = mon.unwatch(1), mon.unwatch(2)
    assert u1 is not None and u1.samples == 0 and u1.cpu_percent_mean == 0.0 and u1.run_fields()["peak_cpu"] is None
    assert u2 is not None and u2.samples >= 1


def test_publish_errors_are_logged_and_sampling_goes_on(caplog):
    calls = []

    def bad(event: object) -> None:
        calls.append(event)
        raise RuntimeError("subscriber bug")

    with caplog.at_level(logging.ERROR, logger="prismq_desktop.core.monitor"), ResourceMonitor(0.05, publish=bad) as mon:
        wait_for(lambda: len(calls) >= 3, timeout=10)
        assert mon.running
    assert "subscriber bug" in caplog.text


def test_sampler_stops_cleanly():
    mon = ResourceMonitor(0.05)
    mon.start()
    thread = mon._thread
    assert thread is not None and thread.daemon and thread.is_alive()
    assert mon.stats().native_thread_id == thread.native_id
    wait_for(lambda: mon.stats().rounds >= 2, timeout=10)
    mon.stop()
    assert not thread.is_alive() and not mon.running
    assert thread not in threading.enumerate()
    rounds = mon.stats().rounds
    time.sleep(0.2)
    assert mon.stats().rounds == rounds
    assert mon.stats().cpu_seconds > 0
    with mon:  # restartable, and a context manager
        assert mon.running
    assert not mon.running


def test_interval_change_takes_effect():
    got = Collector()
    with ResourceMonitor(30.0, publish=got) as mon:
        time.sleep(0.3)
        assert mon.stats().rounds == 0  # first round due after 30 s
        mon.interval = 0.05  # takes effect at once, not after the old 30 s
        assert mon.interval == 0.05
        wait_for(lambda: mon.stats().rounds >= 5, timeout=5)
        mon.interval = 30.0
        time.sleep(0.1)  # a round under way may finish
        rounds = mon.stats().rounds
        time.sleep(0.4)
        assert mon.stats().rounds == rounds
    with pytest.raises(ValueError):
        ResourceMonitor(0)
    with pytest.raises(ValueError):
        mon.interval = float("nan")


def test_system_sample_has_one_cpu_entry_per_core(tmp_path):
    with ResourceMonitor(0.1) as mon:
        assert mon.disk_path == str(Path.home())
    got = Collector()
    with ResourceMonitor(0.1, publish=got, disk_path=tmp_path) as mon:
        wait_for(lambda: len(got.systems()) >= 2, timeout=10)
    s = got.systems()[-1]
    assert len(s.cpu_percent_per_core) == psutil.cpu_count(logical=True)
    assert all(0.0 <= c <= 100.0 for c in s.cpu_percent_per_core)
    assert 0.0 <= s.cpu_percent <= 100.0
    assert s.mem_total > 0 and 0 < s.mem_used <= s.mem_total and 0 < s.mem_percent <= 100
    assert 0.0 <= s.swap_percent <= 100.0
    assert s.disk_path == str(tmp_path) and s.disk_total and s.disk_used is not None and s.disk_percent is not None
    if hasattr(psutil, "getloadavg") and sys.platform != "win32":
        assert s.load_avg is not None and len(s.load_avg) == 3
    missing = ResourceMonitor(0.1, disk_path=tmp_path / "no-such-dir").sample_once()[1]
    assert missing.disk_total is None and missing.disk_percent is None


def test_sample_once_on_the_calling_thread(scripts, children, backend):
    proc = spawn(scripts, "mon_tree.py", "2")
    children.append(proc)
    read_until(proc, "ready")
    got = Collector()
    mon = ResourceMonitor(0.05, publish=got, backend=backend)
    mon.watch(9, proc.pid)
    time.sleep(0.05)
    runs, system = mon.sample_once()
    assert [r.run_id for r in runs] == [9] and runs[0].children == 2
    assert got.events == [*runs, system]
    assert mon.unwatch(9) is not None


@pytest.mark.skipif(not HAS_PROCFS, reason="Linux /proc only")
def test_procfs_scan_and_children_walk_see_the_same_tree(scripts, children):
    """The procfs backend finds members by scanning every process or by walking children lists: same tree."""
    proc = spawn(scripts, "tree.py", "2")  # 2 children, each with a grandchild
    children.append(proc)
    read_until(proc, "ready")
    wait_for(lambda: len(psutil.Process(proc.pid).children(recursive=True)) == 4)
    mon = ResourceMonitor(0.05, backend="procfs")
    backend = mon._backend
    mon.watch(1, proc.pid)
    seen = {}
    has_children_files = backend.has_children_files
    for strategy in ("walk", "scan", "walk"):
        backend.has_children_files = strategy == "walk" and has_children_files
        backend.system_processes = 10**9  # make the scan look dear: walk whenever the kernel has children lists
        scans = backend.scans
        time.sleep(0.05)
        runs, _ = mon.sample_once()
        assert runs[0].children == 4, strategy
        seen[strategy] = (runs[0].children, runs[0].threads)
        assert (backend.scans > scans) == (strategy == "scan" or not backend.has_children_files)
    assert seen["walk"] == seen["scan"]
    mon.unwatch(1)


# ---------------------------------------------------------------------------- procfs: kept files, I/O on demand
def open_fds() -> set[str]:
    import os

    out = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            out.add(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:
            pass
    return out


@pytest.mark.skipif(not HAS_PROCFS, reason="Linux /proc only")
def test_procfs_keeps_files_open_between_rounds_and_closes_them_when_the_tree_is_gone(scripts, children):
    proc = spawn(scripts, "mon_tree.py", "3")
    children.append(proc)
    kids = [int(line.split()[1]) for line in read_until(proc, "ready") if line.startswith("pid ")]
    mon = ResourceMonitor(0.05, backend="procfs")
    backend = mon._backend
    mon.watch(1, proc.pid)
    time.sleep(0.05)
    first, _ = mon.sample_once()
    kept = dict(backend.kept)
    assert first[0].children == 3
    # each of the 4 processes: its stat and (one thread each, at least for the children) its children list
    assert {f"/proc/{pid}/stat" for pid in [proc.pid, *kids]} <= set(kept)
    assert not any(p.endswith("/io") for p in kept), "no I/O counters unless asked for"
    assert first[0].io_read_bytes is None and first[0].io_write_bytes is None
    time.sleep(0.05)
    again, _ = mon.sample_once()
    assert again[0].children == 3 and backend.kept == kept  # the same fds, read again
    psutil.Process(kids[0]).kill()
    wait_for(lambda: pid_gone(kids[0]))
    time.sleep(0.05)
    after, _ = mon.sample_once()
    assert after[0].children == 2
    assert not any(p.startswith(f"/proc/{kids[0]}/") for p in backend.kept)  # closed with its process
    assert mon.unwatch(1) is not None
    mon.sample_once()  # a round without trees lets go of every kept file
    assert backend.kept == {}
    ours = tuple(f"/proc/{pid}/" for pid in [proc.pid, *kids])
    leaked = [p for p in open_fds() if p.startswith(ours)]
    assert not leaked, leaked


@pytest.mark.skipif(not HAS_PROCFS, reason="Linux /proc only")
def test_procfs_respects_its_kept_file_budget_and_reads_the_rest_as_before(scripts, children):
    proc = spawn(scripts, "mon_tree.py", "3")
    children.append(proc)
    read_until(proc, "ready")
    mon = ResourceMonitor(0.05, backend="procfs", io=True)
    backend = mon._backend
    backend.kept_max = 2
    mon.watch(1, proc.pid)
    for _ in range(3):
        time.sleep(0.05)
        runs, _ = mon.sample_once()
        assert runs[0].children == 3 and runs[0].threads >= 4
        assert runs[0].io_read_bytes is not None and runs[0].io_write_bytes is not None
        assert len(backend.kept) <= 2
    mon.stop()
    assert backend.kept == {}


@pytest.mark.skipif(not HAS_PROCFS, reason="Linux /proc only")
def test_procfs_kept_file_of_an_ended_process_is_not_read_as_another(scripts, children):
    """A kept fd stays bound to the process it was opened for: once that one ended it is reopened,
    so whatever now has the pid is read afresh (and a root whose pid was reused is seen as ended)."""
    from prismq_desktop.core.monitor.procfs import ProcfsBackend

    backend = ProcfsBackend()
    first = spawn(scripts, "mon_busy.py")
    children.append(first)
    read_until(first, "ready")
    path = f"/proc/{first.pid}/stat"
    assert backend._read_kept(path) is not None and path in backend.kept
    kill_tree(first)
    assert backend._read_kept(path) is None and path not in backend.kept  # ESRCH: closed, and no process now
    backend.close()
    assert backend.kept == {}
