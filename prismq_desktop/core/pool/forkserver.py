"""The fork server behind `ResourcePool` on POSIX: a warm Python that forks one child per run.

The pool starts it as ``python -c BOOT forkserver.py --fd N --preload a,b`` (see `command()`),
which runs this file without importing the `prismq_desktop` package, so a child sees a fresh
interpreter's modules plus the preloaded ones only. (``python -m prismq_desktop.core.pool.forkserver
--fd N`` works too, but imports the package first.) It imports the preload modules, freezes the
heap (`gc.freeze`, so children do not copy it on their first collection), tells the pool it is
ready, then serves requests from the control socket (fd N, one end of a socketpair):

pool -> server  ``{"t": "run", "seq", "kind": "path"|"module", "target", "argv", "cwd", "env",
                "unbuffered"}`` with the run's stdout and stderr pipe write ends attached
                (SCM_RIGHTS, `socket.send_fds`);
server -> pool  ``{"t": "ready", "pid", "preloaded", "failed", "env", "subreaper"}`` once (``env``:
                the server's own environment, so a request may carry ``"env_diff": {"set",
                "unset"}`` against it instead of the whole ``"env"``; ``subreaper``: see below);
                ``{"t": "started", "seq", "pid"[, "ticks"][, "error"]}`` once the child that is
                the run exists in a session of its own (``"ticks"``: its start as /proc/PID/stat
                field 22, Linux; ``"error"``: it could not be made, e.g. the directory is gone:
                the run failed to start); ``{"t": "exit", "seq", "pid", "code"[, "left"]}`` when
                it is reaped: the code is negative for a signal, as in `subprocess`; ``"left"``:
                ``[[pid, ticks], ...]``, what the run left behind (absent: nothing);
                ``{"t": "spare", "pid"[, "ticks"]}`` with the spare's socket attached (see below).

Direct hand-off: as it forks a spare the server announces it to the pool with its socket, and
the pool sends a run (``"direct": true``, the pipes attached) straight to the spare once the
spare's "r" is there (the pool reads it: the spare has its own session by then) - the pid and
start are known already, so no "started" and no hop through the server on the run's start. The
server learns of the run when it reaps it: the "exit" of an announced pid goes out with seq
null, and the pool matches the pid (its spare, or the run it sent there). When the pool sends a
run through the server instead (a function task whose module the server imports first, a spare
not ready yet, or no announcement yet) it gives its spare back (closes its copy); the server may
hand that spare the run, and the run's "started" names it.

Messages are a 4-byte big-endian length and UTF-8 JSON. EOF on the control socket means the
pool is gone: the server kills its children's process groups (and its spare, and whatever
re-parented to it) and exits.

Leftovers (Linux): the server is a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so a
run's descendants whose parent exited re-parent to the server, not to the app. It serves one
run at a time, so when a run's root is reaped every child of the server that is neither the
spare nor a run's root is that run's: the "exit" lists them (one /proc read, in the server), and
the pool stops them - and looks for nothing more when the list is absent and the run's process
group is empty (process/tree.py, `ServedTree`). This also finds a daemon that double-forked
without exec, which carries no run tag in /proc/PID/environ (it keeps the server's).

The spare: the server keeps one child forked ahead. Right after the fork it calls `setsid()`
(its own session, so the pool's `ProcessTree` stops it exactly like a spawned run), resets the
signal handlers, closes the server's fds, takes the copy-on-write page faults of a run's setup
once on nothing (`_warm_up`), says "r" and waits. A request then costs no fork: the server
checks the directory, reports the spare's pid, and only then hands it the request and the two
pipes (so a run never runs without its pid having been reported), and forks the next spare
when this run ends, or `REFILL_AFTER` into it (a fork at once would take a core from the run's
start). Without a ready spare the server forks at once and reports the pid after
a handshake (the child answers "k" once it has its session and directory; it runs on "g").

The child then puts /dev/null and the pipes on fds 0-2, changes directory, makes `os.environ`
the run's (applying ``env_diff``, or comparing with ``env``), replaces `sys.argv`,
`sys.path[0]` and (unless the server's own fit) the stdio objects, and runs the script as
`runpy.run_path(path, run_name="__main__")` would: compiled here and run as a fresh
``__main__`` module (`_exec_main`, without run_path's importer lookup), a ``.pyc`` or zip
application through run_path itself (``-m``: `run_module`).
At the end it does what interpreter shutdown does (join non-daemon threads, atexit, flush
stdio) and leaves with `os._exit` and the code `python script.py` would have given:
SystemExit's code (its message on stderr), 1 and the traceback on stderr (through
`sys.excepthook`, without runpy's frames) for an exception, death by SIGINT for an unhandled
KeyboardInterrupt, 120 when stdout cannot be flushed.

Known differences from a fresh interpreter: the preloaded modules are already imported (and
`sys.modules` holds them); all runs of one server share its hash seed; `sys.flags` are the
server's; the process's command line (`ps`) is the server's. Interpreter startup settings
(PYTHONPATH, PYTHONHASHSEED, locale, ...) must match the server's: the pool runs anything
else as a normal spawn.
"""

