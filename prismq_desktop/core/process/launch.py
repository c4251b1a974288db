"""Turn a RunSpec into the exact argv, environment and cwd to start, or a clear error.

Everything a person can get wrong (a missing script, a directory, a file that is not
executable, an unknown interpreter, a missing cwd, bad quoting, an unknown encoding)
is caught here, before any process exists, as a `LaunchError` whose message is shown
in history as the run's "failed to start" reason.
"""

from __future__ import annotations

import base64
import codecs
import dataclasses
import functools
import itertools
import math
import os
import secrets
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prismq_desktop.core.functions import payload as function_payload
from prismq_desktop.core.models import RunSpec, TargetKind
from prismq_desktop.core.process import cmdline, interp

#: Variables every Python child gets unless the spec overrides them: unbuffered output
#: (so lines appear as they are printed) and UTF-8 mode (so output decodes everywhere).
CHILD_DEFAULTS = {"PYTHONUNBUFFERED": "1", "PYTHONUTF8": "1"}

_PY_SUFFIXES = (".py", ".pyw")

#: Set in every run's environment and inherited by everything it starts: the run's id (a
#: script may read it) and a tag unique to this start, by which `ProcessTree` finds the run's
#: descendants that re-parented away from its tree (a double-forked daemon).
RUN_ID_VAR = "PRISMQ_RUN_ID"
RUN_TAG_VAR = "PRISMQ_RUN_TAG"


class LaunchError(Exception):
    """The spec cannot be started; the message is meant for a person."""


