"""The one-thread pipe reader of ASYNC runs (core/process/mux.py): real children, real pipes, real logs.

What must hold whatever the reader does: every byte of each stream in the log and seen by a
subscriber, in order; a run's end announced only after its pipes are drained; one thread for
all of an engine's runs and none once they are gone; a child that closes stdout early, a
daemonized grandchild holding the pipe, EMFILE, a stalled loop. No timed assertions.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import sys
import threading
import time

import psutil
import pytest

from prismq_desktop.core import OutcomeKind, OutputBatch, RunChanged, RunEngine, RunMode, RunSpec, Stream, read_log
from prismq_desktop.core.process import mux as mux_module
from prismq_desktop.core.process.executor import pipe_mux_wanted
from prismq_desktop.core.process.local import SubprocessWrapper

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX: the mux is the ASYNC path there")

# random-looking bytes (a seeded generator, so the test knows them) written in odd-sized pieces
# to both streams, interleaved, flushed each time: binary, invalid UTF-8, no line structure
WRITER = r"""
import os, random, sys
rng = random.Random(int(sys.argv[1]))
n = int(sys.argv[2])
for i in range(n):
    os.write(1, rng.randbytes(rng.randrange(1, 70000)))
    if i % 3 == 0:
        os.write(2, rng.randbytes(rng.randrange(1, 5000)))
"""


@pytest.fixture(autouse=True)
def _mux_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain asyncio loops (these tests') read pipes on the loop by default: force the mux."""
    monkeypatch.setenv("PRISMQ_PIPE_MUX", "1")


def expected(seed: int, n: int) -> dict[Stream, bytes]:
    import random

    rng = random.Random(seed)
    out, err = [], []
    for i in range(n):
        out.append(rng.randbytes(rng.randrange(1, 70000)))
        if i % 3 == 0:
            err.append(rng.randbytes(rng.randrange(1, 5000)))
    return {Stream.STDOUT: b"".join(out), Stream.STDERR: b"".join(err)}


def logged(path: str, stream: Stream) -> bytes:
    return b"".join(rec.data for rec, _ in read_log(path) if rec.stream is stream)


def mux_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prismq-pipe-mux" and t.is_alive()]


def wrapper(engine: RunEngine) -> SubprocessWrapper:
    assert isinstance(engine.executor, SubprocessWrapper)
    return engine.executor


def test_many_runs_byte_exact_in_order_one_thread_batched_posts(tmp_path):
    """12 concurrent binary writers: every byte per stream in the log and to a subscriber, in order;
    one reader thread; fewer loop calls than reads; the end only after the last byte."""
    runs = {seed: 60 + seed for seed in range(12)}
    seen: dict[int, dict[Stream, bytearray]] = {}
    ended_with: dict[int, int] = {}
    threads_seen: list[int] = []

    def on_event(ev: object) -> None:
        if isinstance(ev, OutputBatch):
            assert not ev.dropped_bytes
            per = seen.setdefault(ev.run_id, {Stream.STDOUT: bytearray(), Stream.STDERR: bytearray()})
            for chunk in ev.chunks:
                per[chunk.stream] += chunk.data
        elif isinstance(ev, RunChanged) and ev.kind == "finished":
            per = seen.get(ev.run.id, {})
            ended_with[ev.run.id] = sum(len(b) for b in per.values())
            threads_seen.append(len(mux_threads()))

    wait_no_mux_threads()

    async def main() -> None:
        async with RunEngine(tmp_path / "home", mode=RunMode.ASYNC, monitor_interval=60) as engine:
            assert mux_threads() == []  # nothing before the first run
            engine.bus.subscribe_sync(on_event)
            handles = {seed: await engine.start(RunSpec(sys.executable, ("-c", WRITER, str(seed), str(n))))
                       for seed, n in runs.items()}
            for h in handles.values():
                await h.wait()
            mux = wrapper(engine).mux
            assert mux is not None
            assert mux.posts < mux.reads, (mux.posts, mux.reads)
            for seed, h in handles.items():
                assert h.outcome is not None and h.outcome.kind is OutcomeKind.SUCCEEDED, h.outcome
                want = expected(seed, runs[seed])
                for stream in (Stream.STDOUT, Stream.STDERR):
                    assert logged(h.run.log_path, stream) == want[stream], (seed, stream)
                    assert bytes(seen[h.id][stream]) == want[stream], (seed, stream)
                # announced finished only once every byte had been handed to subscribers
                assert ended_with[h.id] == sum(len(b) for b in want.values())
        assert max(threads_seen) == 1

    asyncio.run(main())


