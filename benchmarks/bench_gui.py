"""The window under load (Qt offscreen, a real qasync loop): a firehose pane and a 100,000-run history.

Firehose: a Python child prints 80-byte lines (block-buffered, like the drain benchmark's
line writer) into a following log pane of the real MainWindow. Figures: the child's wall
time against `writer | cat > /dev/null` measured before and after in the same run (goal
≤ 1.25×); event-loop stall = lateness of a 10 ms QTimer during the run (goals p99 ≤ 50 ms,
max ≤ 200 ms); the app's peak RSS for 50 MB and 200 MB of output (flat, ≤ 250 MB).

History: 100,000 runs in the registry; first paint = building the HistoryModel, showing the
table and processing the paint events (goal ≤ 300 ms); filter = typing a name filter until
the model has reset (goal ≤ 50 ms at 1,000,000 runs, issue 17: the trigram index). Raw
baseline: the same page and count with the plain LIKE scan the index replaced.

Chatty (issue 17): 100 concurrent runs each printing a line every 100 ms, every pane open;
loop lag p99 (goal ≤ 20 ms) and the app's own CPU (not its children's; goal ≤ 15% of a core)
over the steady part of the run.

Cold start (issue 17): fresh processes, interleaved: `prismq-desktop --data-dir D gui` (the
command's own code path) against a bare PySide6 QMainWindow, both from just before the
parent's Popen to the first Paint event of the main window (goal ≤ 2×); each child imports
only what its side needs (START_CHILD), and the probe filters every Qt event only until the
main window exists, then that window's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import figure, percentile, print_table, write_result  # noqa: E402

LINE_WRITER = "import sys\nn = int(sys.argv[1]) // 80\nfor i in range(n):\n    print(f'{i:079d}')\n"


def child_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUTF8="1")
    env.pop("PYTHONUNBUFFERED", None)
    return env


def baseline(nbytes: int) -> float:
    t0 = time.perf_counter()
    w = subprocess.Popen([sys.executable, "-c", LINE_WRITER, str(nbytes)], stdout=subprocess.PIPE, env=child_env())
    c = subprocess.Popen(["cat"], stdin=w.stdout, stdout=subprocess.DEVNULL)
    assert w.stdout is not None
    w.stdout.close()
    w.wait()
    c.wait()
    return time.perf_counter() - t0


def firehose(nbytes: int) -> dict[str, float]:
    """One GUI process: run the firehose into a following pane; report wall, stalls and peak RSS."""
    import psutil
    import qasync
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from prismq_desktop.core import RunSpec
    from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
    from prismq_desktop.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    app.setQuitOnLastWindowClosed(False)
    home = tempfile.mkdtemp(prefix="prismq-bench-gui-")
    proc = psutil.Process()
    out: dict[str, float] = {}

    async def main() -> None:
        async with TaskOrchestrator(home) as orch:
            win = MainWindow(orch, QSettings(os.path.join(home, "s.ini"), QSettings.Format.IniFormat))
            win.show()
            await asyncio.sleep(0.3)
            lateness: list[float] = []
            peak = [proc.memory_info().rss]
            expected = [time.perf_counter() + 0.01]

            def tick() -> None:
                now = time.perf_counter()
                lateness.append(max(0.0, now - expected[0]))
                expected[0] = now + 0.01
                peak[0] = max(peak[0], proc.memory_info().rss) if len(lateness) % 10 == 0 else peak[0]

            timer = QTimer()
            timer.setTimerType(timer.timerType().PreciseTimer)
            timer.timeout.connect(tick)
            spec = RunSpec(sys.executable, ("-c", LINE_WRITER, str(nbytes)), env={"PYTHONUNBUFFERED": None})
            expected[0] = time.perf_counter() + 0.01
            timer.start(10)
            prof = None
            if os.environ.get("BENCH_PROFILE"):  # where the GUI thread's time goes (a profile file)
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            t0 = time.perf_counter()
            run_id = win.launch(spec, {"pattern": "long_running"})
            assert run_id is not None
            result = await orch.wait(run_id)
            wall = time.perf_counter() - t0
            if prof is not None:
                prof.disable()
                prof.dump_stats(os.environ["BENCH_PROFILE"])
            await asyncio.sleep(0.2)
            timer.stop()
            assert result.ok, result.outcome
            pane = win.panes[run_id]
            out.update(wall=wall, p99=percentile(lateness, 99) * 1000, max=max(lateness) * 1000,
                       rss=max(peak[0], proc.memory_info().rss) / 2**20, flushes=pane.flushes,
                       hidden=pane.hidden_lines, shown=pane.text.document().blockCount())
            win._quitting = True
            win.close()
            win.bridge.close()

    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        runner.run(main())
    return out


def stall_floor(nbytes: int) -> dict[str, float]:
    """The machine's floor for the stall figure: the same 10 ms timer on a bare qasync loop
    (no window, no engine) while `writer | cat > /dev/null` moves the same bytes beside it."""
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    out: dict[str, float] = {}

    async def main() -> None:
        lateness: list[float] = []
        expected = [time.perf_counter() + 0.01]

        def tick() -> None:
            now = time.perf_counter()
            lateness.append(max(0.0, now - expected[0]))
            expected[0] = now + 0.01

        timer = QTimer()
        timer.setTimerType(timer.timerType().PreciseTimer)
        timer.timeout.connect(tick)
        await asyncio.sleep(0.3)
        expected[0] = time.perf_counter() + 0.01
        timer.start(10)
        import shlex

        cmd = f"{shlex.quote(sys.executable)} -c {shlex.quote(LINE_WRITER)} {nbytes} | cat > /dev/null"
        proc = await asyncio.create_subprocess_shell(cmd, env=child_env())
        await proc.wait()
        timer.stop()
        out.update(p99=percentile(lateness, 99) * 1000, max=max(lateness) * 1000)

    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        runner.run(main())
    return out


def history(n_runs: int) -> dict[str, float]:
    from PySide6.QtWidgets import QApplication, QTableView

    from prismq_desktop.core import RunSpec
    from prismq_desktop.core.store.registry import RunQuery, RunRegistry
    from prismq_desktop.gui.models import HistoryModel

    app = QApplication.instance() or QApplication([])
    home = tempfile.mkdtemp(prefix="prismq-bench-hist-")
    reg = RunRegistry(os.path.join(home, "registry.sqlite3"))
    specs = [RunSpec(f"/work/job_{i}.py", ("--n", str(i))) for i in range(50)]
    batch = []
    t_fill = time.perf_counter()
    for i in range(n_runs):
        run = reg.new_run(specs[i % 50], mode="async", created_at=time.time() - (n_runs - i))
        batch.append(run)
        if len(batch) == 5000:
            reg.insert(batch)
            batch = []
    reg.insert(batch)
    fill = time.perf_counter() - t_fill
    # the window indexes noted runs while idle (HistoryView, 2,000 a turn); here all at once, timed
    t_index = time.perf_counter()
    while reg.index_pending(20_000):
        pass
    index_time = time.perf_counter() - t_index
    plain = sqlite3.connect(os.path.join(home, "registry.sqlite3"))

    def like_scan(query: RunQuery) -> float:
        """The same page and count with the plain LIKE scan (what the filter did before the index)."""
        t0 = time.perf_counter()
        where, params = query.where(fts=False)
        plain.execute(f"SELECT * FROM runs{where}{query.order_by()} LIMIT ? OFFSET ?",
                      (*params, query.limit, query.offset)).fetchall()
        plain.execute(f"SELECT COUNT(*) FROM runs{where}", params).fetchone()
        return time.perf_counter() - t0

    raw = like_scan(RunQuery(limit=HistoryModel.PAGE))
    # Qt's one-time cost of a process's first table view (style, fonts, PySide's enums: 0.1-1 s
    # here) is paid by the window's start in the app, not by History: paid here before timing
    warm = QTableView()
    warm.show()
    app.processEvents()
    warm.close()

    t0 = time.perf_counter()
    model = HistoryModel(reg)
    view = QTableView()
    view.setModel(model)
    view.resize(1200, 700)
    view.show()
    app.processEvents()
    first_paint = time.perf_counter() - t0
    assert model.total == n_runs

    # a common text's exact count runs after its first page (posted behind the page's layout and
    # paint): the first page is shown when that count starts, or when processEvents returns
    count_started: list[float] = []
    finish = model.finish_count

    def timed_finish(turn: int | None = None) -> None:
        count_started.append(time.perf_counter())
        finish(turn)

    model.finish_count = timed_finish  # type: ignore[method-assign]

    def filtered(text: str) -> tuple[float, float, float, int]:
        count_started.clear()
        t0 = time.perf_counter()
        model.set_filter(text)
        app.processEvents()
        took = time.perf_counter() - t0
        assert not model.counting
        first = (count_started[0] - t0) if count_started else took
        return first, took, like_scan(RunQuery(text=text, limit=HistoryModel.PAGE)), model.total

    filter_time, filter_counted, raw_filter, matched = filtered("job_17")
    assert matched == n_runs // 50
    common_time, common_counted, raw_common, common_matched = filtered("job_")  # every run matches
    assert common_matched == n_runs
    short_time, short_counted, raw_short, short_matched = filtered("_9")  # 2 characters: no trigram, a LIKE scan
    view.close()
    reg.close()
    plain.close()
    db_mb = os.path.getsize(os.path.join(home, "registry.sqlite3")) / 2**20
    shutil.rmtree(home, ignore_errors=True)  # 600 MB a run: left behind, a few runs fill /tmp
    return {"first_paint": first_paint * 1000, "raw_page": raw * 1000, "filter": filter_time * 1000,
            "raw_filter": raw_filter * 1000, "matched": matched, "common": common_time * 1000,
            "filter_counted": filter_counted * 1000, "common_counted": common_counted * 1000,
            "raw_common": raw_common * 1000, "short": short_time * 1000, "raw_short": raw_short * 1000,
            "fill": fill, "index": index_time, "db_mb": db_mb}


CHATTY = ("import sys, time\nn = int(sys.argv[1])\nfor i in range(n):\n"
          "    print(f'chatty line {i:05d} ' + 'x' * 40, flush=True)\n    time.sleep(0.1)\n")


def chatty(n_runs: int, seconds: float) -> dict[str, float]:
    """One GUI process: `n_runs` runs printing 10 lines/s each, all panes open; lag and app CPU."""
    import psutil
    import qasync
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from prismq_desktop.core import RunSpec
    from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
    from prismq_desktop.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    app.setQuitOnLastWindowClosed(False)
    home = tempfile.mkdtemp(prefix="prismq-bench-chatty-")
    proc = psutil.Process()
    out: dict[str, float] = {}
    lines = int(seconds * 10)

    async def main() -> None:
        async with TaskOrchestrator(home, max_concurrent=n_runs) as orch:
            win = MainWindow(orch, QSettings(os.path.join(home, "s.ini"), QSettings.Format.IniFormat))
            win.resize(1280, 800)
            win.show()
            await asyncio.sleep(0.3)
            spec = RunSpec(sys.executable, ("-c", CHATTY, str(lines)))
            ids = [win.launch(spec, {"pattern": "long_running"}) for _ in range(n_runs)]
            assert all(i is not None for i in ids)
            t_launch = time.perf_counter()
            await asyncio.sleep(4.0)  # every child started (100 interpreters on 2 cores) and chatting
            lateness: list[float] = []
            expected = [time.perf_counter() + 0.01]

            def tick() -> None:
                now = time.perf_counter()
                lateness.append(max(0.0, now - expected[0]))
                expected[0] = now + 0.01

            timer = QTimer()
            timer.setTimerType(timer.timerType().PreciseTimer)
            timer.timeout.connect(tick)
            running = sum(1 for r in orch.engine.active() if r.run.status.value == "running")
            def main_thread_cpu() -> float:
                return sum(t.user_time + t.system_time for t in proc.threads() if t.id == proc.pid)

            def reader_cpu() -> float:
                """The pipe reader thread's (core/process/mux.py), if the engine has one."""
                ids = {t.native_id for t in threading.enumerate() if t.name == "prismq-pipe-mux"}
                return sum(t.user_time + t.system_time for t in proc.threads() if t.id in ids)

            cpu0, w0, main0, mux0 = sum(proc.cpu_times()[:2]), time.perf_counter(), main_thread_cpu(), reader_cpu()
            expected[0] = time.perf_counter() + 0.01
            timer.start(10)
            prof = None
            if os.environ.get("BENCH_PROFILE"):  # where the GUI thread's time goes (a profile file)
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            await asyncio.sleep(max(1.0, seconds - (time.perf_counter() - t_launch) - 2.0))
            timer.stop()
            cpu1, w1, main1, mux1 = sum(proc.cpu_times()[:2]), time.perf_counter(), main_thread_cpu(), reader_cpu()
            if prof is not None:
                prof.disable()
                prof.dump_stats(os.environ["BENCH_PROFILE"])
            still = sum(1 for r in orch.engine.active() if r.run.status.value == "running")
            results = [await orch.wait(i) for i in ids if i is not None]
            assert all(r.ok for r in results), [r.outcome for r in results if not r.ok][:3]
            shown = [win.panes[i].text.document().blockCount() for i in ids if i is not None and i in win.panes]
            out.update(p99=percentile(lateness, 99) * 1000, p50=percentile(lateness, 50) * 1000,
                       max=max(lateness) * 1000, cpu=(cpu1 - cpu0) / (w1 - w0) * 100, window=w1 - w0,
                       main_cpu=(main1 - main0) / (w1 - w0) * 100, threads=len(proc.threads()),
                       mux_cpu=(mux1 - mux0) / (w1 - w0) * 100,
                       running=min(running, still), panes=len(shown), min_lines=min(shown) if shown else 0)
            win._quitting = True
            win.close()
            win.bridge.close()

    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        runner.run(main())
    return out