from __future__ import annotations

import _signal
import atexit
import contextlib
import errno
import gc
import importlib
import io
import json
import locale
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from types import CodeType, TracebackType
from typing import Any, NoReturn

_HEADER = struct.Struct("!I")
MAX_MESSAGE = 64 * 1024 * 1024
MAX_FDS = 16
RECV_SIZE = 64 * 1024  # a request is small; a 256 KiB buffer would cost an mmap and a munmap per recv
WARM_UP_AFTER = 0.02  # seconds a spare waits for a request before it warms up (sustained runs skip it)
REFILL_AFTER = 0.02  # seconds into a run the next spare is forked, if the run has not ended by then
STATUS_CONTROL_C_EXIT = 0xC000013A  # what Windows Python exits with after an unhandled Ctrl+C

#: Runs the server file by path, so the server does not import the prismq_desktop package.
BOOT = "import sys; del sys.path[0]; import runpy; runpy.run_path(sys.argv[1], run_name='__main__')"


def command(python: str, fd: int, preload: tuple[str, ...], spare: bool = True) -> list[str]:
    """The server's command line (the pool passes `fd`, the server's end of the socketpair)."""
    cmd = [python, "-c", BOOT, os.path.abspath(__file__), "--fd", str(fd), "--preload", ",".join(preload)]
    return cmd if spare else [*cmd, "--no-spare"]


# ---------------------------------------------------------------------------- framing
def encode(msg: dict[str, Any]) -> bytes:
    body = json.dumps(msg, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(body)) + body


class Decoder:
    """Turns the bytes (and fds) read from a stream socket into whole messages."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.fds: list[int] = []

    def feed(self, data: bytes, fds: list[int] | None = None) -> Iterator[dict[str, Any]]:
        self._buf += data
        if fds:
            self.fds.extend(fds)
        while len(self._buf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buf)
            if size > MAX_MESSAGE:
                raise ValueError(f"control message too large ({size} bytes)")
            if len(self._buf) < _HEADER.size + size:
                return
            body = bytes(self._buf[_HEADER.size : _HEADER.size + size])
            del self._buf[: _HEADER.size + size]
            msg = json.loads(body)
            if isinstance(msg, dict):
                yield msg


# ---------------------------------------------------------------------------- the child
_SERVER_FILES: set[str] = {os.path.abspath(__file__), "<frozen runpy>"}


def _trim(tb: TracebackType | None) -> TracebackType | None:
    """Drop the server's and runpy's frames, so a traceback starts at the script, as usual."""
    import runpy

    skip = _SERVER_FILES | {os.path.abspath(runpy.__file__ or "runpy.py")}
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name not in skip and os.path.abspath(name) not in skip:
            break
        tb = tb.tb_next
    return tb


def _report(exc: BaseException) -> None:
    """Print an unhandled exception the way the interpreter does (through sys.excepthook)."""
    tb = _trim(exc.__traceback__)
    exc = exc.with_traceback(tb)  # the default hook prints the exception's own traceback
    try:
        sys.excepthook(type(exc), exc, tb)
    except BaseException as hook_exc:  # noqa: BLE001 - the interpreter reports both, so do we
        with contextlib.suppress(BaseException):
            print("Error in sys.excepthook:", file=sys.stderr)
            traceback.print_exception(type(hook_exc), hook_exc, hook_exc.__traceback__)
            print("\nOriginal exception was:", file=sys.stderr)
            traceback.print_exception(type(exc), exc, tb)


def _system_exit_code(exc: SystemExit) -> int:
    """What `python script.py` exits with for an unhandled SystemExit."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(BaseException):
        sys.stderr.write(f"{code}\n")
    return 1


