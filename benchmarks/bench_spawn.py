"""Spawn → first output line latency: RunEngine against raw `asyncio.create_subprocess_exec`.

The child is `sys.executable -c "print('ready')"` (and the same with `-S`). Each sample:

- raw:    time from just before `create_subprocess_exec` until `stdout.readline()` returns
          the line (the process is then reaped, outside the timing);
- engine: time from just before `engine.start(spec)` until a `subscribe_sync` callback sees
          the first `OutputBatch` of that run holding the line (the run is then awaited,
          outside the timing).

Raw and engine samples alternate (A/B, and B/A on the next round, so neither side always goes
first) after a few warm-ups of each, separately for ASYNC and THREADED mode, all in one process
on one event loop. Both children get the same environment (the engine's child defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import child_env, figure, median, percentile, print_table, write_result  # noqa: E402

from prismq_desktop.core import OutputBatch, RunEngine, RunMode, RunSpec  # noqa: E402

CODE = "print('ready')"
CODE_KEEP_RUNNING = "import time; print('ready'); time.sleep(10)"
LINE = b"ready\n"
GOAL = 1.15
SPLIT_MS = 1.0


async def raw_once(args: tuple[str, ...], env: dict[str, str], stop: bool) -> float:
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(sys.executable, *args, stdout=asyncio.subprocess.PIPE, env=env)
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    t1 = time.perf_counter()
    if stop:
        proc.kill()
    await proc.stdout.read()  # drain before waiting (a 3.11 wait-after-kill can hang otherwise)
    await proc.wait()
    if line != LINE:
        raise RuntimeError(f"raw child printed {line!r}")
    return t1 - t0


class FirstLine:
    """A subscribe_sync callback that timestamps the first batch holding the line, per run."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.first_any: dict[int, float] = {}  # first batch with any stdout bytes, line complete or not
        self._buf: dict[int, bytes] = {}
        self._waiters: dict[int, asyncio.Future[float]] = {}

    def __call__(self, event: object) -> None:
        if not isinstance(event, OutputBatch) or event.run_id in self.seen:
            return
        data = self._buf.get(event.run_id, b"") + b"".join(c.data for c in event.chunks if c.stream.value == "o")
        if data:
            self.first_any.setdefault(event.run_id, time.perf_counter())
        if LINE not in data:
            self._buf[event.run_id] = data
            return
        now = time.perf_counter()
        self._buf.pop(event.run_id, None)
        self.seen[event.run_id] = now
        fut = self._waiters.pop(event.run_id, None)
        if fut is not None and not fut.done():
            fut.set_result(now)

    async def wait_for(self, run_id: int, timeout: float = 30.0) -> float:
        if run_id in self.seen:
            return self.seen[run_id]
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters[run_id] = fut
        return await asyncio.wait_for(fut, timeout)


async def engine_once(engine: RunEngine, probe: FirstLine, spec: RunSpec, mode: RunMode, stop: bool) -> tuple[float, float]:
    """(start → batch completing the line, start → first batch with any stdout)."""
    t0 = time.perf_counter()
    handle = await engine.start(spec, mode=mode)
    t1 = await probe.wait_for(handle.id)
    if stop:
        handle.cancel(graceful=False)
    run = await handle.wait(timeout=30)
    if not stop and run.exit_code != 0:
        raise RuntimeError(f"engine run {handle.id} ended {run.outcome}")
    return t1 - t0, probe.first_any[handle.id] - t0


@dataclass(frozen=True)
class Variant:
    label: str
    args: tuple[str, ...]
    keeps_running: bool = False  # the child sleeps after the line; both sides kill it once the line is seen


VARIANTS = [
    Variant("python -c", ("-c", CODE)),
    Variant("python -S -c", ("-S", "-c", CODE)),
    Variant("python -S, keeps running", ("-S", "-c", CODE_KEEP_RUNNING), keeps_running=True),
]


