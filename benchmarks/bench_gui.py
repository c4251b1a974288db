"""The window under load (Qt offscreen, a real qasync loop): a firehose pane and a 100,000-run history.

Firehose: a Python child prints 80-byte lines (block-buffered, like the drain benchmark's
line writer) into a following log pane of the real MainWindow. Figures: the child's wall
time against `writer | cat > /dev/null` measured before and after in the same run (goal
≤ 1.25×); event-loop stall = lateness of a 10 ms QTimer during the run (goals p99 ≤ 50 ms,
max ≤ 200 ms); the app's peak RSS for 50 MB and 200 MB of output (flat, ≤ 250 MB).

History: 100,000 runs in the registry; first paint = building the HistoryModel, showing the
table and processing the paint events (goal ≤ 300 ms); filter = typing a name filter until
the model has reset (goal ≤ 100 ms). Raw baseline: the same SQL page fetched directly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
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
            t0 = time.perf_counter()
            run_id = win.launch(spec, {"pattern": "long_running"})
            assert run_id is not None
            result = await orch.wait(run_id)
            wall = time.perf_counter() - t0
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
    for i in range(n_runs):
        run = reg.new_run(specs[i % 50], mode="async", created_at=time.time() - (n_runs - i))
        batch.append(run)
        if len(batch) == 5000:
            reg.insert(batch)
            batch = []
    reg.insert(batch)
    t0 = time.perf_counter()
    raw_page = reg.query(RunQuery(limit=HistoryModel.PAGE))
    raw_count = reg.count()
    raw = time.perf_counter() - t0
    assert len(raw_page) == HistoryModel.PAGE and raw_count == n_runs

    t0 = time.perf_counter()
    model = HistoryModel(reg)
    view = QTableView()
    view.setModel(model)
    view.resize(1200, 700)
    view.show()
    app.processEvents()
    first_paint = time.perf_counter() - t0

    t0 = time.perf_counter()
    model.set_filter("job_17")
    app.processEvents()
    filter_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    reg.query(RunQuery(text="job_17", limit=HistoryModel.PAGE))
    reg.count(RunQuery(text="job_17"))
    raw_filter = time.perf_counter() - t0
    matched = model.total
    view.close()
    reg.close()
    return {"first_paint": first_paint * 1000, "raw_page": raw * 1000, "filter": filter_time * 1000,
            "raw_filter": raw_filter * 1000, "matched": matched}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", choices=["firehose", "history"])
    ap.add_argument("--bytes", type=int, default=0)
    ap.add_argument("--runs", type=int, default=0)
    opts = ap.parse_args()
    if opts.worker == "firehose":
        print(repr(firehose(opts.bytes)))
        return 0
    if opts.worker == "history":
        print(repr(history(opts.runs)))
        return 0

    def worker(*args: str) -> dict[str, float]:
        res = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            raise SystemExit(f"worker {args} failed:\n{res.stderr[-3000:]}")
        return dict(eval(res.stdout.strip().splitlines()[-1]))  # noqa: S307 - our own repr of a dict of floats

    big, small = (40_000_000, 10_000_000) if opts.quick else (200_000_000, 50_000_000)
    n_runs = 20_000 if opts.quick else 100_000
    b1 = baseline(big)
    gui = worker("--worker", "firehose", "--bytes", str(big))
    b2 = baseline(big)
    gui_small = worker("--worker", "firehose", "--bytes", str(small))
    hist = worker("--worker", "history", "--runs", str(n_runs))
    base = (b1 + b2) / 2
    mb, smb = big // 1_000_000, small // 1_000_000
    figures = [
        figure(f"firehose {mb} MB: child wall time vs writer | cat", gui["wall"], base, unit="s", goal=1.25),
        figure("event-loop stall p99 (10 ms timer lateness)", gui["p99"], None, unit="ms", goal=50, goal_kind="max_value"),
        figure("event-loop stall max", gui["max"], None, unit="ms", goal=200, goal_kind="max_value"),
        figure(f"app peak RSS, {mb} MB of output", gui["rss"], None, unit="MB", goal=250, goal_kind="max_value"),
        figure(f"app peak RSS, {mb} MB vs {smb} MB", gui["rss"], gui_small["rss"], unit="MB", goal=1.10),
        figure("pane flushes / lines shown at the end", gui["flushes"], gui["shown"], goal_kind="info"),
        figure(f"history of {n_runs:,} runs: first paint", hist["first_paint"], hist["raw_page"], unit="ms",
               goal=300, goal_kind="max_value"),
        figure("history filter (name contains)", hist["filter"], hist["raw_filter"], unit="ms", goal=100,
               goal_kind="max_value"),
    ]
    notes = [
        "Qt offscreen platform, one qasync loop, the real MainWindow; the run is launched as from the launch panel "
        "and its pane follows the output.",
        f"Child: `python -c LINE_WRITER N` printing 80-byte lines, block-buffered on both sides; `writer | cat` "
        f"measured before and after the GUI run (mean {base:.2f} s).",
        "The stall is the lateness of a 10 ms PreciseTimer on the GUI loop during the run; RSS is the app process "
        "(not the child), sampled every 100 ms.",
        "History: first paint = HistoryModel(registry) + QTableView.show() + processEvents(); raw = the same first "
        "page and count with plain SQL.",
    ]
    title = "Window under load"
    print_table(title, figures, notes)
    path = write_result("bench_gui", title, figures, quick=opts.quick, notes=notes)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
