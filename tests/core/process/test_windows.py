"""Windows counterparts of the POSIX-only tests: real processes, real Job Objects, a real venv.

Run on windows-latest by the CI's Windows job (`pytest -m windows_only`, which must not be empty),
skipped elsewhere (tests/conftest.py). What each checks is the documented behaviour the code
relies on (winjob.py, core/pool/windows.py, cmdline.py, interp.py, supervisor.WINDOWS_STOP).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from prismq_desktop.core import OutcomeKind, RunEngine, RunMode, RunSpec, Stream, read_log
from prismq_desktop.core.process import cmdline, interp
from prismq_desktop.core.process.supervisor import WINDOWS_STOP
from tests.helpers import pid_gone

pytestmark = pytest.mark.windows_only

PY = sys.executable
MODES = [RunMode.ASYNC, RunMode.THREADED]


def run_async(coro):
    with asyncio.Runner() as runner:
        return runner.run(coro)


def lines_of(handle) -> list[str]:
    return [line for _, line in handle.capture.tail_lines()] if handle.capture else []


async def until_output(handle, needle: str, count: int = 1, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = lines_of(handle)
        if sum(needle in line for line in lines) >= count:
            return lines
        if handle.done:
            break
        await asyncio.sleep(0.01)
    raise AssertionError(f"{needle!r} x{count} never appeared; got {lines_of(handle)}")


def pids_from(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines if line.startswith("pid ")]


def _job_of(handle) -> int:
    tree = handle.job.tree
    assert tree is not None and tree._job is not None, "the run has no Job Object (see the app log for why)"
    return tree._job


def _venv(tmp_path: Path) -> Path:
    """A real venv (no pip: quick): its python.exe is the venv launcher, which starts the base
    python.exe as its child (docs.python.org/3/library/venv.html, "How venvs work")."""
    subprocess.run([PY, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=120)
    exe = tmp_path / "venv" / "Scripts" / "python.exe"
    assert exe.is_file()
    return exe


# ---------------------------------------------------------------------------- Job Object containment
@pytest.mark.parametrize("mode", [RunMode.ASYNC, RunMode.THREADED])
def test_every_process_of_a_run_is_in_its_job_and_cancel_ends_them_all(home, scripts, mode):
    from prismq_desktop.core.process import winjob

    async def main():
        async with RunEngine(home) as engine:
            handle = await engine.start(RunSpec(target=str(scripts / "tree.py"), args=("2",), interpreter=PY), mode=mode)
            await until_output(handle, "pid", 4)
            pids = pids_from(lines_of(handle)) + [handle.run.pid]
            job = _job_of(handle)
            inside = {pid: winjob.is_in_job(pid, job) for pid in pids}
            members = set(winjob.job_pids(job))
            assert handle.cancel()
            run = await handle.wait(20)
            return run, pids, inside, members

    run, pids, inside, members = run_async(main())
    assert len(pids) == 5 and all(inside.values()), inside  # IsProcessInJob for root, children, grandchildren
    assert set(pids) <= members  # QueryInformationJobObject lists them all
    assert run.outcome.kind is OutcomeKind.CANCELLED
    assert all(pid_gone(p) for p in pids)


def test_a_child_started_at_the_first_instruction_is_in_the_job(home, tmp_path):
    """Started suspended, assigned, then resumed: nothing the run starts can precede the job."""
    from prismq_desktop.core.process import winjob

    first = tmp_path / "first.py"
    first.write_text("import subprocess, sys, time, os\n"
                     "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                     "os.write(1, f'pid {c.pid}\\n'.encode())\ntime.sleep(60)\n")

    async def main():
        async with RunEngine(home) as engine:
            handle = await engine.start(RunSpec(target=str(first), interpreter=PY), mode=RunMode.ASYNC)
            await until_output(handle, "pid")
            child = pids_from(lines_of(handle))[0]
            inside = winjob.is_in_job(child, _job_of(handle))
            handle.cancel()
            run = await handle.wait(20)
            return run, child, inside

    run, child, inside = run_async(main())
    assert inside and run.outcome.kind is OutcomeKind.CANCELLED and pid_gone(child)


def test_a_run_through_a_venv_launcher_keeps_the_base_python_in_its_job(home, scripts, tmp_path):
    """The venv's python.exe starts the real interpreter as a child: it is in the job too."""
    from prismq_desktop.core.process import winjob

    venv_py = _venv(tmp_path)

    async def main():
        async with RunEngine(home) as engine:
            handle = await engine.start(RunSpec(target=str(scripts / "ticker.py"), interpreter=str(venv_py)),
                                        mode=RunMode.THREADED)
            await until_output(handle, "3")
            root = psutil.Process(handle.run.pid)
            family = [p for p in (root, *root.children(recursive=True)) if p.name().lower() != "conhost.exe"]
            job = _job_of(handle)
            inside = {p.pid: winjob.is_in_job(p.pid, job) for p in family}
            handle.cancel()
            run = await handle.wait(20)
            return run, inside

    run, inside = run_async(main())
    assert len(inside) >= 2 and all(inside.values()), inside
    assert all(pid_gone(p) for p in inside)
    assert run.outcome.kind is OutcomeKind.CANCELLED