@dataclass(frozen=True)
class Launch:
    """A fully resolved command line, ready for any executor."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    encoding: str


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


@functools.lru_cache(maxsize=32)
def _real_python(path: str) -> str:
    """Resolve a launcher (such as a pyenv shim, ~100 ms per start) to the real binary.

    Windows: `py.exe` is matched case-insensitively (shutil.which returns the PATHEXT case,
    `py.EXE`), and the probe opens no console window (interp.probe: CREATE_NO_WINDOW).
    """
    norm = path.replace("\\", "/")
    if "/shims/" not in norm and not norm.casefold().endswith("/py.exe"):
        return path
    return interp.probe(path) or path


def default_interpreter() -> str:
    """The Python that runs user scripts when none is chosen.

    Inside a frozen app `sys.executable` is the app itself, never a Python, so look on PATH
    (on Windows: `py -3`, then python, rejecting the Store's alias that does not run; interp.py).
    """
    if not is_frozen():
        return sys.executable
    if sys.platform == "win32":
        found = interp.choose(sys.platform, os.environ.get("PATH", ""), os.environ.get("PATHEXT", interp.DEFAULT_PATHEXT))
        if found:
            return found
        raise LaunchError(interp.NO_PYTHON)
    for name in ("python3", "python"):
        found = shutil.which(name)
        if found:
            return _real_python(found)
    raise LaunchError("no Python interpreter found on PATH; choose one in the run's settings")


def resolve_interpreter(interpreter: str | None, env_path: str | None = None) -> str:
    if not interpreter:
        return default_interpreter()
    found = shutil.which(interpreter, path=env_path) if os.sep not in interpreter and "/" not in interpreter else None
    candidate: str = found or os.path.abspath(os.path.expanduser(interpreter))
    if not os.path.exists(candidate):
        raise LaunchError(f"interpreter not found: {interpreter}")
    if os.path.isdir(candidate):
        raise LaunchError(f"interpreter is a directory, not a program: {interpreter}")
    if not os.access(candidate, os.X_OK):
        raise LaunchError(f"interpreter is not executable: {interpreter}")
    if sys.platform == "win32" and interp.is_store_alias(candidate):
        real = interp.probe(candidate)  # the Store alias runs only when the Store's Python is installed
        if real is None:
            raise LaunchError(f"{interpreter} is the Microsoft Store's alias, not an interpreter ({candidate}); "
                              "install Python from python.org or choose another interpreter")
        return real
    return _real_python(candidate)


def split_args(args: tuple[str, ...] | str, platform: str = sys.platform) -> tuple[str, ...]:
    """Split a typed argument string as the child will receive it: POSIX shell quoting (no
    expansion), or on Windows the C runtime's rules (`cmdline.split_windows`), where a backslash
    is a path separator and never an escape."""
    if not isinstance(args, str):
        return args
    try:
        return tuple(cmdline.split(args, platform))
    except ValueError as exc:
        raise LaunchError(f"cannot parse arguments {args!r}: {exc}") from None


_BUNDLE_VARS = ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "LIBPATH")


def unfreeze_environment(env: dict[str, str]) -> dict[str, str]:
    """Undo what a frozen (PyInstaller) app put in its own environment, for a child's sake.

    The bundle prepends its folder to the library path (keeping the original in `<VAR>_ORIG`)
    and points Qt at its plugins; a user's Python must see the machine as it was.
    """
    if not is_frozen():
        return env
    bundle = os.path.realpath(getattr(sys, "_MEIPASS", os.path.dirname(sys.executable)))
    for var in _BUNDLE_VARS:
        orig = env.pop(var + "_ORIG", None)
        if orig is not None:
            env[var] = orig
        elif bundle in os.path.realpath(env.get(var, "") or "/nonexistent"):
            env.pop(var, None)
    bundle_vars = ("QML2_IMPORT_PATH", "QML_IMPORT_PATH", "PYTHONHOME", "PYTHONPATH")
    for key in list(env):
        ours = key.startswith("QT_") or key in bundle_vars
        if ours and (bundle in env[key] or bundle in os.path.realpath(env[key])):
            env.pop(key, None)  # set by the bundle; a user's own QT_* value is kept
    return env


def self_command(frozen: bool | None = None, executable: str | None = None) -> list[str]:
    """How to start this app's own command line again (a fire-and-forget run's detached process).

    Frozen, `sys.executable` is the bundle's EXE, not a Python (PyInstaller docs, "Run-time
    Information", "Using sys.executable and sys.argv[0]"): it runs `cli.main` (packaging/entry.py)
    and would take `-m` as a command. Otherwise it is a Python, and `-m prismq_desktop` runs us.
    """
    frozen = is_frozen() if frozen is None else frozen
    executable = executable or sys.executable
    return [executable] if frozen else [executable, "-m", "prismq_desktop"]


CREATE_BREAKAWAY_FROM_JOB = 0x01000000
DETACHED_PROCESS = 0x00000008


def detached_flags(breakaway: bool) -> int:
    """Windows flags of a detached process: no console (DETACHED_PROCESS) and, if allowed, out of
    the job the caller is in - a terminal's or CI's kill-on-close job would end a fire-and-forget
    run with it. CreateProcess fails (access denied) when that job does not allow breakaway, so
    the caller retries without (learn.microsoft.com, "Process Creation Flags":
    CREATE_BREAKAWAY_FROM_JOB needs JOB_OBJECT_LIMIT_BREAKAWAY_OK on the job)."""
    return DETACHED_PROCESS | (CREATE_BREAKAWAY_FROM_JOB if breakaway else 0)


def restore_dll_search_path() -> None:
    """Windows, frozen: the bootloader's SetDllDirectory is inherited by children; reset it.

    When: once the QApplication exists (Qt has loaded its platform plugin with the bundle's
    search path) and before the first run starts. Later loads do not need it: since Python 3.8
    extension modules and ctypes resolve their DLLs from the system paths, the loading DLL's own
    folder and os.add_dll_directory() folders only (docs.python.org, "What's New In Python 3.8",
    Windows DLL resolution; os.add_dll_directory), and PyInstaller keeps them beside their PYD.
    """
    if is_frozen() and sys.platform == "win32":
        import ctypes

        ctypes.windll.kernel32.SetDllDirectoryW(None)  # type: ignore[attr-defined]


_env_cache: tuple[dict[Any, Any], dict[str, str], dict[str, str]] | None = None


def environ_snapshot() -> tuple[dict[str, str], dict[str, str]]:
    """(a copy of os.environ, the children's base environment), made again only when os.environ
    changed: copying it decodes every variable, a fixed cost per run a trivial child notices.
    The check compares the raw mapping (`os.environ._data`, C-speed), so a change is never missed."""
    global _env_cache
    data = getattr(os.environ, "_data", None)
    cached = _env_cache
    if cached is not None and data is not None and cached[0] == data:
        return cached[1], cached[2]
    current = dict(os.environ)
    base = unfreeze_environment(dict(current))
    base.update(CHILD_DEFAULTS)
    if isinstance(data, dict):
        _env_cache = (dict(data), current, base)
    return current, base


def child_environment(overrides: Mapping[str, str | None], base: Mapping[str, str] | None = None) -> dict[str, str]:
    if base is None:
        env = dict(environ_snapshot()[1])
    else:
        env = unfreeze_environment(dict(base))
        env.update(CHILD_DEFAULTS)
    for key, override in overrides.items():
        if override is None:
            env.pop(key, None)
        else:
            env[str(key)] = str(override)
    return env


_tag_source: tuple[int, str, Iterator[int]] | None = None  # (pid, random token, counter) of this process


def mark_run(launch: Launch, run_id: int) -> Launch:
    """`launch` with the run's marker variables (`RUN_ID_VAR`, `RUN_TAG_VAR`) in its environment.

    The tag is unique among every run of every process (pid, a random token drawn once per
    process, a counter: two engines of one process may share run ids), without drawing
    random bytes for each run."""
    global _tag_source
    pid = os.getpid()
    source = _tag_source
    if source is None or source[0] != pid:  # first run, or a forked child
        source = _tag_source = (pid, secrets.token_hex(6), itertools.count())
    tag = f"{pid}-{run_id}-{source[1]}{next(source[2]):x}"
    return dataclasses.replace(launch, env={**launch.env, RUN_ID_VAR: str(run_id), RUN_TAG_VAR: tag})


def _duration_problem(label: str, value: object, *, zero_ok: bool = False) -> str | None:
    """Why `value` is not a usable duration in seconds (None when it is)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{label} must be a number of seconds, got {value!r}"
    if not math.isfinite(value):
        return f"{label} must be a finite number of seconds, got {value!r}"
    if value < 0 or (value == 0 and not zero_ok):
        return f"{label} must be {'zero or more' if zero_ok else 'positive'}, got {value!r}"
    return None


def check_durations(spec: RunSpec) -> None:
    """Refuse a NaN, infinite, negative (or, for timeouts, zero) soft/hard timeout or grace period."""
    problems = [_duration_problem(label, value) for label, value in
                (("soft timeout", spec.soft_timeout), ("hard timeout", spec.hard_timeout)) if value is not None]
    problems.append(_duration_problem("grace period", spec.grace_period, zero_ok=True))
    for problem in problems:
        if problem:
            raise LaunchError(problem)


def check_environment(env: Mapping[str, str | None]) -> None:
    """Refuse variables the OS cannot hold: an empty name, a name with `=`, a NUL anywhere."""
    for raw_key, value in env.items():
        key = str(raw_key)
        if not key:
            raise LaunchError("environment variable name is empty")
        if "=" in key:
            raise LaunchError(f"environment variable name cannot contain '=': {key!r}")
        if "\0" in key:
            raise LaunchError(f"environment variable name cannot contain a NUL character: {key!r}")
        if value is not None and "\0" in str(value):
            raise LaunchError(f"environment variable {key} cannot contain a NUL character")


def _refuse_nul(values: tuple[str, ...]) -> None:
    for value in values:
        if "\0" in value:
            raise LaunchError(f"a NUL character cannot be passed to a process: {value!r}")


def _kind_of(spec: RunSpec) -> TargetKind:
    if spec.kind is not TargetKind.AUTO:
        return spec.kind
    return TargetKind.SCRIPT if spec.target.lower().endswith(_PY_SUFFIXES) else TargetKind.EXECUTABLE


#: The file a child interpreter runs to call a function task (it imports nothing of PrismQ).
FUNCTION_RUNNER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "functions", "runner.py")