def wait_no_mux_threads(timeout: float = 10.0) -> None:
    """Earlier tests' engines' reader threads end once idle (`IDLE`)."""
    deadline = time.monotonic() + timeout
    while mux_threads() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_no_thread_when_idle_and_close_stops_it(tmp_path, monkeypatch):
    monkeypatch.setattr(mux_module, "IDLE", 0.2)
    wait_no_mux_threads()

    async def main() -> None:
        engine = RunEngine(tmp_path / "home", mode=RunMode.ASYNC, monitor_interval=60)
        try:
            h = await engine.run(RunSpec(sys.executable, ("-c", "print('hi')")))
            assert h.stdout() == "hi"
            deadline = time.monotonic() + 10
            while mux_threads() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert mux_threads() == []  # ended by itself once idle
            # a new run after that starts a new thread and still works
            h2 = await engine.start(RunSpec(sys.executable, ("-c", "import time; print('a', flush=True); time.sleep(30)")))
            while h2.capture is None or not h2.capture.bytes_read[Stream.STDOUT]:
                await asyncio.sleep(0.01)
            assert len(mux_threads()) == 1
            if sys.platform.startswith("linux"):  # nicer than the loop's thread: the window comes first
                tid = mux_threads()[0].native_id
                assert os.getpriority(os.PRIO_PROCESS, tid) > os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            engine.cancel(h2.id)
            await h2.wait()
            assert h2.outcome is not None and h2.outcome.kind is OutcomeKind.CANCELLED
            assert h2.stdout() == "a"
        finally:
            await engine.shutdown()
        wrapper(engine).close()  # at once, not after IDLE
        assert mux_threads() == []

    asyncio.run(main())


def test_child_closing_stdout_early_keeps_running_and_is_heard(tmp_path):
    code = ("import os, sys, time\nprint('before', flush=True)\nos.close(1)\ntime.sleep(0.5)\n"
            "sys.stderr.write('after close\\n'); sys.stderr.flush()\ntime.sleep(0.2)\nsys.exit(3)\n")

    async def main() -> None:
        async with RunEngine(tmp_path / "home", mode=RunMode.ASYNC, monitor_interval=60) as engine:
            h = await engine.run(RunSpec(sys.executable, ("-c", code)))
            assert h.outcome is not None and h.outcome.kind is OutcomeKind.FAILED and h.exit_code == 3
            assert h.stdout() == "before"
            assert h.stderr() == "after close"

    asyncio.run(main())


def test_daemonized_grandchild_holding_the_pipe_is_stopped(tmp_path):
    """The root exits; a setsid'ed grandchild keeps stdout open: the run still ends (after the
    linger), the grandchild is killed, and its output up to then is kept."""
    code = ("import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        print('daemon up', flush=True)\n        time.sleep(60)\n    os._exit(0)\n"
            "time.sleep(0.3)\nprint('root done', flush=True)\n")

    async def main() -> None:
        async with RunEngine(tmp_path / "home", mode=RunMode.ASYNC, monitor_interval=60) as engine:
            h = await engine.run(RunSpec(sys.executable, ("-c", code)))
            assert h.outcome is not None and h.outcome.kind is OutcomeKind.SUCCEEDED, h.outcome
            assert sorted(h.stdout().splitlines()) == ["daemon up", "root done"]
            alive = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE
                     and "daemon up" in " ".join(p.cmdline())]
            assert alive == []

    asyncio.run(main())


