"""Run every `benchmarks/bench_*.py` and write `benchmarks/RESULTS.md` from their JSON results.

Each benchmark runs as a subprocess of its own (with this interpreter), prints its table, and
writes `benchmarks/out/<bench>.json`; a benchmark that fails or times out is reported as such
and does not stop the others. Benchmarks are found by name (`benchmarks/bench_*.py`, in
alphabetical order): bench_drain (output firehose), bench_peers (/bin/true vs a bare
asyncio loop and task-spooler), bench_queue (orchestrator submit and
trivial-run throughput), bench_soak (10 minutes of schedules: memory, fds and threads stay
flat), bench_spawn (spawn → first line).

    python benchmarks/run_all.py            # full size, writes benchmarks/RESULTS.md
    python benchmarks/run_all.py --quick    # smoke run, writes benchmarks/out/RESULTS-quick.md
"""

from __future__ import annotations

import argparse
import collections
import glob
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import HEADERS, HERE, OUT_DIR, fmt_value, table_rows  # noqa: E402

#: Benchmarks that run longer than the default timeout on purpose (full size only).
MIN_TIMEOUT = {"bench_soak": 900.0}


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def machine() -> dict[str, str]:
    cpuinfo = _read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    mhz = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("cpu MHz")), "")
    os_name = ""
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip().strip('"')
    try:
        import psutil

        ram = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
        physical = psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001 - the description must never stop the report
        ram, physical = "?", None
    cores = f"{os.cpu_count()} logical" + (f", {physical} physical" if physical else "")
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return {
        "CPU": (model or platform.processor() or platform.machine()) + (f" ({float(mhz):.0f} MHz)" if mhz else ""),
        "Cores": cores,
        "RAM": ram,
        "Python": f"{platform.python_version()} ({platform.python_implementation()}), {sys.executable}",
        "OS": f"{os_name or platform.system()} — {platform.system()} {platform.release()} {platform.machine()}",
        "Load average before the run": load,
    }


def code_version() -> str:
    """The commit measured, and whether the engine's working tree differed from it."""
    root = os.path.dirname(HERE)
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "prismq_desktop"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + (" + uncommitted changes under prismq_desktop/" if dirty else "")


def source_digest() -> str:
    """A digest of the engine's sources, to notice when they change while the benchmarks run."""
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(os.path.dirname(HERE), "prismq_desktop", "**", "*.py"), recursive=True)):
        h.update(path.encode())
        try:
            with open(path, "rb") as fh:
                h.update(fh.read())
        except OSError:
            h.update(b"?")
    return h.hexdigest()[:12]


def run_bench(path: str, quick: bool, timeout: float) -> dict[str, Any]:
    """Run one benchmark, echoing its output; return how it went."""
    name = os.path.splitext(os.path.basename(path))[0]
    result_path = os.path.join(OUT_DIR, f"{name}.json")
    if os.path.exists(result_path):
        os.remove(result_path)  # never report a stale result for a benchmark that fails now
    cmd = [sys.executable, path, *(["--quick"] if quick else [])]
    print(f"\n=== {name} {'(quick) ' if quick else ''}===", flush=True)
    tail: collections.deque[str] = collections.deque(maxlen=40)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=HERE)
    assert proc.stdout is not None
    timed_out = False
    deadline = started + timeout
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        tail.append(line.rstrip("\n"))
        if time.perf_counter() > deadline:
            timed_out = True
            proc.kill()
            break
    proc.stdout.close()
    try:
        rc = proc.wait(timeout=max(1.0, deadline - time.perf_counter()))
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        rc = proc.wait()
    elapsed = time.perf_counter() - started
    doc: dict[str, Any] | None = None
    if rc == 0 and os.path.exists(result_path):
        with open(result_path, encoding="utf-8") as fh:
            doc = json.load(fh)
    return {"name": name, "rc": rc, "timed_out": timed_out, "elapsed": elapsed, "doc": doc, "tail": list(tail)}


def markdown_table(figures: list[dict[str, Any]]) -> list[str]:
    rows = table_rows(figures)
    for row, fig in zip(rows, figures, strict=True):
        if fig["met"] is False:
            row[5] = "**NO**"
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---", *["---:"] * 4, ":---:"]) + "|"]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out


