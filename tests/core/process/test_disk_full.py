"""A full disk while a run writes output: it never hangs, in every mode.

The data dir lives on a real 2 MiB tmpfs mounted by the test (CI runs as root); a child
writes more than that. The pipes must keep being drained, the run must end with its real
outcome plus a note saying how much output was saved, `history` must still read, and
`run` / `schedule add` with no room left must say so in one line and exit non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prismq_desktop.core import OutcomeKind, RunEngine, RunMode, RunRegistry, RunSpec, read_log
from prismq_desktop.core.paths import registry_path
from tests.core.test_cli import argv as cli_argv
from tests.core.test_cli import clean_env
from tests.helpers import tmpfs

PY = sys.executable


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs (needs root, as in CI); skipped only when it cannot be mounted."""
    with tmpfs(tmp_path / "disk", "2m") as where:
        yield where


def check_note(outcome, exit_code: int) -> None:
    assert outcome is not None
    assert outcome.kind is (OutcomeKind.SUCCEEDED if exit_code == 0 else OutcomeKind.FAILED)
    assert outcome.exit_code == exit_code
    assert outcome.message is not None and "was not saved: No space left on device" in outcome.message
    assert outcome.message.startswith("output after ") and " MB " in outcome.message


def fill(disk: Path) -> None:
    """Take every free byte of `disk` with a ballast file."""
    fd = os.open(disk / "ballast", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)


@pytest.mark.parametrize("mode", [RunMode.ASYNC, RunMode.THREADED, RunMode.LOCAL])
def test_a_full_disk_ends_the_run_with_a_note(small_disk: Path, scripts: Path, mode: RunMode) -> None:
    home = small_disk / "home"
    spec = RunSpec(str(scripts / "flood.py"), ("4", "3"), interpreter=PY)
    started = time.monotonic()
    if mode is RunMode.LOCAL:
        engine = RunEngine(home)
        try:
            handle = engine.run_blocking(spec, mode=mode)
        finally:
            engine.close()
    else:
        async def main():
            async with RunEngine(home) as engine:
                return await asyncio.wait_for(engine.run(spec, mode=mode), 30)

        handle = asyncio.run(main())
    assert time.monotonic() - started < 20
    run = handle.run
    check_note(run.outcome, 3)
    assert "done" in handle.stdout()  # everything was read, to the last line
    assert handle.stderr() == "err line"
    with RunRegistry(registry_path(home)) as reg:
        stored = reg.get(run.id)
    assert stored is not None and stored.outcome == run.outcome
    # the log holds whole records only, up to where the disk ran out
    assert run.log_path is not None
    saved = sum(len(rec.data) for rec, _ in read_log(run.log_path) if rec.stream.value == "o")
    assert 1_000_000 < saved < 2 * 1024 * 1024


def test_a_meta_record_says_so_once_space_returns(small_disk: Path, scripts: Path) -> None:
    from prismq_desktop.core.process.logfile import LogWriter, Stream

    ballast = small_disk / "ballast"
    log = LogWriter(str(small_disk / "run.log"))
    fill(small_disk)
    log.write(Stream.STDOUT, b"y" * 200_000)  # raises nothing
    assert log.error is not None and log.error.startswith("output after 0 bytes was not saved")
    log.meta(event="first")  # raises nothing either (it may fit in the file's last page, or not)
    ballast.unlink()
    log.write(Stream.STDOUT, b"later")  # not saved: the log would have a hole
    log.meta(event="end")
    log.close()
    records = list(read_log(str(small_disk / "run.log")))
    assert {rec.stream for rec, _ in records} == {Stream.META}  # no output after the failure, no torn record
    assert b'"incomplete"' in records[0][0].data and b"lost_bytes" in records[0][0].data
    assert sum(b'"incomplete"' in rec.data for rec, _ in records) == 1
    assert b'"end"' in records[-1][0].data


