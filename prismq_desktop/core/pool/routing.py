"""What goes to a pool worker: runs of a script or module by the workers' own interpreter.

A run is pooled only if a warm worker would behave as the fresh `python script.py` the spec
asks for: the same interpreter, no interpreter options, and the same interpreter-startup
environment (`STARTUP_VARS`) as the workers. `worker_request` builds the request a worker
gets (see forkserver.py for the message) or says why not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from prismq_desktop.core.functions import payload as function_payload
from prismq_desktop.core.process.launch import FUNCTION_RUNNER, Launch

#: Modules a worker imports before serving (a run that imports them finds them loaded).
DEFAULT_PRELOAD: tuple[str, ...] = (
    "asyncio",
    "json",
    "sqlite3",
    "decimal",
    "email",
    "email.message",
    "email.parser",
    "logging",
    "subprocess",
    "argparse",
    "pathlib",
    "datetime",
    "typing",
    "dataclasses",
    "collections",
    "re",
    "threading",
    "concurrent.futures",
    "urllib.parse",
    "csv",
    "tempfile",
    "shutil",
    "random",
    "hashlib",
    "base64",
)

#: Environment variables the interpreter reads at startup: a run whose values differ from the
#: workers' would not behave as a fresh interpreter in a worker, so it is spawned normally.
#: (PYTHONUNBUFFERED and PYTHONDONTWRITEBYTECODE are applied per run.)
STARTUP_VARS: tuple[str, ...] = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONHASHSEED",
    "PYTHONSAFEPATH",
    "PYTHONNOUSERSITE",
    "PYTHONUSERBASE",
    "PYTHONPLATLIBDIR",
    "PYTHONUTF8",
    "PYTHONIOENCODING",
    "PYTHONLEGACYWINDOWSSTDIO",
    "PYTHONCOERCECLOCALE",
    "PYTHONOPTIMIZE",
    "PYTHONDEBUG",
    "PYTHONVERBOSE",
    "PYTHONINSPECT",
    "PYTHONWARNINGS",
    "PYTHONDEVMODE",
    "PYTHONMALLOC",
    "PYTHONMALLOCSTATS",
    "PYTHONFAULTHANDLER",
    "PYTHONTRACEMALLOC",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONPYCACHEPREFIX",
    "PYTHONCASEOK",
    "PYTHONINTMAXSTRDIGITS",
    "PYTHONNODEBUGRANGES",
    "PYTHONWARNDEFAULTENCODING",
    "PYTHONEXECUTABLE",
    "PYTHONPERFSUPPORT",
    "LC_ALL",
    "LC_CTYPE",
    "LANG",
)


_SAME_PYTHON: dict[tuple[str, str], bool] = {}


def same_python(path: str, python: str) -> bool:
    """Is `path` the interpreter `python` (an absolute path)? (Cached: it is asked for every run.)"""
    key = (path, python)
    got = _SAME_PYTHON.get(key)
    if got is None:
        if len(_SAME_PYTHON) > 256:
            _SAME_PYTHON.clear()
        got = _SAME_PYTHON[key] = _same_python(path, python)
    return got


def _same_python(path: str, python: str) -> bool:
    candidate = os.path.normcase(os.path.abspath(path))
    mine = os.path.normcase(python)
    if candidate == mine:
        return True
    # python / python3 / python3.11 in one bin directory are the same interpreter
    return os.path.dirname(candidate) == os.path.dirname(mine) and os.path.realpath(candidate) == os.path.realpath(mine)


def worker_request(launch: Launch, python: str, worker_env: Mapping[str, str]) -> dict[str, Any] | str:
    """The request a worker of `python` started with `worker_env` gets for `launch`, or why it cannot
    run it as a fresh `python script.py` would."""
    argv = launch.argv
    if len(argv) < 2 or not same_python(argv[0], python):
        return "not a script run by the pool's interpreter"
    if argv[1] == "-m":
        if len(argv) < 3 or not all(part.isidentifier() for part in argv[2].split(".")):
            return "not a module run"
        kind, target, script_argv = "module", argv[2], [argv[2], *argv[3:]]
    elif argv[1].startswith("-"):
        return f"interpreter option {argv[1]}"
    else:
        kind, target, script_argv = "path", argv[1], list(argv[1:])
    env_get = launch.env.get
    if list(map(env_get, STARTUP_VARS)) != list(map(worker_env.get, STARTUP_VARS)):  # one C-level pass each
        for var in STARTUP_VARS:
            if env_get(var) != worker_env.get(var):
                return f"{var} differs from the workers' environment"
    request: dict[str, Any] = {
        "t": "run",
        "kind": kind,
        "target": target,
        "argv": script_argv,
        "cwd": launch.cwd,
        "env": launch.env,
        "unbuffered": bool(launch.env.get("PYTHONUNBUFFERED")),
    }
    preload = function_preload(launch)
    if preload is not None:
        request["function_preload"] = preload
    return request


def function_preload(launch: Launch) -> dict[str, Any] | None:
    """For a function task of an importable module: what the worker imports once and keeps
    (the module, and the folders the runner would put on sys.path), so later runs find it loaded.
    None for scripts, and for file targets (loaded afresh as __mp_main__ each time)."""
    argv = launch.argv
    if len(argv) != 3 or os.path.normcase(os.path.abspath(argv[1])) != os.path.normcase(FUNCTION_RUNNER):
        return None
    module = argv[2].rpartition(":")[0]
    if not module or not all(part.isidentifier() for part in module.split(".")):
        return None
    extra = [p for p in launch.env.get(function_payload.PATH_VAR, "").split(os.pathsep) if p]
    return {"module": module, "paths": [launch.cwd, *extra], "runner": argv[1]}