def check_function_target(target: str, cwd: str) -> None:
    """Refuse a FUNCTION target that cannot name a function: "pkg.mod:func" or "file.py:func"."""
    module, sep, attr = target.strip().rpartition(":")
    if not sep or not module or not attr:
        raise LaunchError(f"not a function target (expected module:function or file.py:function): {target!r}")
    if not all(part.isidentifier() for part in attr.split(".")):
        raise LaunchError(f"not a function name: {attr!r}")
    if module.lower().endswith(_PY_SUFFIXES):
        path = os.path.join(cwd, os.path.expanduser(module))
        if not os.path.isfile(path):
            raise LaunchError(f"function file not found: {module}")
        if not os.access(path, os.R_OK):
            raise LaunchError(f"function file is not readable: {module}")
    elif not all(part.isidentifier() for part in module.split(".")):
        raise LaunchError(f"not a module name: {module!r}")


def _check_basics(spec: RunSpec) -> None:
    """What `resolve` and `check_spec` both refuse first: an empty target, an unknown encoding,
    bad durations or environment names, a NUL in the target, cwd or interpreter."""
    if not spec.target or not spec.target.strip():
        raise LaunchError("nothing to run: the script, module or command is empty")
    try:
        codecs.lookup(spec.encoding)
    except LookupError:
        raise LaunchError(f"unknown output encoding: {spec.encoding}") from None
    check_durations(spec)
    check_environment(spec.env)
    _refuse_nul((spec.target, spec.cwd or "", spec.interpreter or ""))