async def measure(
    engine: RunEngine, probe: FirstLine, variant: Variant, mode: RunMode, n: int, warmup: int
) -> tuple[list[float], list[float], list[float]]:
    env = child_env()
    spec = RunSpec(target=sys.executable, args=variant.args, kind="executable")
    stop = variant.keeps_running
    raw: list[float] = []
    eng: list[tuple[float, float]] = []
    for _ in range(warmup):
        await raw_once(variant.args, env, stop)
        await engine_once(engine, probe, spec, mode, stop)
    for i in range(n):
        if i % 2 == 0:
            raw.append(await raw_once(variant.args, env, stop))
            eng.append(await engine_once(engine, probe, spec, mode, stop))
        else:
            eng.append(await engine_once(engine, probe, spec, mode, stop))
            raw.append(await raw_once(variant.args, env, stop))
    return raw, [e[0] for e in eng], [e[1] for e in eng]


async def main_async(n: int, warmup: int, variants: list[Variant]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="prismq-bench-spawn-") as home:
        async with RunEngine(home) as engine:
            probe = FirstLine()
            engine.bus.subscribe_sync(probe)
            for variant in variants:
                for mode in (RunMode.ASYNC, RunMode.THREADED):
                    raw, eng, first_any = await measure(engine, probe, variant, mode, n, warmup)
                    results[f"{variant.label}|{mode.value}"] = {"raw": raw, "engine": eng, "first_any": first_any}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples, for a smoke run")
    parser.add_argument("-n", type=int, default=None, help="samples per side (default 50, quick 8)")
    parser.add_argument("--no-S", dest="with_s", action="store_false", help="only the plain `python -c` variant")
    opts = parser.parse_args()
    n = opts.n or (8 if opts.quick else 50)
    warmup = 1 if opts.quick else 3
    variants = VARIANTS if opts.with_s else VARIANTS[:1]

    started = time.perf_counter()
    results = asyncio.run(main_async(n, warmup, variants))
    elapsed = time.perf_counter() - started

    figures = []
    details: dict[str, Any] = {"n": n, "warmup": warmup, "samples_ms": {}}
    for key, samples in results.items():
        label, mode = key.split("|")
        raw_ms = [x * 1000 for x in samples["raw"]]
        eng_ms = [x * 1000 for x in samples["engine"]]
        any_ms = [x * 1000 for x in samples["first_any"]]
        details["samples_ms"][key] = {"raw": raw_ms, "engine": eng_ms, "engine_first_any_batch": any_ms}
        figures.append(figure(f"{label}, {mode}: median", median(eng_ms), median(raw_ms), unit="ms", goal=GOAL))
        figures.append(
            figure(f"{label}, {mode}: p90", percentile(eng_ms, 90), percentile(raw_ms, 90), unit="ms", goal_kind="info")
        )
        # The child's print() is two writes under PYTHONUNBUFFERED ("ready", then "\\n"); when the engine's
        # first read catches only the first, the line is completed by a later batch.
        split = [e - a for e, a in zip(eng_ms, any_ms, strict=True) if e - a > SPLIT_MS]
        figures.append(
            figure(f"{label}, {mode}: line split over 2 batches (of {len(eng_ms)})", len(split), None, goal_kind="info")
        )
        figures.append(
            figure(
                f"{label}, {mode}: extra wait when split (median)",
                median(split) if split else None,
                None,
                unit="ms",
                goal_kind="info",
            )
        )
    notes = [
        f"{n} samples per side after {warmup} warm-ups, raw and engine alternating (A/B then B/A); "
        f'{elapsed:.1f} s in all. Child: `sys.executable -c "{CODE}"` ({sys.executable}); '
        "both sides give it the engine's child environment (PYTHONUNBUFFERED=1, PYTHONUTF8=1).",
        "raw = `asyncio.create_subprocess_exec(..., stdout=PIPE)` then `stdout.readline()`; "
        "engine = `engine.start(spec)` until a subscribe_sync callback gets the `OutputBatch` that completes "
        "the line.",
        '"keeps running": the child prints the line then sleeps; each side kills it once the line is seen '
        "(the case of a long-running program's first line).",
        "The goal applies to the median ratio; p90 is shown for information.",
        '"line split over 2 batches": samples where the first OutputBatch held only part of the line (print() '
        "writes the text and the newline separately when PYTHONUNBUFFERED=1) and the rest came in a later "
        f'batch (> {SPLIT_MS:g} ms later); "extra wait" is how much later.',
    ]
    title = "Spawn → first line latency"
    print_table(title, figures, notes)
    path = write_result("bench_spawn", title, figures, quick=opts.quick, notes=notes, details=details)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