def test_pause_suspends_every_job_member_and_resume_continues(home, scripts):
    async def main():
        async with RunEngine(home) as engine:
            handle = await engine.start(RunSpec(target=str(scripts / "ticker.py"), interpreter=PY), mode=RunMode.ASYNC)
            await until_output(handle, "5")
            assert handle.pause()
            await asyncio.sleep(0.3)
            frozen = len(lines_of(handle))
            await asyncio.sleep(0.5)
            still = len(lines_of(handle))
            status = psutil.Process(handle.run.pid).status()
            assert handle.resume()
            await until_output(handle, str(int(lines_of(handle)[-1]) + 10))
            handle.cancel()
            return await handle.wait(20), frozen, still, status

    run, frozen, still, status = run_async(main())
    assert frozen == still and status == psutil.STATUS_STOPPED
    assert run.outcome.kind is OutcomeKind.CANCELLED


# ---------------------------------------------------------------------------- stops are immediate, and say so
@pytest.mark.parametrize("mode", MODES)
def test_soft_timeout_says_windows_stops_at_once(home, scripts, mode):
    async def main():
        async with RunEngine(home) as engine:
            return await engine.run(RunSpec(target=str(scripts / "ticker.py"), interpreter=PY, soft_timeout=0.5,
                                            grace_period=5), mode=mode)

    started = time.monotonic()
    handle = run_async(main())
    assert handle.outcome.kind is OutcomeKind.TIMED_OUT
    assert WINDOWS_STOP in handle.outcome.message and "grace" not in handle.outcome.message.replace(WINDOWS_STOP, "")
    assert time.monotonic() - started < 5  # never the 5 s grace


# ---------------------------------------------------------------------------- the pool
def test_pool_in_a_venv_runs_and_its_output_is_what_a_spawn_writes(home, scripts, tmp_path):
    """Bug 1: handles duplicated into the venv launcher never reached the worker."""
    from prismq_desktop.core.pool import ResourcePool

    venv_py = _venv(tmp_path)
    spec = RunSpec(target=str(scripts / "hello.py"), args=("0", "a b"), interpreter=str(venv_py), cwd=str(tmp_path))

    async def main():
        async with RunEngine(home) as spawned_engine:
            spawned = await spawned_engine.run(spec)
        async with ResourcePool(size=1, preload=("json",), python=str(venv_py)) as pool, \
                RunEngine(home, executor=pool) as engine:
            pooled = [await engine.run(spec) for _ in range(3)]
            return spawned, pooled, pool.stats()

    spawned, pooled, stats = run_async(main())
    assert stats.runs_served == 3 and stats.crashes == 0 and stats.broken is None, stats
    want = b"".join(r.data for r, _ in read_log(spawned.run.log_path) if r.stream is Stream.STDOUT)
    assert b"hello a b\r\n" in want  # CPython's stdio on Windows writes \r\n
    for handle in pooled:
        assert handle.outcome.kind is OutcomeKind.SUCCEEDED, handle.outcome
        got = b"".join(r.data for r, _ in read_log(handle.run.log_path) if r.stream is Stream.STDOUT)
        assert got == want