def _stdio(encoding: str, errors: str, unbuffered: bool) -> None:
    """Fresh sys.stdin/stdout/stderr over fds 0-2, made the way interpreter startup makes them."""

    def text(fd: int, name: str, errs: str, line_buffering: bool) -> io.TextIOWrapper:
        writing = fd != 0
        raw = io.FileIO(fd, "w" if writing else "r", closefd=False)
        raw.name = name
        buf: Any = raw if unbuffered and writing else (io.BufferedWriter(raw) if writing else io.BufferedReader(raw))
        stream = io.TextIOWrapper(
            buf,
            encoding=encoding,
            errors=errs,
            # as CPython's create_stdio (Python/pylifecycle.c): Windows translates "\n" to "\r\n" on output
            newline=None if sys.platform == "win32" else "\n",
            line_buffering=line_buffering,
            write_through=unbuffered and writing,
        )
        setattr(stream, "mode", "w" if writing else "r")  # noqa: B010 - a read-only property to type checkers
        return stream

    stdin = text(0, "<stdin>", errors, False)
    stdout = text(1, "<stdout>", errors, False)
    stderr = text(2, "<stderr>", "backslashreplace", not unbuffered)  # non-interactive stderr is line-buffered
    sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
    for name, stream in (("__stdin__", stdin), ("__stdout__", stdout), ("__stderr__", stderr)):
        setattr(sys, name, stream)


def _startup_stdio_fits(unbuffered: bool) -> bool:
    """Are the server's own stdio objects (now over the run's fds 0-2) what a fresh start would make?"""
    streams = (sys.stdin, sys.stdout, sys.stderr)
    originals = (sys.__stdin__, sys.__stdout__, sys.__stderr__)
    return (
        unbuffered == _STARTUP_UNBUFFERED
        and all(a is b and a is not None and not a.closed for a, b in zip(streams, originals, strict=True))
        and [getattr(stream, "fileno", lambda: -1)() for stream in streams] == [0, 1, 2]
    )


def _reset_signals() -> None:
    # through _signal, the C functions under `signal` (whose wrappers convert to and from enums per call)
    with contextlib.suppress(ValueError, OSError):
        _signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        with contextlib.suppress(OSError, ValueError):
            _signal.signal(sig, _signal.SIG_DFL)
    _signal.signal(signal.SIGINT, _signal.default_int_handler)
    _signal.signal(signal.SIGPIPE, _signal.SIG_IGN)  # as the interpreter sets them at startup
    if hasattr(signal, "SIGXFSZ"):
        _signal.signal(signal.SIGXFSZ, _signal.SIG_IGN)
    _signal.pthread_sigmask(signal.SIG_SETMASK, ())


def _finalize(code: int) -> int:
    """Interpreter shutdown: wait for non-daemon threads, run atexit, flush stdio."""
    threading = sys.modules.get("threading")
    if threading is not None:
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            try:
                shutdown()
            except BaseException as exc:  # noqa: BLE001
                _report(exc)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:  # noqa: BLE001 - as the interpreter: a failed stdout flush means 120
            if stream is sys.stdout:
                code = 120
    return code


def _run(req: dict[str, Any], finalize: Callable[[int], int] = _finalize, die_by_sigint: bool = True) -> int:
    """Run the request's script or module as __main__; return the exit code.

    `finalize` does the interpreter's shutdown work; with `die_by_sigint` an unhandled
    KeyboardInterrupt ends the process by SIGINT (POSIX), else it gives STATUS_CONTROL_C_EXIT.
    """
    import runpy

    target: str = req["target"]
    interrupted = False
    try:
        if req.get("kind") == "module":
            try:
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            except ImportError as exc:
                if type(exc).__module__ == "runpy" or "No module named" in str(exc) and exc.name == target:
                    sys.stderr.write(f"{sys.executable}: {exc}\n")
                    return finalize(1)
                raise
        elif target in _RUNNERS:  # a function task: the runner is loaded already
            raise SystemExit(_RUNNERS[target].main(list(req.get("argv", [])[1:])))
        else:
            try:
                with open(target, "rb") as fh:
                    source = fh.read()
            except OSError as exc:
                sys.stderr.write(f"{sys.executable}: can't open file {target!r}: [Errno {exc.errno}] {exc.strerror}\n")
                return finalize(2)
            script = _script_code(target, source)
            if script is None:  # a .pyc or a zip application: runpy knows those
                runpy.run_path(target, run_name="__main__")
            else:
                _exec_main(script, target)
        code = 0
    except SystemExit as exc:
        code = _system_exit_code(exc)
    except KeyboardInterrupt as exc:
        _report(exc)
        code, interrupted = (130 if die_by_sigint else STATUS_CONTROL_C_EXIT), True
    except BaseException as exc:  # noqa: BLE001 - an uncaught exception ends the run like the interpreter does
        _report(exc)
        code = 1
    code = finalize(code)
    if interrupted and die_by_sigint:  # like the interpreter: die by SIGINT so the parent sees the signal
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def _script_code(target: str, source: bytes) -> CodeType | None:
    """The script's code, compiled as `runpy.run_path` would (None for what is not plain source).

    Done here rather than through run_path, whose importer lookup (zipimport reads the file's
    end), pkgutil and temporary-module machinery cost a fork's child about as much again as the
    script. `dont_inherit`: this file's ``from __future__`` imports must not leak into the script.
    """
    import importlib.util

    if source[:4] == importlib.util.MAGIC_NUMBER or b"PK\x05\x06" in source:
        return None
    return compile(source, target, "exec", dont_inherit=True)