def test_emfile_is_one_clear_outcome_and_nothing_is_wedged(tmp_path):
    async def main() -> None:
        async with RunEngine(tmp_path / "home", mode=RunMode.ASYNC, monitor_interval=60) as engine:
            await engine.run(RunSpec(sys.executable, ("-c", "print(1)")))  # registry, log dir, mux made
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            held: list[int] = []
            try:
                while True:  # every fd taken: the run's pipes cannot be made
                    try:
                        held.append(os.open(os.devnull, os.O_RDONLY))
                    except OSError:
                        break
                    if len(held) > 100_000:
                        pytest.fail("no fd limit to reach")
                h = await engine.run(RunSpec(sys.executable, ("-c", "print(2)")))
            finally:
                for fd in held:
                    os.close(fd)
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            assert h.outcome is not None
            assert h.outcome.kind is OutcomeKind.FAILED_TO_START, h.outcome
            assert "Too many open files" in (h.outcome.message or "")
            assert "\n" not in (h.outcome.message or "")
            h3 = await engine.run(RunSpec(sys.executable, ("-c", "print(3)")))  # room again: it works
            assert h3.outcome is not None and h3.outcome.kind is OutcomeKind.SUCCEEDED and h3.stdout() == "3"

    asyncio.run(main())


def test_stalled_loop_pauses_reading_and_loses_nothing(tmp_path, monkeypatch):
    """A loop that does not run for a while: the reader stops taking output past the cap (the
    child waits on its pipe, memory stays bounded), then catches up; every byte is kept."""
    monkeypatch.setattr(mux_module, "MAX_UNTAKEN", 1 << 20)
    seed, n = 7, 400  # ~14 MB

    async def main() -> None:
        async with RunEngine(tmp_path / "home", mode=RunMode.ASYNC, monitor_interval=60) as engine:
            got = bytearray()

            def on_event(ev: object) -> None:
                if isinstance(ev, OutputBatch):
                    for chunk in ev.chunks:
                        if chunk.stream is Stream.STDOUT:
                            got.extend(chunk.data)

            engine.bus.subscribe_sync(on_event)
            h = await engine.start(RunSpec(sys.executable, ("-c", WRITER, str(seed), str(n))))
            while not h.done:
                time.sleep(0.2)  # the loop is stalled (a long paint, say)
                await asyncio.sleep(0.01)
            mux = wrapper(engine).mux
            assert mux is not None and mux.pauses > 0
            want = expected(seed, n)
            assert h.outcome is not None and h.outcome.kind is OutcomeKind.SUCCEEDED
            assert logged(h.run.log_path, Stream.STDOUT) == want[Stream.STDOUT]
            assert logged(h.run.log_path, Stream.STDERR) == want[Stream.STDERR]
            assert bytes(got) == want[Stream.STDOUT]

    asyncio.run(main())


def test_sigkill_mid_write_keeps_what_was_written(tmp_path):
    code = "import os\nwhile True:\n    os.write(1, b'x' * 65536)\n"

    async def main() -> None:
        async with RunEngine(tmp_path / "home", mode=RunMode.ASYNC, monitor_interval=60) as engine:
            h = await engine.start(RunSpec(sys.executable, ("-c", code)))
            while h.run.pid is None or (h.capture is None or h.capture.bytes_read[Stream.STDOUT] < 4 << 20):
                await asyncio.sleep(0.01)
            os.kill(h.run.pid, 9)
            await h.wait()
            assert h.outcome is not None and h.outcome.kind is OutcomeKind.FAILED
            assert "SIGKILL" in (h.outcome.message or "")
            data = logged(h.run.log_path, Stream.STDOUT)
            assert len(data) >= 4 << 20 and data == b"x" * len(data)
            assert len(data) == h.capture.bytes_read[Stream.STDOUT]

    asyncio.run(main())