def check_spec(spec: RunSpec) -> None:
    """The checks of `resolve` that need nothing of this machine (for a run another machine
    resolves: a remote worker finds the script, interpreter and cwd on its own disk)."""
    _check_basics(spec)
    _refuse_nul(split_args(spec.args))
    if spec.kind is TargetKind.MODULE and not all(p.isidentifier() for p in spec.target.split(".")):
        raise LaunchError(f"not a module name: {spec.target!r}")


def remote_preview(spec: RunSpec) -> Launch:
    """What the submitting side records for a remote run until the worker reports the real argv
    and cwd: the spec's own words, and only the spec's environment overrides (never this
    machine's environment: it is not what the worker's child gets)."""
    check_spec(spec)
    kind = _kind_of(spec)
    head: tuple[str, ...] = (spec.interpreter or "python", spec.target) if kind is TargetKind.SCRIPT else \
        (spec.interpreter or "python", "-m", spec.target) if kind is TargetKind.MODULE else (spec.target,)
    env = {str(k): str(v) for k, v in spec.env.items() if v is not None}
    return Launch(argv=(*head, *split_args(spec.args)), env=env, cwd=spec.cwd or "", encoding=spec.encoding)


def resolve(spec: RunSpec) -> Launch:
    """Resolve `spec` or raise LaunchError; starts nothing."""
    _check_basics(spec)

    cwd = os.path.abspath(os.path.expanduser(spec.cwd)) if spec.cwd else os.getcwd()
    if not os.path.exists(cwd):
        raise LaunchError(f"working directory does not exist: {cwd}")
    if not os.path.isdir(cwd):
        raise LaunchError(f"working directory is not a directory: {cwd}")

    args = split_args(spec.args)
    _refuse_nul(args)
    env = child_environment(spec.env)
    kind = _kind_of(spec)

    if kind is TargetKind.SCRIPT:
        script = os.path.join(cwd, os.path.expanduser(spec.target))
        if not os.path.exists(script):
            raise LaunchError(f"script not found: {spec.target}")
        if os.path.isdir(script):
            raise LaunchError(f"script is a directory, not a file: {spec.target}")
        if not os.access(script, os.R_OK):
            raise LaunchError(f"script is not readable: {spec.target}")
        python = resolve_interpreter(spec.interpreter, env.get("PATH"))
        argv: tuple[str, ...] = (python, os.path.abspath(script), *args)
    elif kind is TargetKind.FUNCTION:
        check_function_target(spec.target, cwd)
        if args:
            raise LaunchError("a function task takes its arguments as JSON (payload), not as command-line arguments")
        try:
            if spec.serializer.value == "pickle":  # never unpickled in the app: only the child loads it
                base64.b64decode(spec.payload or "", validate=True)
            else:
                function_payload.decode_call(spec.payload)
        except (ValueError, TypeError) as exc:
            raise LaunchError(f"the function's arguments cannot be read: {exc}") from None
        if not os.path.isfile(FUNCTION_RUNNER):
            raise LaunchError(f"the function runner is missing from this installation: {FUNCTION_RUNNER}")
        python = resolve_interpreter(spec.interpreter, env.get("PATH"))
        argv = (python, FUNCTION_RUNNER, spec.target.strip())
    elif kind is TargetKind.MODULE:
        parts = spec.target.split(".")
        if not all(p.isidentifier() for p in parts):
            raise LaunchError(f"not a module name: {spec.target!r}")
        python = resolve_interpreter(spec.interpreter, env.get("PATH"))
        argv = (python, "-m", spec.target, *args)
    else:
        target = os.path.expanduser(spec.target)
        has_dir = os.sep in target or "/" in target
        path = os.path.join(cwd, target) if has_dir else shutil.which(target, path=env.get("PATH"))
        if not path or not os.path.exists(path):
            raise LaunchError(f"command not found: {spec.target}")
        if os.path.isdir(path):
            raise LaunchError(f"{spec.target} is a directory, not a program")
        if not os.access(path, os.X_OK):
            raise LaunchError(f"{spec.target} is not executable (no execute permission)")
        argv = (os.path.abspath(path), *args)
    return Launch(argv=argv, env=env, cwd=cwd, encoding=spec.encoding)