def test_a_pooled_run_that_leaves_a_daemon_thread_recycles_its_worker(home, scripts):
    from prismq_desktop.core.pool import ResourcePool

    async def main():
        async with ResourcePool(size=1, preload=("json",)) as pool, RunEngine(home, executor=pool) as engine:
            leaky = await engine.run(RunSpec(target=str(scripts / "daemon_leak.py"), interpreter=PY))
            await asyncio.sleep(0.2)
            nxt = await engine.run(RunSpec(target=str(scripts / "hello.py"), interpreter=PY))
            return leaky, nxt, pool.stats()

    leaky, nxt, stats = run_async(main())
    assert leaky.outcome.kind is OutcomeKind.SUCCEEDED and nxt.outcome.kind is OutcomeKind.SUCCEEDED
    assert "LEAKED" not in nxt.stdout() and nxt.stdout().startswith("hello")
    assert stats.recycled >= 1 and stats.crashes == 0, stats


# ---------------------------------------------------------------------------- arguments, interpreter, editor
def test_typed_arguments_reach_the_child_with_windows_rules(home, scripts, tmp_path):
    typed = r'C:\data\in.csv "a b" x\"y C:\dir\ "C:\with space\\"'

    async def main():
        async with RunEngine(home) as engine:
            return await engine.run(RunSpec(target=str(scripts / "argv_dump.py"), args=typed, interpreter=PY))

    handle = run_async(main())
    assert handle.outcome.kind is OutcomeKind.SUCCEEDED, handle.outcome
    got = json.loads(handle.stdout())
    assert got == [r"C:\data\in.csv", "a b", 'x"y', "C:\\dir\\", "C:\\with space\\"]
    assert got == cmdline.split_windows(typed)


def test_interpreter_choice_rejects_a_store_alias_that_does_not_run(tmp_path):
    apps = tmp_path / "Microsoft" / "WindowsApps"
    apps.mkdir(parents=True)
    (apps / "python.exe").write_bytes(b"MZ not a program")  # CreateProcess refuses it, like an alias with no app
    (apps / "python3.exe").write_bytes(b"MZ not a program")
    assert interp.probe(str(apps / "python.exe")) is None
    assert interp.choose("win32", str(apps), ".COM;.EXE") is None
    real_dir = os.path.dirname(PY)
    chosen = interp.choose("win32", f"{apps};{real_dir}", ".COM;.EXE")  # upper-case PATHEXT, lower-case file
    assert chosen is not None and os.path.samefile(chosen, PY)


def test_a_batch_file_editor_gets_every_argument_as_text(tmp_path, scripts):
    """Bug 12: code.cmd runs through cmd.exe; `&`, `%`, `"` in a path from run output stay text."""
    editor = tmp_path / "R&D editor" / "ed.cmd"
    editor.parent.mkdir()
    editor.write_bytes(f'@"{PY}" "{scripts / "argv_dump.py"}" %*\r\n'.encode())
    dump = tmp_path / "argv.json"
    args = ["-g", "C:\\R&D\\x.py:3", "100%\\%PATH%\\y.py", 'a"&echo INJECTED>inj.txt&"b', "C:\\dir with space\\", "(x)^!"]
    line, exe = cmdline.windows_spawn([str(editor), *args], str(editor))
    assert exe is not None
    done = subprocess.run(line, executable=exe, cwd=tmp_path, env={**os.environ, "ARGV_DUMP": str(dump)},
                          timeout=60, capture_output=True)
    assert done.returncode == 0, done
    assert json.loads(dump.read_text(encoding="utf-8")) == args
    assert not (tmp_path / "inj.txt").exists()


def test_probes_open_no_console_window():
    assert interp.no_window_flags() & 0x08000000


def test_replace_waits_out_another_process_holding_the_target_open(tmp_path):
    """WinError 32: a reader with the file open (no FILE_SHARE_DELETE) delays, never loses, a write."""
    from prismq_desktop.core.store.atomic import atomic_write_text

    target = tmp_path / "tasks.json"
    target.write_text("old")
    holder = subprocess.Popen([PY, "-c", "import sys, time; f = open(sys.argv[1]); print('open', flush=True); "
                               "time.sleep(0.6); f.close(); time.sleep(5)", str(target)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"open"
        with pytest.raises(PermissionError):
            _replace_now(tmp_path, target)
        atomic_write_text(target, "new")
        assert target.read_text() == "new"
    finally:
        holder.kill()
        holder.wait(10)


def _replace_now(tmp_path: Path, target: Path) -> None:
    """A plain os.replace while the file is held: Windows refuses it (the failure being guarded)."""
    src = tmp_path / "src.tmp"
    src.write_text("x")
    os.replace(src, target)