#: the cold start's child, run as `python -c START_CHILD SIDE T0 HOME PROBE`: it imports only what
#: its side needs (not this module's asyncio, sqlite3, statistics: a bare window would pay for them).
#: It prints the seconds from T0 (the parent's clock before Popen) to the first Paint of the main
#: window and the process's CPU seconds then, and leaves through the window's own quit path.
#:
#: PROBE "window": an application-wide event filter only until the first event of a QMainWindow,
#: then a filter on that window alone (the app itself has no application-wide filter: a Python
#: call for every Qt event of every widget is the probe's cost, not the app's, and it grows with
#: the number of widgets).
#:
#: PrismQ's side imports the CLI first, as the `prismq-desktop` command does, and PySide6 after
#: it (the probe needs it before the app imports it): PySide6 inspects every module imported
#: after it, so a probe that came first would charge the app for modules it loads before Qt.
#:
#: PROBE "legacy" is the earlier runs' instrument, kept as a second figure: both sides first
#: import what this module imports (the child was this module), PySide6 before the CLI, and the
#: application-wide filter on every event to the first paint.
START_CHILD = """
import sys, time
side, t0, home, probe = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
if probe == "legacy":
    import argparse, asyncio, json, math, os, shutil, sqlite3, statistics, subprocess, tempfile
elif side != "bare":
    from prismq_desktop.cli import main as cli_main
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

app = QApplication([sys.argv[0]])


class FirstPaint(QObject):
    seen = False
    window = None

    def eventFilter(self, obj, ev):
        if probe == "window" and self.window is None and isinstance(obj, QMainWindow):
            self.window = obj
            app.removeEventFilter(self)
            obj.installEventFilter(self)
        if ev.type() == QEvent.Type.Paint and isinstance(obj, QMainWindow) and not self.seen:
            self.seen = True
            print(f"PAINT {time.time() - t0:.6f} {time.process_time():.6f}", flush=True)
            if side == "bare":
                QTimer.singleShot(0, app.quit)
            else:
                obj._quitting = True
                QTimer.singleShot(0, obj.close)
        return False


watcher = FirstPaint()
app.installEventFilter(watcher)
if side == "bare":
    win = QMainWindow()
    win.resize(1024, 700)
    win.show()
    app.exec()
else:
    if probe == "legacy":
        from prismq_desktop.cli import main as cli_main
    cli_main(["--data-dir", home, "gui"])
"""


