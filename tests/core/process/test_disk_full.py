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
