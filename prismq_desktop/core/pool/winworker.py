"""The Windows pool worker: a long-lived Python that runs one script at a time with `runpy`.

Windows has no fork, so on Windows `ResourcePool` keeps workers that are started once (with
the preloaded modules imported) and run requests one after another; the pool recycles a
worker after `max_runs_per_worker` runs. The pool starts it as
``python -c BOOT poolworker.py --preload a,b`` (see `command()`), which does not import the
`prismq_desktop` package. The control channel is the worker's original stdin/stdout (framed
JSON, as in `forkserver`), moved off fds 0 and 1 at start; fd 0 then reads NUL.

pool -> worker  ``{"t": "run", "seq", "kind", "target", "argv", "cwd", "env", "unbuffered",
                "handles": [out, err]}``: the run's pipe write ends, already duplicated into
                this process by the pool (`_winapi.DuplicateHandle`);
worker -> pool  ``{"t": "ready", "pid", ...}`` once (the pid the handles must be duplicated into:
                not the venv launcher's), then per run ``{"t": "started", "seq", "pid"}`` and
                ``{"t": "exit", "seq", "pid", "code", "recycle"}`` (recycle: the run left threads
                running, so the worker must not serve another run).

A run's process is the worker itself: the pool stops a run by killing the worker (and what the
run started), and replaces it. What a run changes in `sys.modules` (new modules are removed),
`os.environ`, the working directory, `sys.argv`, `sys.path`, stdio, the hooks and the signal
handlers is undone after it; a change it makes inside a module that was imported before it
(a preloaded one) lasts until the worker is recycled - the isolation is weaker than a fork's.

Written from the documentation (msvcrt, _winapi, SetStdHandle); exercised by the Windows CI job
(tests/core/process/test_windows.py: a pool in a venv, daemon-thread recycling), never on Linux.
Importing this module is safe on every platform.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import importlib.util
import os
import signal
import sys
import threading
from types import ModuleType
from typing import Any


def _load_forkserver() -> ModuleType:
    """The sibling forkserver module; by path when run through BOOT (no package import, no sys.path entry)."""
    if __name__ != "__poolworker__":
        return importlib.import_module("prismq_desktop.core.pool.forkserver")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "forkserver.py")
    spec = importlib.util.spec_from_file_location("_prismq_forkserver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_fs = _load_forkserver()

#: Runs this file by path, so the worker does not import the prismq_desktop package.
BOOT = "import sys; del sys.path[0]; import runpy; runpy.run_path(sys.argv[1], run_name='__poolworker__')"


def command(python: str, preload: tuple[str, ...]) -> list[str]:
    return [python, "-c", BOOT, os.path.abspath(__file__), "--preload", ",".join(preload)]


STD_INPUT_HANDLE = -10 & 0xFFFFFFFF
STD_OUTPUT_HANDLE = -11 & 0xFFFFFFFF
STD_ERROR_HANDLE = -12 & 0xFFFFFFFF


class _Saved:
    """The interpreter state a run may change, to put back after it."""

    def __init__(self) -> None:
        self.modules = set(sys.modules)
        self.path = list(sys.path)
        self.environ = dict(os.environ)
        self.cwd = os.getcwd()
        self.argv = list(sys.argv)
        self.hooks = (sys.excepthook, sys.displayhook, sys.breakpointhook)
        self.stdio = (sys.stdin, sys.stdout, sys.stderr)
        self.dont_write_bytecode = sys.dont_write_bytecode
        self.threads = set(threading.enumerate())
        self.signals = {sig: signal.getsignal(sig) for sig in _signals()}

    def restore(self) -> None:
        for name in set(sys.modules) - self.modules:
            sys.modules.pop(name, None)
        sys.path[:] = self.path
        os.environ.clear()
        os.environ.update(self.environ)
        with contextlib.suppress(OSError):
            os.chdir(self.cwd)
        sys.argv = self.argv
        sys.excepthook, sys.displayhook, sys.breakpointhook = self.hooks
        sys.stdin, sys.stdout, sys.stderr = self.stdio
        for name, stream in zip(("__stdin__", "__stdout__", "__stderr__"), self.stdio, strict=True):
            setattr(sys, name, stream)
        sys.dont_write_bytecode = self.dont_write_bytecode
        for sig, handler in self.signals.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, handler)
        gc.collect()


def _signals() -> list[int]:
    return [s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGBREAK")) if isinstance(s, int)]


def _finalizer(saved: _Saved) -> Any:
    def finalize(code: int) -> int:
        """A run's "interpreter shutdown" without ending the worker: join its threads, run its atexit."""
        me = threading.current_thread()
        for thread in threading.enumerate():
            if thread not in saved.threads and thread is not me and not thread.daemon:
                with contextlib.suppress(RuntimeError):
                    thread.join()
        atexit._run_exitfuncs()  # only the run's: the worker cleared its own at start
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except BaseException:  # noqa: BLE001
                if stream is sys.stdout:
                    code = 120
        return code

    return finalize