def _exec_main(code: CodeType, target: str) -> None:
    """Run `code` as ``__main__`` with the globals `runpy.run_path` gives a script file."""
    import types

    module = types.ModuleType("__main__")
    module.__dict__.update(
        __name__="__main__", __file__=target, __cached__=None, __doc__=None, __loader__=None, __package__="", __spec__=None
    )
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 - running the user's script is the point
    finally:  # as runpy's temporary module (the Windows worker runs the next script in this process)
        if saved is not None:
            sys.modules["__main__"] = saved


def _become_session(close_fds: list[int]) -> None:
    """First steps of every child (a spare does them before any request): own session, clean signals and fds."""
    os.setsid()
    _reset_signals()
    for fd in close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _become_run(req: dict[str, Any], out_fd: int, err_fd: int, sync: socket.socket, handshake: bool = True) -> NoReturn:
    """In the child, once it has a request: take the run's stdio and cwd, handshake, run. Never returns.

    Without `handshake` (a spare: the server checked the directory and reported the pid before
    handing the request over) a directory that vanished since is reported on the run's stderr.
    """
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        for fd in {null, out_fd, err_fd} - {0, 1, 2}:
            os.close(fd)
        try:
            os.chdir(req["cwd"])
        except OSError as exc:
            why = f"cannot change directory to {req['cwd']}: {exc.strerror or exc}"
            if handshake:
                sync.sendall(b"E" + why.encode("utf-8", "replace"))
            else:
                os.write(2, f"{sys.executable}: {why}\n".encode("utf-8", "replace"))
            os._exit(127)
        if handshake:
            sync.sendall(b"k")
            go = sync.recv(1)  # the server has reported our pid (or died: then never run)
            if go != b"g":
                os._exit(1)
        sync.close()
        # Now the run's own interpreter state.
        diff = req.get("env_diff")
        changed = _apply_env_diff(diff) if isinstance(diff, dict) else _set_environ(req["env"])
        if not changed.isdisjoint(("LC_ALL", "LC_CTYPE", "LANG")):
            with contextlib.suppress(locale.Error):
                locale.setlocale(locale.LC_CTYPE, "")
        if "TZ" in changed and hasattr(time, "tzset"):
            time.tzset()
        sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
        argv: list[str] = req["argv"]
        sys.argv = list(argv)
        sys.orig_argv = [sys.executable, *(["-m"] if req.get("kind") == "module" else []), *argv]
        sys.path.insert(0, os.getcwd() if req.get("kind") == "module" else os.path.dirname(os.path.abspath(req["target"])))
        if not _startup_stdio_fits(bool(req.get("unbuffered"))):
            encoding, errors = _STDIO
            _stdio(encoding, errors, bool(req.get("unbuffered")))
        code = _run(req)
    except BaseException as exc:  # noqa: BLE001 - the child must never return into the server
        with contextlib.suppress(BaseException):
            os.write(2, f"prismq fork server: child setup failed: {exc!r}\n".encode())
        code = 1
    finally:
        os._exit(code)


def _set_environ(env: dict[str, str]) -> set[str]:
    """Make os.environ (and the C environment) exactly `env`, touching only what differs; the keys changed."""
    current = os.environ
    changed = {k for k in current if k not in env}
    for key in changed:
        del current[key]
    for key, value in env.items():
        if current.get(key) != value:
            current[key] = value
            changed.add(key)
    return changed


def _apply_env_diff(diff: dict[str, Any]) -> set[str]:
    """Apply ``{"set": {k: v}, "unset": [k]}``, the run's environment as a difference from the server's
    own (which the pool knows from "ready"): a few putenv calls instead of comparing every variable."""
    current = os.environ
    changed: set[str] = set()
    for key in diff.get("unset", ()):
        if key in current:
            del current[key]
            changed.add(key)
    for key, value in diff.get("set", {}).items():
        current[key] = value
        changed.add(key)
    return changed