def missed(fig: dict[str, Any]) -> str:
    """A missed goal for the summary: the figure, what it reached, and the goal (in the goal's own terms)."""
    if fig["goal"] is None:
        return fig["figure"]
    if fig["goal_kind"] == "max_value" and fig["engine"] is not None:
        return f"{fig['figure']} ({fmt_value(fig['engine'], fig['unit'])} against ≤ {fmt_value(fig['goal'], fig['unit'])})"
    if fig["ratio"] is not None:
        return f"{fig['figure']} ({fig['ratio']:.2f}× against {fig['goal']:.2f}×)"
    return fig["figure"]


def write_report(path: str, results: list[dict[str, Any]], quick: bool, info: dict[str, str], took: float) -> None:
    lines = [
        "# PrismQ Desktop benchmarks" + (" (quick smoke run — not representative)" if quick else ""),
        "",
        f"Generated by `benchmarks/run_all.py{' --quick' if quick else ''}` on "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %z')} in {took:.0f} s. Raw per-sample figures are in "
        "`benchmarks/out/*.json` (not committed).",
        "",
        "Every engine figure is measured in the same run as its raw baseline, interleaved with it, so the ratio "
        "is meaningful even though absolute times drift between machines and runs.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    goals = [f for r in results if r["doc"] for f in r["doc"]["figures"] if f["met"] is not None]
    met = sum(1 for f in goals if f["met"])
    failed = [r["name"] for r in results if r["doc"] is None]
    lines += ["", "## Summary", ""]
    if "WARNING" in info.get("Code", ""):
        lines.append("- **The engine's sources changed during this run: the figures mix two versions. Run again.**")
    lines.append(f"- Goals met: **{met} of {len(goals)}**.")
    lines += [f"- Missed: {missed(f)}." for f in goals if not f["met"]]
    if failed:
        lines.append(f"- Benchmarks that did not produce results: {', '.join(failed)}.")
    for r in results:
        doc = r["doc"]
        lines += ["", f"## {doc['title'] if doc else r['name']}", "", f"`benchmarks/{r['name']}.py` — {r['elapsed']:.0f} s"]
        if doc is None:
            why = "timed out" if r["timed_out"] else f"exit code {r['rc']}"
            lines += ["", f"**Failed ({why}).** Last lines of its output:", "", "```", *r["tail"], "```"]
            continue
        lines += ["", *markdown_table(doc["figures"])]
        notes = list(doc.get("notes", []))  # per-figure notes stay in the JSON
        if notes:
            lines += ["", *[f"- {n}" for n in notes]]
    lines.append("")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark and write RESULTS.md.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and counts (smoke run)")
    parser.add_argument("--only", action="append", default=[], help="run only this benchmark (e.g. bench_spawn)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per benchmark (default 600)")
    parser.add_argument("--output", help="report path (default RESULTS.md, or out/RESULTS-quick.md with --quick)")
    opts = parser.parse_args()

    os.makedirs(OUT_DIR, exist_ok=True)
    benches = sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    if opts.only:
        wanted = {os.path.splitext(os.path.basename(n))[0] for n in opts.only}
        benches = [b for b in benches if os.path.splitext(os.path.basename(b))[0] in wanted]
    if not benches:
        print("no benchmarks found", file=sys.stderr)
        return 2
    info = machine()
    info["Code"] = code_version()
    digest_before = source_digest()
    started = time.perf_counter()
    results = []
    for bench in benches:
        if results and hasattr(os, "sync"):
            os.sync()  # let one benchmark's file writes land before the next one measures
            time.sleep(1.0)
        name = os.path.splitext(os.path.basename(bench))[0]
        timeout = opts.timeout if opts.quick else max(opts.timeout, MIN_TIMEOUT.get(name, 0.0))
        results.append(run_bench(bench, opts.quick, timeout))
    took = time.perf_counter() - started
    digest_after = source_digest()
    info["Code"] += f" (sources {digest_before})"
    if digest_after != digest_before:
        info["Code"] += (
            f" — **WARNING: prismq_desktop/ changed during the run (sources {digest_after} at the end); "
            "the figures mix two versions of the engine, run again**"
        )
        print("WARNING: prismq_desktop/ changed while the benchmarks ran; the results mix versions", file=sys.stderr)
    report = opts.output or os.path.join(OUT_DIR if opts.quick else HERE, "RESULTS-quick.md" if opts.quick else "RESULTS.md")
    write_report(report, results, opts.quick, info, took)
    print(f"\nwrote {report}")
    return 0 if all(r["doc"] is not None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