def main(argv: list[str] | None = None) -> int:
    if sys.platform != "win32":
        print("poolworker runs on Windows only (POSIX pools use prismq_desktop.core.pool.forkserver)", file=sys.stderr)
        return 2
    return _serve_windows(list(sys.argv[1:] if argv is None else argv))


def _serve_windows(args: list[str]) -> int:  # pragma: no cover - Windows only
    if sys.platform != "win32":  # also tells type checkers on other platforms to skip the rest
        return 2
    import ctypes
    import msvcrt
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.SetStdHandle.argtypes = [wintypes.DWORD, wintypes.HANDLE]

    def set_std(which: int, fd: int) -> None:
        with contextlib.suppress(OSError):
            kernel32.SetStdHandle(which, msvcrt.get_osfhandle(fd))

    if args and not args[0].startswith("--"):
        args = args[1:]
    preload = ""
    it = iter(args)
    for arg in it:
        if arg == "--preload":
            preload = next(it)

    # The control channel leaves fds 0/1, which become the runs' stdio.
    ctrl_in, ctrl_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    set_std(STD_INPUT_HANDLE, 0)
    set_std(STD_OUTPUT_HANDLE, 1)
    stdio = (getattr(sys.stdout, "encoding", None) or "utf-8", getattr(sys.stdout, "errors", None) or "strict")
    import pkgutil  # noqa: F401 - runpy.run_path imports it on every call
    import runpy  # noqa: F401

    loaded, failed = _fs._preload([n for n in preload.split(",") if n])
    atexit._clear()  # the preloads' exit handlers are the worker's, not a run's
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a console Ctrl+C is not for the worker

    def send(msg: dict[str, Any]) -> None:
        data = _fs.encode(msg)
        while data:
            data = data[os.write(ctrl_out, data) :]

    send({"t": "ready", "pid": os.getpid(), "preloaded": loaded, "failed": failed})
    decoder = _fs.Decoder()
    while True:
        data = os.read(ctrl_in, 256 * 1024)
        if not data:
            return 0
        for req in decoder.feed(data):
            if req.get("t") == "quit":
                return 0
            if req.get("t") != "run":
                continue
            seq = req.get("seq")
            handles: list[int] = list(req.get("handles") or [])
            saved = _Saved()
            fds: list[int] = []
            try:  # a handle that did not arrive (duplicated into another process) fails here: say so
                for h in handles:
                    fds.append(msvcrt.open_osfhandle(h, os.O_WRONLY | os.O_BINARY))
            except (OSError, TypeError, ValueError) as exc:
                fds.append(-1)
                why = f"the run's output pipes did not arrive ({exc})"
            else:
                why = "the run's output pipes did not arrive"
            if len(fds) != 2 or -1 in fds:
                for fd in fds:
                    if fd >= 0:
                        os.close(fd)
                send({"t": "started", "seq": seq, "pid": os.getpid(), "error": why})
                send({"t": "exit", "seq": seq, "pid": os.getpid(), "code": 127})
                continue
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            for fd in fds:
                os.close(fd)
            set_std(STD_OUTPUT_HANDLE, 1)
            set_std(STD_ERROR_HANDLE, 2)
            code = 1
            try:
                try:
                    os.chdir(req["cwd"])
                except OSError as exc:
                    why = f"cannot change directory to {req['cwd']}: {exc.strerror or exc}"
                    send({"t": "started", "seq": seq, "pid": os.getpid(), "error": why})
                    code = 127
                    continue
                send({"t": "started", "seq": seq, "pid": os.getpid()})
                env: dict[str, str] = req["env"]
                os.environ.clear()
                os.environ.update(env)
                sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
                sys.argv = list(req["argv"])
                target = req["target"]
                sys.path.insert(0, os.getcwd() if req.get("kind") == "module" else os.path.dirname(os.path.abspath(target)))
                signal.signal(signal.SIGINT, signal.default_int_handler)
                _fs._stdio(stdio[0], stdio[1], bool(req.get("unbuffered")))
                code = _fs._run(req, finalize=_finalizer(saved), die_by_sigint=False)
            finally:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(BaseException):
                        stream.flush()
                for fd in (1, 2):
                    os.dup2(null, fd)  # the run's pipes close here (EOF once its children let go too)
                set_std(STD_OUTPUT_HANDLE, 1)
                set_std(STD_ERROR_HANDLE, 2)
                saved.restore()
                # A thread the run left running (a daemon one: finalize joined the others) would
                # write into the next run's output: this worker is not reused (the pool recycles it).
                leaked = [t for t in threading.enumerate() if t not in saved.threads and t.is_alive()]
                send({"t": "exit", "seq": seq, "pid": os.getpid(), "code": code, "recycle": bool(leaked)})


if __name__ in ("__main__", "__poolworker__"):
    sys.exit(main())