def test_cli_on_a_full_disk(small_disk: Path, scripts: Path) -> None:
    home = small_disk / "home"
    env = clean_env()
    res = subprocess.run(cli_argv(home, "run", "--python", PY, str(scripts / "flood.py"), "--", "4", "0"),
                         env=env, capture_output=True, timeout=60)
    assert res.returncode == 0
    err = res.stderr.decode()
    assert "Traceback" not in err and "was not saved: No space left on device" in err, err
    fill(small_disk)
    assert os.statvfs(small_disk).f_bavail == 0
    hist = subprocess.run(cli_argv(home, "history"), env=env, capture_output=True, text=True, timeout=60)
    assert hist.returncode == 0, hist.stderr
    assert "succeeded" in hist.stdout
    for args in (("run", "--python", PY, str(scripts / "flood.py"), "--", "1", "0"),
                 ("schedule", "add", "nightly", "--every", "1h", str(scripts / "flood.py"))):
        res = subprocess.run(cli_argv(home, *args), env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 1, res
        assert res.stderr.count("\n") == 1 and "no space left on the disk holding" in res.stderr, res.stderr


def test_registry_on_a_full_disk_is_read_only_and_says_so(small_disk: Path) -> None:
    """Opened on a full disk (no room for its -wal/-shm): every run readable, a write refused
    as "disk full" in one line, and once room is back it says to open it again (which works)."""
    from prismq_desktop.core.store import RegistryError

    home = small_disk / "home"
    with RunRegistry(registry_path(home)) as reg:
        reg.insert([reg.new_run(RunSpec("/w/kept.py", name=f"kept {i}")) for i in range(3)])
    fill(small_disk)
    with RunRegistry(registry_path(home)) as reg:
        assert sorted(r.name for r in reg.query()) == ["kept 0", "kept 1", "kept 2"]
        with pytest.raises(RegistryError, match="is full; free some space") as full:
            reg.insert([reg.new_run(RunSpec("/w/new.py"))])
        assert "\n" not in str(full.value)
        os.unlink(small_disk / "ballast")
        with pytest.raises(RegistryError, match="opened read-only because its disk was full; there is room now"):
            reg.insert([reg.new_run(RunSpec("/w/new.py"))])
    with RunRegistry(registry_path(home)) as reg:  # opened again with room: a normal registry
        reg.insert([reg.new_run(RunSpec("/w/new.py", name="new"))])
        assert len(reg.query()) == 4


# ------------------------------------------------------------------ the disk fills as the run ends
def last_records(path: str) -> list[dict]:
    import json

    return [json.loads(rec.data) for rec, _ in read_log(path) if rec.stream.value == "m"][-2:]


def check_end(run, exit_code: int) -> None:
    """The real outcome (the child's exit code) plus the note; the log ends saying it is incomplete."""
    check_note_small(run.outcome, exit_code)
    assert run.log_path is not None
    incomplete, end = last_records(run.log_path)
    assert incomplete["event"] == "incomplete" and "No space left on device" in incomplete["reason"]
    assert incomplete["lost_bytes"] > 0
    assert end == {"event": "end", "outcome": "failed", "exit_code": exit_code, "message": run.outcome.message}


def check_note_small(outcome, exit_code: int) -> None:
    assert outcome is not None and outcome.kind is OutcomeKind.FAILED and outcome.exit_code == exit_code
    assert outcome.message is not None and outcome.message.startswith("output after ")
    assert outcome.message.endswith("was not saved: No space left on device")


@pytest.mark.parametrize("mode", [RunMode.ASYNC, RunMode.THREADED, RunMode.LOCAL])
def test_the_disk_fills_as_the_run_ends(small_disk: Path, scripts: Path, mode: RunMode) -> None:
    """The child takes every free byte and exits: the log's end and the registry's final status
    are written in the room the data dir kept for them, at once (no patience timeout)."""
    home = small_disk / "home"
    spec = RunSpec(str(scripts / "fill_disk.py"), (str(home / "filler"), "5", "16"), interpreter=PY)
    started = time.monotonic()
    if mode is RunMode.LOCAL:
        engine = RunEngine(home)
        try:
            handle = engine.run_blocking(spec, mode=mode)
        finally:
            engine.close()
    else:
        async def main():
            engine = RunEngine(home)
            try:
                return await asyncio.wait_for(engine.run(spec, mode=mode), 30), engine
            finally:
                await engine.shutdown()

        handle, engine = asyncio.run(main())
    assert time.monotonic() - started < 8, "waited for the disk instead of using the reserve (the patience is 10 s)"
    assert engine.unsaved_errors == {}
    assert engine.reserve.released == 1  # the disk was full at the end: the reserve was what made room
    run = handle.run
    check_end(run, 5)
    with RunRegistry(registry_path(home)) as reg:
        stored = reg.get(run.id)
    assert stored is not None and stored.outcome == run.outcome and stored.status.value == "done"
    # room again: the next run's start makes the reserve again
    (home / "filler").unlink()
    assert not (home / ".space-reserve").exists()
    engine = RunEngine(home)
    try:
        assert engine.run_blocking(RunSpec(PY, ("-c", "pass"))).run.outcome.kind is OutcomeKind.SUCCEEDED
    finally:
        engine.close()
    assert (home / ".space-reserve").stat().st_size == 256 * 1024


def test_the_logs_disk_fills_as_the_run_ends(tmp_path: Path, scripts: Path) -> None:
    """Logs on a disk of their own (a small tmpfs at logs/), the registry elsewhere: that disk
    fills at the end; the log still ends saying so, and the registry has the real outcome."""
    home = tmp_path / "home"
    (home / "logs").mkdir(parents=True)
    with tmpfs(home / "logs", "1m") as logs:
        async def main():
            async with RunEngine(home) as engine:
                assert (logs / ".space-reserve").exists() and (home / ".space-reserve").exists()  # one per disk
                spec = RunSpec(str(scripts / "fill_disk.py"), (str(logs / "filler"), "6", "16"), interpreter=PY)
                handle = await asyncio.wait_for(engine.run(spec, mode=RunMode.ASYNC), 30)
                return handle, engine.unsaved_errors

        started = time.monotonic()
        handle, errors = asyncio.run(main())
        assert time.monotonic() - started < 8
        assert errors == {}
        check_end(handle.run, 6)
        assert (home / ".space-reserve").exists()  # the registry's disk never ran out
        with RunRegistry(registry_path(home)) as reg:
            stored = reg.get(handle.id)
        assert stored is not None and stored.outcome == handle.run.outcome


def test_the_log_end_record_takes_the_reserve_when_nothing_else_fits(small_disk: Path) -> None:
    """Deterministically at the edge: the log ends exactly on a block boundary and the disk is
    full, so the end record needs a new block; `last()` gives the reserve back and writes it."""
    from prismq_desktop.core.process.logfile import LogWriter, Stream
    from prismq_desktop.core.store.reserve import SpaceReserve

    reserve = SpaceReserve([small_disk])
    assert reserve.ensure() and (small_disk / ".space-reserve").stat().st_size == 256 * 1024
    path = small_disk / "run.log"
    log = LogWriter(str(path))
    block = os.statvfs(small_disk).f_bsize
    for _ in range(3):  # a record that ends the file on a block boundary (its header's length settles)
        gap = block - path.stat().st_size % block
        header = len(b"o %.6f %d\n" % (time.time(), gap)) + 1
        log.write(Stream.STDOUT, b"z" * (gap - header if gap > header else gap + block - header))
        if path.stat().st_size % block == 0:
            break
    assert path.stat().st_size % block == 0
    fill(small_disk)
    assert os.statvfs(small_disk).f_bavail == 0
    assert log.last(reserve.release, event="end", exit_code=0) is True
    log.close()
    assert reserve.released == 1 and not (small_disk / ".space-reserve").exists()
    metas = [rec.data for rec, _ in read_log(str(path)) if rec.stream is Stream.META]
    assert metas == [b'{"event": "end", "exit_code": 0}']  # nothing was lost: no "incomplete" note


@pytest.mark.parametrize("mode", ["async", "local"])
def test_cli_when_the_disk_fills_as_the_run_ends(small_disk: Path, scripts: Path, mode: str) -> None:
    home = small_disk / "home"
    started = time.monotonic()
    res = subprocess.run(cli_argv(home, "run", "--mode", mode, "--python", PY, str(scripts / "fill_disk.py"), "--",
                                  str(home / "filler"), "7", "16"),
                         env=clean_env(), capture_output=True, timeout=60)
    assert time.monotonic() - started < 8
    assert res.returncode == 7, res
    err = res.stderr.decode()
    assert "Traceback" not in err and "could not be recorded" not in err, err
    assert "was not saved: No space left on device" in err, err
    with RunRegistry(registry_path(home)) as reg:
        (run,) = reg.query()
    check_end(run, 7)


def test_a_big_read_on_a_nearly_full_disk_keeps_the_64k_pieces_that_fit(small_disk: Path) -> None:
    """An asyncio read is up to 256 KiB, one record: when it does not fit whole, what fits is
    still saved in 64 KiB records (as 64 KiB reads would have), then nothing more."""
    from prismq_desktop.core.process.logfile import LogWriter, Stream

    log = LogWriter(str(small_disk / "run.log"))
    fill(small_disk)
    os.truncate(small_disk / "ballast", os.path.getsize(small_disk / "ballast") - 150_000)  # ~150 kB free
    data = bytes(range(256)) * 1024  # 256 KiB
    log.write(Stream.STDOUT, data)
    log.write(Stream.STDOUT, b"after")
    log.meta(event="end")  # may or may not fit: the output before it must be whole either way
    log.close()
    saved = b"".join(rec.data for rec, _ in read_log(str(small_disk / "run.log")) if rec.stream is Stream.STDOUT)
    assert saved == data[: len(saved)] and len(saved) in (65536, 131072)
    assert log.bytes_written == len(saved) and log.bytes_lost == len(data) - len(saved) + len(b"after")
    assert log.error is not None and "No space left on device" in log.error
