"""Run one function task in this (child) interpreter: `python runner.py TARGET`.

TARGET is "package.module:func" (imported from the working directory and sys.path) or
"path/to/file.py:func" (loaded as module `__mp_main__`, so its `if __name__ == "__main__"`
block does not run). The call comes from the file named by $PRISMQ_FUNCTION_CALL, the report
goes to the file named by $PRISMQ_FUNCTION_RESULT (written to a temporary name, 0600, then
renamed, so a killed child leaves no half report). Both variables are removed before the
function runs, so what it starts does not inherit them. The function's own stdout/stderr are
the run's output, as for a script; an exception is also printed to stderr with its traceback.

Exit status: 0 the function returned; 1 it raised (or its result could not be encoded);
2 the runner could not even call it (bad target, unreadable call). This file imports nothing
of PrismQ, so any Python (a user's venv) can run it, and it never runs inside the app.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

CALL_FILE_VAR = "PRISMQ_FUNCTION_CALL"
RESULT_FILE_VAR = "PRISMQ_FUNCTION_RESULT"
SERIALIZER_VAR = "PRISMQ_FUNCTION_SERIALIZER"
PATH_VAR = "PRISMQ_FUNCTION_PATH"  # folders to import from (the root of the caller's package)
_PY_SUFFIXES = (".py", ".pyw")

_module_cache: dict[str, Any] = {}


def _write_report(path: str, report: dict[str, Any]) -> bool:
    """Atomically write the report (0600); False (and a line on stderr) when it cannot be written."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        data = json.dumps(report, allow_nan=False).encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            # no fsync: the report lives for milliseconds (the engine stores it and removes the file)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return True
    except (OSError, TypeError, ValueError) as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        sys.stderr.write(f"prismq: the function's result could not be written: {exc}\n")
        return False


def _user_traceback(exc: BaseException) -> str:
    """The traceback without the runner's own frames (they say nothing about the user's code)."""
    tb = exc.__traceback__
    here = os.path.abspath(__file__)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == here and tb.tb_next is not None:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _print_error(exc: BaseException) -> None:
    sys.stderr.write(_user_traceback(exc))
    sys.stderr.flush()


def _error_report(exc: BaseException) -> dict[str, Any]:
    tb = _user_traceback(exc)
    return {"error": {"type": type(exc).__qualname__, "module": type(exc).__module__,
                      "message": str(exc), "traceback": tb}}


class TargetError(Exception):
    """The target cannot be imported or is not callable (exit status 2)."""


def load_target(target: str, cwd: str | None = None) -> Callable[..., Any]:
    """The callable TARGET names (a `@task` wrapper is unwrapped to its function)."""
    module_part, sep, attr = target.rpartition(":")
    if not sep or not module_part or not attr:
        raise TargetError(f"not a function target (expected module:function or file.py:function): {target!r}")
    module = _module_cache.get(module_part)
    if module is None:
        if module_part.lower().endswith(_PY_SUFFIXES):
            path = os.path.abspath(os.path.join(cwd or os.getcwd(), os.path.expanduser(module_part)))
            if not os.path.isfile(path):
                raise TargetError(f"function file not found: {module_part}")
            folder = os.path.dirname(path)
            if folder not in sys.path:
                sys.path.insert(0, folder)
            spec = importlib.util.spec_from_file_location("__mp_main__", path)
            if spec is None or spec.loader is None:
                raise TargetError(f"cannot load {module_part} as Python")
            module = importlib.util.module_from_spec(spec)
            sys.modules["__mp_main__"] = module
            spec.loader.exec_module(module)
        else:
            try:
                module = importlib.import_module(module_part)
            except ModuleNotFoundError as exc:
                if exc.name and module_part.startswith(exc.name):
                    raise TargetError(f"module not found: {module_part}") from None
                raise
        _module_cache[module_part] = module
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"{module_part} has no function {attr}") from None
    obj = getattr(obj, "__prismq_function__", obj)
    if not callable(obj):
        raise TargetError(f"{module_part}:{attr} is not callable")
    func: Callable[..., Any] = obj
    return func


def read_call(path: str | None, serializer: str) -> tuple[list[Any], dict[str, Any]]:
    if not path:
        return [], {}
    with open(path, "rb") as fh:
        text = fh.read().decode("utf-8")
    if not text:
        return [], {}
    if serializer == "pickle":
        import base64
        import pickle

        args, kwargs = pickle.loads(base64.b64decode(text))
        return list(args), dict(kwargs)
    data = json.loads(text)
    return list(data.get("args", [])), dict(data.get("kwargs", {}))


def call(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call `func`; a coroutine function (or a returned awaitable) is run to completion."""
    if inspect.iscoroutinefunction(func):
        return asyncio.run(func(*args, **kwargs))
    value = func(*args, **kwargs)
    if inspect.isawaitable(value):
        async def wait() -> Any:
            return await value
        return asyncio.run(wait())
    return value


def encode_value(value: Any, serializer: str) -> dict[str, Any]:
    if serializer == "pickle":
        import base64
        import pickle

        return {"pickle": base64.b64encode(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")}
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the function returned {type(value).__name__}, which is not JSON-serialisable ({exc}); "
                        "return JSON values, or opt in to serializer='pickle' for trusted data") from None
    return {"value": value}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write(f"usage: runner.py MODULE:FUNCTION (call and result files in ${CALL_FILE_VAR} / ${RESULT_FILE_VAR})\n")
        return 2
    call_path = os.environ.pop(CALL_FILE_VAR, None)
    result_path = os.environ.pop(RESULT_FILE_VAR, None)
    serializer = os.environ.pop(SERIALIZER_VAR, "json")
    # like `python -m`: the working directory first, never the runner's own folder
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, os.getcwd())
    for folder in reversed([p for p in os.environ.pop(PATH_VAR, "").split(os.pathsep) if p]):
        if folder not in sys.path:
            sys.path.insert(1, folder)
    try:
        func = load_target(argv[0])
        args, kwargs = read_call(call_path, serializer)
    except TargetError as exc:
        sys.stderr.write(f"prismq: {exc}\n")
        if result_path:
            _write_report(result_path, {"error": {"type": "TargetError", "module": "prismq", "message": str(exc),
                                                  "traceback": ""}})
        return 2
    except BaseException as exc:  # noqa: BLE001 - importing the user's module raised: report it
        _print_error(exc)
        if result_path:
            _write_report(result_path, _error_report(exc))
        return 2
    try:
        value = call(func, args, kwargs)
        report = encode_value(value, serializer)
    except SystemExit as exc:  # the function called sys.exit(): an ordinary exit code, no value
        code = exc.code
        if code is None or code == 0:
            report = {"value": None}
        else:
            _print_error(exc)
            if result_path:
                _write_report(result_path, _error_report(exc))
            return code if isinstance(code, int) else 1
    except BaseException as exc:  # noqa: BLE001 - the function raised: that is its result
        _print_error(exc)
        sys.stderr.flush()
        if result_path:
            _write_report(result_path, _error_report(exc))
        return 1
    sys.stdout.flush()
    if result_path and not _write_report(result_path, report):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