def cold_start(rounds: int) -> dict[str, float]:
    """Interleaved fresh processes, bare then PrismQ, with each probe, `rounds` times; medians
    of wall time, of the process's own CPU time at the first paint, and of the paired ratios."""
    home = tempfile.mkdtemp(prefix="prismq-bench-start-")
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
               PRISMQ_SECRET_STORE="file")

    def once(side: str, probe: str) -> tuple[float, float]:
        t0 = time.time()
        res = subprocess.run([sys.executable, "-c", START_CHILD, side, repr(t0), home, probe], capture_output=True,
                             text=True, timeout=120, env=env)
        got = [ln for ln in res.stdout.splitlines() if ln.startswith("PAINT ")]
        if res.returncode != 0 or not got:
            raise SystemExit(f"cold start ({side}) failed: {res.returncode}\n{res.stderr[-3000:]}")
        _, wall, cpu = got[0].split()
        return float(wall), float(cpu)

    # An installed app has its bytecode (a wheel's install compiles it, a frozen build holds it), as
    # PySide6's own modules here do: with PYTHONDONTWRITEBYTECODE set (as on the CI machine) our
    # sources would otherwise be compiled again by every start, a cost the bare side never pays.
    import compileall

    import prismq_desktop

    compileall.compile_dir(os.path.dirname(prismq_desktop.__file__), quiet=1)
    once("prismq", "window")  # the first start makes the registry and settings: every measured one is a second start
    out: dict[str, float] = {}
    samples: dict[str, list[tuple[float, float]]] = {f"{side}/{probe}": [] for side in ("bare", "prismq")
                                                      for probe in ("window", "legacy")}
    for _ in range(rounds):
        for probe in ("window", "legacy"):
            for side in ("bare", "prismq"):
                samples[f"{side}/{probe}"].append(once(side, probe))
    for probe in ("window", "legacy"):
        bare, ours = samples[f"bare/{probe}"], samples[f"prismq/{probe}"]
        ratios = sorted(o[0] / b[0] for o, b in zip(ours, bare, strict=True))
        cpu_ratios = sorted(o[1] / b[1] for o, b in zip(ours, bare, strict=True))
        out |= {f"{probe}_bare": statistics.median(b[0] for b in bare),
                f"{probe}_ours": statistics.median(o[0] for o in ours),
                f"{probe}_ratio": statistics.median(ratios), f"{probe}_lo": ratios[0], f"{probe}_hi": ratios[-1],
                f"{probe}_bare_cpu": statistics.median(b[1] for b in bare),
                f"{probe}_ours_cpu": statistics.median(o[1] for o in ours),
                f"{probe}_cpu_ratio": statistics.median(cpu_ratios)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="firehose,chatty,start,history",
                    help="comma-separated parts: firehose, chatty, start, history")
    ap.add_argument("--worker", choices=["firehose", "history", "chatty", "floor"])
    ap.add_argument("--bytes", type=int, default=0)
    ap.add_argument("--runs", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=20.0)
    opts = ap.parse_args()
    if opts.worker == "firehose":
        print(repr(firehose(opts.bytes)))
        return 0
    if opts.worker == "history":
        print(repr(history(opts.runs)))
        return 0
    if opts.worker == "floor":
        print(repr(stall_floor(opts.bytes)))
        return 0
    if opts.worker == "chatty":
        print(repr(chatty(opts.runs, opts.seconds)))
        return 0

    def worker(*args: str) -> dict[str, float]:
        res = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=1800)
        if res.returncode != 0:
            raise SystemExit(f"worker {args} failed:\n{res.stderr[-3000:]}")
        return dict(eval(res.stdout.strip().splitlines()[-1]))  # noqa: S307 - our own repr of a dict of floats

    parts = set(opts.only.split(","))
    load = [os.getloadavg()[0]]
    figures = []
    notes = ["Qt offscreen platform, one qasync loop, the real MainWindow; runs are launched as from the launch "
             "panel and their panes follow the output."]
    if "firehose" in parts:
        big, small = (40_000_000, 10_000_000) if opts.quick else (200_000_000, 50_000_000)
        b1 = baseline(big)
        floor1 = worker("--worker", "floor", "--bytes", str(big))
        gui = worker("--worker", "firehose", "--bytes", str(big))
        floor2 = worker("--worker", "floor", "--bytes", str(big))
        b2 = baseline(big)
        gui_small = worker("--worker", "firehose", "--bytes", str(small))
        base = (b1 + b2) / 2
        mb, smb = big // 1_000_000, small // 1_000_000
        load.append(os.getloadavg()[0])
        figures += [
            figure(f"firehose {mb} MB: child wall time vs writer | cat", gui["wall"], base, unit="s", goal=1.25),
            figure("event-loop stall p99 (10 ms timer lateness)", gui["p99"], None, unit="ms", goal=20,
                   goal_kind="max_value"),
            figure("stall p99 vs a bare qasync loop beside `writer | cat` (the machine's floor, same run)",
                   gui["p99"], (floor1["p99"] + floor2["p99"]) / 2, unit="ms", goal_kind="info",
                   note=f"floor runs {floor1['p99']:.1f} / {floor2['p99']:.1f} ms"),
            figure("event-loop stall max", gui["max"], None, unit="ms", goal=200, goal_kind="max_value"),
            figure(f"app peak RSS, {mb} MB of output", gui["rss"], None, unit="MB", goal=250, goal_kind="max_value"),
            figure(f"app peak RSS, {mb} MB vs {smb} MB", gui["rss"], gui_small["rss"], unit="MB", goal=1.10),
            figure("pane flushes / lines shown at the end", gui["flushes"], gui["shown"], goal_kind="info"),
        ]
        notes += [
            f"Firehose child: `python -c LINE_WRITER N` printing 80-byte lines, block-buffered on both sides; "
            f"`writer | cat` measured before and after the GUI run (mean {base:.2f} s). The stall is the lateness "
            "of a 10 ms PreciseTimer on the GUI loop during the run; RSS is the app process (not the child), "
            "sampled every 100 ms.",
        ]
    if "chatty" in parts:
        n_chatty, secs = (30, 12.0) if opts.quick else (100, 20.0)
        ch = worker("--worker", "chatty", "--runs", str(n_chatty), "--seconds", str(secs))
        load.append(os.getloadavg()[0])
        figures += [
            figure(f"{n_chatty} chatty runs (10 lines/s each, panes open): loop lag p99", ch["p99"], None, unit="ms",
                   goal=20, goal_kind="max_value"),
            figure("chatty: loop lag max", ch["max"], None, unit="ms", goal_kind="info"),
            figure("chatty: app CPU (% of a core, its own threads only)", ch["cpu"], None, unit="%", goal=15,
                   goal_kind="max_value"),
            figure("chatty: of which the GUI thread (the qasync loop: engine, bridge, panes)", ch["main_cpu"], None,
                   unit="%", goal_kind="info", note=f"{ch['threads']:.0f} threads"),
            figure("chatty: of which the pipe reader thread (reads, log writes, decoding)", ch["mux_cpu"], None,
                   unit="%", goal_kind="info"),
            figure("chatty: runs running during the window / panes open", ch["running"], ch["panes"],
                   goal_kind="info"),
        ]
        notes.append(f"Chatty: {n_chatty} runs of `python -c CHATTY` (a 50-byte line, flush, sleep 0.1 s), all "
                     f"launched from the panel (a pane each); measured over {ch['window']:.1f} s of steady state "
                     f"(from 4 s after the launches to 2 s before the first would end); CPU = the app process's "
                     f"user+system time (all its threads, not the children) over that wall time.")
    if "start" in parts:
        rounds = 5 if opts.quick else 9
        st = cold_start(rounds)
        load.append(os.getloadavg()[0])
        figures += [
            figure("cold start to the first paint of the window vs a bare PySide6 window", st["window_ours"],
                   st["window_bare"], unit="s", goal=2.0, ratio=st["window_ratio"],
                   note=f"paired ratios {st['window_lo']:.2f}–{st['window_hi']:.2f}×"),
            figure("cold start: the process's CPU time at the first paint vs the bare window's",
                   st["window_ours_cpu"], st["window_bare_cpu"], unit="s", goal_kind="info",
                   ratio=st["window_cpu_ratio"]),
            figure("cold start by the earlier runs' instrument (bare side importing this module's modules, "
                   "PySide6 before the CLI, a Python filter on every Qt event)", st["legacy_ours"], st["legacy_bare"],
                   unit="s", goal_kind="info", ratio=st["legacy_ratio"],
                   note=f"paired ratios {st['legacy_lo']:.2f}–{st['legacy_hi']:.2f}×"),
        ]
        notes.append(f"Cold start: {rounds} interleaved rounds of fresh processes (bare QMainWindow, then "
                     "`prismq-desktop --data-dir D gui` through the CLI's main, each with both instruments), on a data "
                     "dir made by one unmeasured start, with the package's bytecode compiled first as an install has "
                     "it; from just before Popen to the first QEvent.Paint of the QMainWindow; medians, the ratio "
                     f"is the median of the paired ratios (range {st['window_lo']:.2f}–{st['window_hi']:.2f}×). "
                     "Each child (`python -c START_CHILD`) imports only what its side needs; PrismQ's imports the CLI "
                     "before PySide6, as the command does; the probe is an application-wide event filter until the "
                     "first event of a QMainWindow, then a filter on that window only (the app has no "
                     "application-wide filter). The earlier runs' child was this module: the bare side paid for "
                     "asyncio, sqlite3, statistics… and a Python call per Qt event; PrismQ's side had every module "
                     "the CLI imports inspected by PySide6 (that instrument, same run: "
                     f"{st['legacy_ratio']:.2f}×, {st['legacy_lo']:.2f}–{st['legacy_hi']:.2f}×; the process's CPU "
                     f"time at the first paint: {st['legacy_cpu_ratio']:.2f}× with it, "
                     f"{st['window_cpu_ratio']:.2f}× with this one).")
    if "history" in parts:
        n_runs = 100_000 if opts.quick else 1_000_000
        hist = worker("--worker", "history", "--runs", str(n_runs))
        load.append(os.getloadavg()[0])
        figures += [
            figure("history: indexing noted runs for the name filter, per 1,000 runs", hist["index"] / n_runs * 1e6,
                   None, unit="ms", goal_kind="info", note="done while the window is idle, 2,000 a loop turn"),
            figure(f"history of {n_runs:,} runs: first paint", hist["first_paint"], hist["raw_page"], unit="ms",
                   goal=300, goal_kind="max_value"),
            figure("history filter, name contains \"job_17\" (2% of the runs): first page shown", hist["filter"],
                   hist["raw_filter"], unit="ms", goal=50, goal_kind="max_value"),
            figure("history filter \"job_17\": exact count shown (after the first page)", hist["filter_counted"],
                   hist["raw_filter"], unit="ms", goal_kind="info"),
            figure("history filter \"job_\" (every run matches): first page shown", hist["common"], hist["raw_common"],
                   unit="ms", goal_kind="info"),
            figure("history filter \"job_\": exact count shown", hist["common_counted"], hist["raw_common"], unit="ms",
                   goal_kind="info"),
            figure("history filter \"_9\" (2 characters: no trigram, a LIKE scan)", hist["short"], hist["raw_short"],
                   unit="ms", goal_kind="info"),
        ]
        notes.append(f"History: {n_runs:,} runs stored with RunRegistry.insert in batches of 5,000 "
                     f"({hist['fill']:.0f} s, {hist['db_mb']:.0f} MB with the trigram index); first paint = "
                     "HistoryModel(registry) + QTableView.show() + processEvents(), after one throwaway table view "
                     "(Qt's first-widget cost belongs to the window's start); filter, first page shown = set_filter() "
                     "+ processEvents() up to the start of the exact count (a count of the trigram index capped at "
                     "4,000 matches, then the page by a scan in sort order, or from the index under the cap; the label "
                     "says \"at least 4,000 runs, counting…\"); exact count shown = until processEvents() returns with "
                     "the full phrase count; raw = the same page and count with the plain LIKE scan the index replaced.")
    notes.append("Load average (1 min) at the start and after each part: " + ", ".join(f"{x:.2f}" for x in load)
                 + " (2 cores shared with other sessions).")
    title = "Window under load"
    print_table(title, figures, notes)
    path = write_result("bench_gui", title, figures, quick=opts.quick, notes=notes)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
