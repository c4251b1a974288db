"""The output path under a firehose (issue #17): whole asyncio reads, lazily counted tail, byte-exact logs.

Real children, real pipes, real log files; no timed assertions. Leftover processes are checked
with psutil.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys

import psutil
import pytest

from prismq_desktop.core import OutcomeKind, OutputBatch, RunEngine, RunMode, RunSpec, Stream, read_log

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX pipes")
MODES = [RunMode.ASYNC, RunMode.THREADED]

# stdout: a text of lines with multibyte characters, invalid bytes and \r redraws, written in
# 8191-byte slices (so characters straddle the writes), ending with a long line without newline;
# stderr: a numbered line every 100 slices.
PAYLOAD = r"""
def payload(n):
    out = []
    for i in range(n):
        out.append(("é€x" * (i % 700)).encode() + b"\n")
        if i % 1000 == 0:
            out.append(b"\xff\xfe bad %d\r 50%%\r100%% %d\n" % (i, i))
    return b"".join(out) + b"tail without newline " + b"z" * 100000
"""
MIXED = PAYLOAD + r"""
import os, sys
data = payload(int(sys.argv[1]))
for k, at in enumerate(range(0, len(data), 8191)):
    os.write(1, data[at:at + 8191])
    if k % 100 == 0:
        os.write(2, b"err %d\n" % k)