def _warm_up() -> None:
    """Take the copy-on-write page faults of a run's setup in the spare, before any request waits.

    A forked child pays for the first write to every page it shares with the server; running
    the setup once on nothing (stdio objects, os.environ, an empty script as __main__) roughly halves
    the time from a request to the script's first line.
    """
    if not _STARTUP_UNBUFFERED:  # else runs use the server's own stdio objects (see _startup_stdio_fits)
        saved = sys.stdin, sys.stdout, sys.stderr
        dunders = {name: getattr(sys, name) for name in ("__stdin__", "__stdout__", "__stderr__")}
        try:
            _stdio(*_STDIO, True)
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved
            for name, stream in dunders.items():
                setattr(sys, name, stream)
    _set_environ(dict(os.environ))
    argv = list(sys.argv)
    try:
        _exec_main(compile(b"", os.devnull, "exec", dont_inherit=True), os.devnull)  # what a script run does
    finally:
        sys.argv = argv


def _spare_main(sock: socket.socket, close_fds: list[int], warm: bool) -> NoReturn:
    """A pre-forked spare: takes its own session, says so ("r"), and waits for its one request (EOF: the server is gone)."""
    try:
        _become_session(close_fds)
        sock.sendall(b"r")
        # Warm up only if no request comes at once: back-to-back runs skip it (it costs CPU),
        # a run after a pause finds the spare warm (it roughly halves the time to its first line).
        if warm and not select.select([sock], [], [], WARM_UP_AFTER)[0]:
            with contextlib.suppress(Exception):
                _warm_up()
        decoder = Decoder()
        while True:
            data, fds, _flags, _addr = socket.recv_fds(sock, RECV_SIZE, MAX_FDS)
            if not data:
                os._exit(0)
            for req in decoder.feed(data, fds):
                take = decoder.fds[:2]
                for fd in decoder.fds[2:]:
                    os.close(fd)
                if len(take) != 2:
                    os._exit(127)
                _become_run(req, take[0], take[1], sock, handshake=bool(req.get("handshake")))
    except BaseException:  # noqa: BLE001 - a spare never returns into the server
        os._exit(1)


# ---------------------------------------------------------------------------- the server
_STDIO: tuple[str, str] = ("utf-8", "strict")  # the server's stdio encoding and errors (set by main)
_STARTUP_UNBUFFERED = False  # was the server started unbuffered (PYTHONUNBUFFERED)? (set by main)


def cwd_problem(cwd: str) -> str | None:
    """Why a child could not change into `cwd` (checked before its pid is reported), or None."""
    try:
        if not os.path.isdir(cwd):
            os.stat(cwd)
            return f"cannot change directory to {cwd}: Not a directory"
    except OSError as exc:
        return f"cannot change directory to {cwd}: {exc.strerror or exc}"
    if not os.access(cwd, os.X_OK):
        return f"cannot change directory to {cwd}: Permission denied"
    return None


def _preload(names: list[str]) -> tuple[list[str], dict[str, str]]:
    loaded, failed = [], {}
    for name in names:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except BaseException as exc:  # noqa: BLE001 - a bad preload must not stop the server
            failed[name] = f"{type(exc).__name__}: {exc}"
    return loaded, failed


def _preload_function(spec: dict[str, Any]) -> bool:
    """Import a function task's module into the server, once, so every child forked after has it.

    The folders go on sys.path only while importing (a script run later sees the usual
    sys.path); what the import prints is dropped. True when the module is newly loaded. A
    failure is left to the child, which imports it again and reports the error as the run's.
    """
    runner = spec.get("runner")
    if isinstance(runner, str) and runner not in _RUNNERS:
        _load_runner(runner)
    name = spec.get("module")
    if not isinstance(name, str) or name in sys.modules or name in _PRELOAD_FAILED:
        return False
    saved = list(sys.path)
    paths = [p for p in spec.get("paths", []) if isinstance(p, str)]
    sys.path[:0] = [p for p in paths if p not in sys.path]
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            importlib.import_module(name)
        gc.collect()
        gc.freeze()  # as after the startup preloads: children's collections do not copy the module's heap
        return True
    except BaseException:  # noqa: BLE001 - the run's child reports it
        _PRELOAD_FAILED.add(name)
        return False
    finally:
        sys.path[:] = saved
        if _BASE_ENV is not None:
            _set_environ(_BASE_ENV)  # the module's import may not change what runs' env_diff is relative to


_PRELOAD_FAILED: set[str] = set()
_BASE_ENV: dict[str, str] | None = None  # the server's environment as reported in "ready" (set by main)
_RUNNERS: dict[str, Any] = {}  # path of the function runner -> the runner module, loaded once in the server


