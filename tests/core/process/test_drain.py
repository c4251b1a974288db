"""The output path under a firehose (issue #17): whole asyncio reads, lazily counted tail, byte-exact logs.

Real children, real pipes, real log files; no timed assertions. Leftover processes are checked
with psutil.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
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