"""
_ns: dict = {}
exec(PAYLOAD, _ns)
expected_stdout = _ns["payload"]


def stream_bytes(path: str, stream: Stream) -> bytes:
    return b"".join(rec.data for rec, _ in read_log(path) if rec.stream is stream)


_BEFORE: set[int] = set()


@pytest.fixture(autouse=True)
def _children_before() -> None:
    """What already ran before the test (a session's redis-server, say) is not the test's."""
    _BEFORE.clear()
    _BEFORE.update(p.pid for p in psutil.Process().children(recursive=True))


def leftovers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if p.pid not in _BEFORE and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("mode", MODES)
def test_mixed_firehose_is_kept_byte_exact_and_seen_whole(tmp_path, mode):
    n = 12000  # ~25 MB
    seen = {Stream.STDOUT: hashlib.sha256(), Stream.STDERR: hashlib.sha256()}
    sizes = {Stream.STDOUT: 0, Stream.STDERR: 0}

    def on_event(ev: object) -> None:
        if isinstance(ev, OutputBatch):
            assert not ev.dropped_bytes
            for chunk in ev.chunks:
                seen[chunk.stream].update(chunk.data)
                sizes[chunk.stream] += len(chunk.data)

    async def main():
        async with RunEngine(tmp_path / "home", tail_lines=1200, max_line_chars=1000) as engine:
            engine.bus.subscribe_sync(on_event)
            return await engine.run(RunSpec(sys.executable, ("-c", MIXED, str(n)), kind="executable"), mode=mode)

    handle = asyncio.run(main())
    assert handle.outcome is not None and handle.outcome.kind is OutcomeKind.SUCCEEDED
    want_out = expected_stdout(n)
    want_err = b"".join(b"err %d\n" % k for k in range(0, -(-len(want_out) // 8191), 100))
    path = handle.run.log_path
    assert stream_bytes(path, Stream.STDOUT) == want_out
    assert stream_bytes(path, Stream.STDERR) == want_err
    assert seen[Stream.STDOUT].hexdigest() == hashlib.sha256(want_out).hexdigest() and sizes[Stream.STDOUT] == len(want_out)
    assert seen[Stream.STDERR].hexdigest() == hashlib.sha256(want_err).hexdigest()
    tail = handle.capture.tail_lines()
    last = "tail without newline " + "z" * 100000
    assert tail[-1] == (Stream.STDOUT, f"{last[:1000]}… [{len(last) - 1000} more characters in the log file]")
    out_lines = [line for s, line in tail if s is Stream.STDOUT]
    assert "100% 11000" in out_lines and not any("bad 11000" in line for line in out_lines)  # \r: the last segment
    assert out_lines[-2] == "é€x" * (11999 % 700) and out_lines[-3] == "é€x" * (11998 % 700)  # whole characters
    assert len(tail) == 1200  # the last line was finished with the run: it is in the tail itself
    assert sum(1 for s, _ in tail if s is Stream.STDERR) >= 1  # stderr lines keep their place in the tail
    assert not leftovers()


def test_sparse_output_is_seen_while_the_child_runs(tmp_path):
    """A line the child wrote is seen while the child still runs: it waits for a file the test
    creates only once the engine showed the line (no sleep decides it)."""
    flag = tmp_path / "go"
    child = f"import os,time\nprint('ready', flush=True)\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.01)\nprint('bye')"

    async def main():
        async with RunEngine(tmp_path / "home") as engine:
            seen: list[str] = []

            def on_event(ev: object) -> None:
                if isinstance(ev, OutputBatch):
                    seen.extend(c.text for c in ev.chunks)
                    if "ready" in "".join(seen):
                        flag.touch()

            engine.bus.subscribe_sync(on_event)
            handle = await engine.start(RunSpec(sys.executable, ("-c", child), kind="executable"), mode=RunMode.ASYNC)
            return await handle.wait(60), "".join(seen)

    run, text = asyncio.run(main())
    assert run.outcome is not None and run.outcome.kind is OutcomeKind.SUCCEEDED, run.outcome
    assert text == "ready\nbye\n"
    assert not leftovers()


def _filled_pipe(nbytes: int) -> tuple[int, int, bytes]:
    """A real pipe widened to 1 MiB holding `nbytes` of numbered lines (written before any reader)."""
    from prismq_desktop.core.process.pipes import PIPE_SIZE, widen_pipe

    r, w = os.pipe()
    widen_pipe(r)
    data = b"".join(b"%07d\n" % i for i in range(nbytes // 8))
    assert len(data) <= PIPE_SIZE
    os.set_blocking(w, False)
    assert os.write(w, data) == len(data)  # whole: the pipe holds it
    return r, w, data


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="F_SETPIPE_SZ")
def test_a_loop_wakeup_reads_the_pipe_empty_but_bounded_and_lets_the_loop_run(monkeypatch):
    from prismq_desktop.core.process import pipes

    monkeypatch.setattr(pipes, "READ_SIZE", 64 * 1024)
    monkeypatch.setattr(pipes, "WAKEUP_BYTES", 256 * 1024)
    r, w, data = _filled_pipe(1 << 20)
    events: list[tuple[str, int]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        def feed(stream: Stream, piece: bytes) -> None:
            events.append(("read", len(piece)))
            got.append(piece)

        pipe = pipes.LoopPipe(loop, r, Stream.STDOUT, feed).start()

        def tick() -> None:  # another callback of the loop: runs between wake-ups
            events.append(("tick", 0))
            if not pipe.eof.done():
                if sum(len(p) for p in got) == len(data):
                    os.close(w)  # everything read: the end of the pipe
                loop.call_soon(tick)

        loop.call_soon(tick)
        await asyncio.wait_for(pipe.eof, 60)

    got: list[bytes] = []
    try:
        asyncio.run(main())
    finally:
        os.close(r)
    assert b"".join(got) == data  # every byte, in order
    wakeups: list[list[int]] = [[]]
    for kind, size in events:
        if kind == "tick":
            wakeups.append([])
        else:
            wakeups[-1].append(size)
    reads = [w for w in wakeups if w]
    assert reads[0] == [64 * 1024] * 4  # the first wake-up read the full pipe until its bound...
    assert len(reads) == 4 and all(sum(w) <= 256 * 1024 for w in reads)  # ...and each later one too, with the loop between


def test_a_feed_that_fails_is_logged_once_and_the_pipe_still_drained(caplog):
    """The child writes 8 MiB (8 pipes full): it must finish even though the capture broke at once."""
    from prismq_desktop.core.process import pipes

    writer = "import os\nfor _ in range(128): os.write(1, b'x' * 65536)\n"
    calls: list[int] = []

    def feed(stream: Stream, piece: bytes) -> None:
        calls.append(len(piece))
        raise RuntimeError("capture broke")

    async def main() -> int:
        loop = asyncio.get_running_loop()
        proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, bufsize=0)
        assert proc.stdout is not None
        try:
            pipe = pipes.LoopPipe(loop, proc.stdout.fileno(), Stream.STDOUT, feed).start()
            await asyncio.wait_for(pipe.eof, 60)
            return await asyncio.wait_for(asyncio.to_thread(proc.wait), 60)
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    rc = asyncio.run(main())
    assert rc == 0 and len(calls) == 1
    assert sum("could not be taken in" in r.getMessage() for r in caplog.records) == 1
    assert not leftovers()


def test_the_allocator_is_tuned_once_on_glibc():
    import platform

    from prismq_desktop.core.process import pipes

    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert pipes.tune_allocator() is glibc
    assert pipes.tune_allocator() is glibc  # idempotent