def _load_runner(path: str) -> None:
    """Load the function runner as a module (children call its main(), no runpy compile per run)."""
    import importlib.util

    try:
        spec = importlib.util.spec_from_file_location("_prismq_function_runner", path)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _RUNNERS[path] = module
    except BaseException:  # noqa: BLE001 - the child then runs the file with runpy, as before
        return


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_LINUX = sys.platform.startswith("linux")
PR_SET_CHILD_SUBREAPER = 36


def _boot_clock() -> int:
    """The boot clock in ns (the clock of /proc/PID/stat's start time; Linux), else 0."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) if _LINUX else 0


def _fork_ticks(pid: int, before: int, after: int) -> int | None:
    """A child's start in clock ticks, as /proc/PID/stat field 22 gives it: the kernel takes the
    boot clock during the fork, so when the clock read just before and just after falls in one
    tick, that is it (no read); else one read of the file. None off Linux."""
    if not _LINUX:
        return None
    tick = 1_000_000_000 // _CLOCK_TICKS
    if before // tick == after // tick:
        return before // tick
    return _read_ticks(pid)


def _read_ticks(pid: int) -> int | None:
    """/proc/PID/stat field 22 (start in clock ticks since boot); None when gone or unreadable."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        return int(data.rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _own_children() -> list[int]:
    """This process's direct children (/proc/self/task/TID/children: a re-parented orphan can be
    any thread's child); [] when unreadable."""
    pids: list[int] = []
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return pids
    for tid in tids:
        try:
            fd = os.open(f"/proc/self/task/{tid}/children", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            data = b""
            while chunk := os.read(fd, 65536):
                data += chunk
        except OSError:
            continue
        finally:
            os.close(fd)
        pids.extend(int(x) for x in data.split() if x.isdigit())
    return pids


def _become_subreaper() -> bool:
    """Linux: make the server a child subreaper, so what a run leaves behind (a double-forked
    daemon, a setsid() escaper whose parent exited) re-parents to the server rather than to the
    app: the server sees it when the run's root is reaped and says so in the "exit", and the
    pool looks for leftovers only then. False if that cannot be (then the app's own subreaper and
    the run tag find them, as for a spawned run). ctypes is imported for this one call and taken
    out of sys.modules again: a run finds the modules a fresh interpreter (plus the preloads) has."""
    if not _LINUX or not os.path.exists("/proc/self/task"):
        return False
    before = set(sys.modules)
    try:
        import ctypes

        ok = bool(ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (ImportError, OSError, AttributeError):
        ok = False
    for name in set(sys.modules) - before:
        del sys.modules[name]
    return ok


class _Server:
    """Serves run requests; keeps one spare child forked ahead, so a request costs no fork."""

    def __init__(self, sock: socket.socket, spare: bool = True, warm: bool = True) -> None:
        self.sock = sock
        self.children: dict[int, Any] = {}  # pid -> request seq (None: the spare)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.use_spare = spare
        self.warm = warm
        self.spare: tuple[int, socket.socket] | None = None
        #: Direct hand-off: each spare's socket goes to the pool ("spare", SCM_RIGHTS) as it is
        #: forked, and the pool sends a run straight to it - the server is not on a run's start
        #: path at all (and learns of the run when it reaps it). `offered`: pids announced and not
        #: handed a run here: their "exit" goes out with seq null (the pool matches the pid).
        self.direct = True
        self.offered: set[int] = set()
        self.refill_at = 0.0  # monotonic time the next spare is due (see spawn)
        #: pid -> start in clock ticks (/proc/PID/stat field 22), known at the fork: sent with
        #: "started", so the pool's tree needs no /proc read for it (Linux; else not kept)
        self.ticks: dict[int, int] = {}
        #: A child subreaper (see `_become_subreaper`): what a run leaves behind re-parents here,
        #: and each "exit" says what that is ("left"), so the pool looks no further when it is nothing.
        self.subreaper = False

    def send(self, msg: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(encode(msg))

    def fork_child(self, warm: bool = True) -> tuple[int, socket.socket]:
        """Fork a child that takes its own session and waits on the returned socket for a request."""
        ours, theirs = socket.socketpair()
        before = _boot_clock()
        try:
            pid = os.fork()
        except BaseException:
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            ours.close()
            spare = self.spare[1].fileno() if self.spare is not None else -1
            _spare_main(theirs, [self.sock.fileno(), self.wake_r, self.wake_w, spare], warm)
        theirs.close()
        self.children[pid] = None
        ticks = _fork_ticks(pid, before, _boot_clock())
        if ticks is not None:
            self.ticks[pid] = ticks
        return pid, ours

    def started(self, seq: Any, pid: int) -> None:
        """Tell the pool the run's child exists (with its start ticks, when known)."""
        msg: dict[str, Any] = {"t": "started", "seq": seq, "pid": pid}
        ticks = self.ticks.get(pid)
        if ticks is not None:
            msg["ticks"] = ticks
        self.send(msg)

    def left_behind(self) -> list[list[int]]:
        """``[pid, start ticks]`` of this server's live children that are neither a run's root nor
        a spare: what the run that just ended left behind (re-parented here; the server serves one
        run at a time). Read from /proc only here, in the server, at a run's end."""
        left: list[list[int]] = []
        for pid in _own_children():
            if pid not in self.children:
                ticks = _read_ticks(pid)
                if ticks is not None:  # None: gone already
                    left.append([pid, ticks])
        return left

    def refill(self) -> None:
        if self.use_spare and self.spare is None:
            try:
                self.spare = self.fork_child(self.warm)
            except OSError:
                self.spare = None  # try again at the next request
                return
            if self.direct:
                self.announce()

    def announce(self) -> None:
        """Give the pool the new spare's socket (and pid, start ticks): the pool sends a run straight
        to it once the spare's "r" is there (the pool reads it: its own session is set up by then)."""
        assert self.spare is not None
        pid, link = self.spare
        msg: dict[str, Any] = {"t": "spare", "pid": pid}
        ticks = self.ticks.get(pid)
        if ticks is not None:
            msg["ticks"] = ticks
        try:
            socket.send_fds(self.sock, [encode(msg)], [link.fileno()])
        except OSError:
            return
        self.offered.add(pid)

    def spawn(self, req: dict[str, Any], fds: list[int]) -> None:
        seq = req.get("seq")
        try:
            if len(fds) != 2:
                self.send({"t": "started", "seq": seq, "pid": 0, "error": "the run's output pipes did not arrive"})
                return
            problem = cwd_problem(req.get("cwd", ""))
            if problem is not None:
                self.send({"t": "started", "seq": seq, "pid": 0, "error": problem})
                return
            # An announced spare may take this run too: the pool sends through the server only
            # when it has no spare (the announcement is still on its way: this run's "started"
            # names the spare, and the pool lets go of it) or gave it back with this request; a
            # spare the pool sent a run to was reaped before the pool could send another.
            preload = req.get("function_preload")
            if isinstance(preload, dict) and _preload_function(preload) and self.spare is not None:
                self.spare[1].close()  # forked before the import: it lacks the module; it exits on EOF
                self.spare = None
            if not (self.spare is not None and self._hand_to_spare(req, fds, seq)):
                self._fork_for(req, fds, seq)
        finally:
            for fd in fds:
                os.close(fd)
        # The next request's child is forked once this run ends (or REFILL_AFTER into it): a fork
        # now would take a core from the run's start and from the pool's reading of it.
        self.refill_at = time.monotonic() + REFILL_AFTER

    def _hand_to_spare(self, req: dict[str, Any], fds: list[int], seq: Any) -> bool:
        """The fast path: once the spare says it has its session, report its pid, then give it the request.

        (Reported first, so a run never runs unseen; if the hand-over fails, the spare is dead
        and its reaping reports the run's end.) False if the spare died before: fork instead.
        """
        assert self.spare is not None
        (pid, link), self.spare = self.spare, None
        try:
            ready = link.recv(1)  # normally long since in the buffer (the pool never read it: see spawn)
        except OSError:
            ready = b""
        if ready != b"r":
            link.close()
            return False
        self.offered.discard(pid)  # a run through the server: its "started" names the pid
        self.children[pid] = seq
        self.started(seq, pid)
        with contextlib.suppress(OSError):
            socket.send_fds(link, [encode(req)], fds)
        link.close()
        return True

    def _fork_for(self, req: dict[str, Any], fds: list[int], seq: Any) -> None:
        """Without a spare: fork now, and report the pid once the child has its own session."""
        try:
            pid, link = self.fork_child(warm=False)
        except OSError as exc:
            self.send({"t": "started", "seq": seq, "pid": 0, "error": f"fork failed: {exc.strerror or exc}"})
            return
        self.children[pid] = seq
        try:
            socket.send_fds(link, [encode(dict(req, handshake=True))], fds)
            reply = link.recv(4096)
            if reply.startswith(b"r"):  # its "I have my session", then its answer to the request
                reply = reply[1:] or link.recv(4096)
        except OSError:
            reply = b""
        if reply == b"k":
            self.started(seq, pid)
            with contextlib.suppress(OSError):
                link.sendall(b"g")
        else:
            why = reply[1:].decode("utf-8", "replace") if reply.startswith(b"E") else "the child died while starting"
            self.send({"t": "started", "seq": seq, "pid": pid, "error": why})
        link.close()

    def reap(self) -> None:
        ended: list[dict[str, Any]] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            seq = self.children.pop(pid, None)
            self.ticks.pop(pid, None)
            offered = pid in self.offered
            self.offered.discard(pid)
            if self.spare is not None and self.spare[0] == pid:  # the spare died, or ended the run the pool sent it
                self.spare[1].close()
                self.spare = None
            if seq is not None or offered:  # seq None: the pool matches the pid (its spare, or the run it sent there)
                ended.append({"t": "exit", "seq": seq, "pid": pid, "code": os.waitstatus_to_exitcode(status)})
            # (a pid with no seq that is no spare: something a run left behind, killed by the pool - reaped here)
        for msg in ended:
            if self.subreaper:
                left = self.left_behind()
                if left:
                    msg["left"] = left
            self.send(msg)
        if ended:
            self.refill_at = 0.0  # the run is over: fork the next spare now, while the pool takes the exit
            self.refill()

    def refill_due(self) -> float | None:
        """Seconds until the spare is to be forked (None: not due, or there is one)."""
        if self.spare is not None or not self.use_spare:
            return None
        return max(0.0, self.refill_at - time.monotonic())

    def serve(self) -> None:
        decoder = Decoder()
        self.refill()
        while True:
            try:
                ready, _, _ = select.select([self.sock.fileno(), self.wake_r], [], [], self.refill_due())
            except InterruptedError:
                continue
            if self.wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self.wake_r, 4096):
                        pass
            self.reap()
            if self.sock.fileno() in ready:
                try:
                    data, fds, _flags, _addr = socket.recv_fds(self.sock, RECV_SIZE, MAX_FDS)
                except OSError as exc:
                    if exc.errno in (errno.EINTR, errno.EAGAIN):
                        continue
                    return
                if not data:
                    return  # the pool is gone
                for msg in decoder.feed(data, fds):
                    if msg.get("t") == "run":
                        take, decoder.fds = decoder.fds[:2], decoder.fds[2:]
                        self.spawn(msg, take)
                    elif msg.get("t") == "quit":
                        return
            if self.refill_due() == 0.0:
                self.refill()

    def shutdown(self) -> None:
        """Kill what still runs (each child's whole session group, the spare too, and whatever
        re-parented here), reap, and go."""
        if self.spare is not None:
            self.spare[1].close()
            self.spare = None
        if self.subreaper:
            for pid in _own_children():
                self.children.setdefault(pid, None)
        for pid in list(self.children):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 2.0
        while self.children and time.monotonic() < deadline:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.005)
            else:
                self.children.pop(pid, None)


def _noop(signum: int, frame: object) -> None:
    pass


def main(argv: list[str] | None = None) -> int:
    global _STDIO, _STARTUP_UNBUFFERED, _BASE_ENV
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("--"):  # run through BOOT: the first argument is this file
        args = args[1:]
    fd, preload, spare, warm, direct = -1, "", True, True, True
    it = iter(args)
    for arg in it:
        if arg == "--fd":
            fd = int(next(it))
        elif arg == "--preload":
            preload = next(it)
        elif arg == "--no-spare":
            spare = False
        elif arg == "--no-warm-up":
            warm = False
        elif arg == "--no-direct":
            direct = False
    if fd < 0:
        print("usage: forkserver --fd N [--preload mod1,mod2]", file=sys.stderr)
        return 2
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdout = sys.stdout
    _STDIO = (getattr(stdout, "encoding", None) or "utf-8", getattr(stdout, "errors", None) or "strict")
    _STARTUP_UNBUFFERED = bool(getattr(stdout, "write_through", False))
    import pkgutil  # noqa: F401 - runpy.run_path imports it on every call
    import runpy  # noqa: F401 - every child needs it

    loaded, failed = _preload([name for name in preload.split(",") if name])
    server = _Server(sock, spare=spare, warm=warm)
    server.subreaper = _become_subreaper()
    server.direct = direct
    signal.signal(signal.SIGCHLD, _noop)
    signal.set_wakeup_fd(server.wake_w, warn_on_full_buffer=False)
    gc.collect()
    gc.freeze()  # the children's first collections then leave the shared heap alone
    _BASE_ENV = dict(os.environ)  # what a run's "env_diff" is relative to (a preload may have changed it)
    server.send(
        {"t": "ready", "pid": os.getpid(), "preloaded": loaded, "failed": failed, "env": _BASE_ENV, "subreaper": server.subreaper,
         "direct": server.direct and server.use_spare}
    )
    try:
        server.serve()
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