def test_pipe_mux_off_uses_the_loop(tmp_path, monkeypatch):
    """PRISMQ_PIPE_MUX=0: the loop reads the pipes as before (no thread), same output."""
    monkeypatch.setenv("PRISMQ_PIPE_MUX", "0")

    async def main() -> None:
        before = set(mux_threads())  # earlier tests' engines' threads, ending once idle
        async with RunEngine(tmp_path / "home", mode=RunMode.ASYNC, monitor_interval=60) as engine:
            h = await engine.run(RunSpec(sys.executable, ("-c", WRITER, "3", "30")))
            assert wrapper(engine).mux is None and set(mux_threads()) <= before
            assert logged(h.run.log_path, Stream.STDOUT) == expected(3, 30)[Stream.STDOUT]

    asyncio.run(main())


def test_log_digest_matches_for_a_text_firehose(tmp_path):
    """Lines, multibyte characters split across reads: the log's sha256 is the writer's."""
    code = "import sys\nfor i in range(300000):\n    sys.stdout.write(f'{i} é€ line\\n')\n"
    want = hashlib.sha256("".join(f"{i} é€ line\n" for i in range(300000)).encode()).hexdigest()

    async def main() -> None:
        async with RunEngine(tmp_path / "home", mode=RunMode.ASYNC, monitor_interval=60) as engine:
            h = await engine.run(RunSpec(sys.executable, ("-c", code), env={"PYTHONUTF8": "1"}))
            assert hashlib.sha256(logged(h.run.log_path, Stream.STDOUT)).hexdigest() == want
            assert h.stdout().splitlines()[-1] == "299999 é€ line"

    asyncio.run(main())


SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "contain.py")
TAG = "CONTAIN_TRIAL"


def tagged(tag: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(TAG) == tag and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("kind", ["grandchild", "ignorer", "setsid", "daemon", "blocked"])
@pytest.mark.parametrize("stop", ["cancel", "timeout", "pause-cancel"])
def test_stop_reaches_every_descendant_through_the_mux(tmp_path, kind, stop):
    """Cancel, a soft timeout, or a cancel while paused: nothing the run started is left alive
    (searched system-wide by the run's own environment tag) once the run has ended."""
    import uuid

    tag = uuid.uuid4().hex
    ready = tmp_path / "ready"
    spec = RunSpec(target=os.path.abspath(SCRIPT), args=(kind,), interpreter=sys.executable,
                   env={TAG: tag, "CONTAIN_READY": str(ready)}, grace_period=0.3,
                   soft_timeout=1.5 if stop == "timeout" else None)

    async def main() -> None:
        async with RunEngine(tmp_path / "home", mode=RunMode.ASYNC, monitor_interval=60) as engine:
            h = await engine.start(spec)
            if stop != "timeout":
                while not ready.exists():
                    await asyncio.sleep(0.01)
                if stop == "pause-cancel":
                    assert engine.pause(h.id)
                engine.cancel(h.id)
            await h.wait()
            want = OutcomeKind.TIMED_OUT if stop == "timeout" else OutcomeKind.CANCELLED
            assert h.outcome is not None and h.outcome.kind is want, h.outcome

    asyncio.run(main())
    survivors = tagged(tag)
    for proc in survivors:
        proc.kill()
    assert survivors == []


def test_window_loop_chooses_the_mux_and_asyncio_does_not(monkeypatch):
    """The default (no PRISMQ_PIPE_MUX): a loop not of asyncio's own (qasync's) gets the mux."""
    monkeypatch.delenv("PRISMQ_PIPE_MUX")

    class ForeignLoop(asyncio.SelectorEventLoop):  # as qasync's QEventLoop is: a SelectorEventLoop subclass
        pass

    ForeignLoop.__module__ = "qasync"
    plain, foreign = asyncio.new_event_loop(), ForeignLoop()
    try:
        assert not pipe_mux_wanted(plain)
        assert pipe_mux_wanted(foreign)
        monkeypatch.setenv("PRISMQ_PIPE_MUX", "0")
        assert not pipe_mux_wanted(foreign)
        monkeypatch.setenv("PRISMQ_PIPE_MUX", "1")
        assert pipe_mux_wanted(plain)
    finally:
        plain.close()
        foreign.close()
