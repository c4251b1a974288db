"""A function task's call and result as they cross the process boundary.

The call (positional and keyword arguments) is stored in the run's spec and written to a file
(0600) the child reads; the result comes back in another file (0600) that the child writes
atomically, so nothing the function prints can be mistaken for its result. JSON by default;
pickle only when the caller opts in (`Serializer.PICKLE`): unpickling runs arbitrary code, so
never use it for data that crosses a trust boundary.
"""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

#: Environment variables the runner reads (and removes before the function runs).
CALL_FILE_VAR = "PRISMQ_FUNCTION_CALL"
RESULT_FILE_VAR = "PRISMQ_FUNCTION_RESULT"
SERIALIZER_VAR = "PRISMQ_FUNCTION_SERIALIZER"
PATH_VAR = "PRISMQ_FUNCTION_PATH"
#: A follow-up script of a function run gets the parent's result here (JSON text) ...
PARENT_RESULT_VAR = "PRISMQ_PARENT_RESULT"
#: ... or, when it is longer than PARENT_RESULT_MAX_ENV characters, the path of a file (0600) holding it.
PARENT_RESULT_FILE_VAR = "PRISMQ_PARENT_RESULT_FILE"
PARENT_RESULT_MAX_ENV = 32 * 1024
#: A result file longer than this is refused (the run fails, saying so): the registry is no blob store.
MAX_RESULT_BYTES = 16 * 1024 * 1024


class PayloadError(ValueError):
    """Arguments or a result that cannot be encoded or decoded; the message is for a person."""


def _reject_non_finite(value: str) -> Any:
    raise PayloadError(f"{value} is not valid JSON")


def encode_call(args: Sequence[Any], kwargs: Mapping[str, Any], serializer: str = "json") -> str:
    """The call as stored in the spec: JSON text, or base64 of a pickle when opted in."""
    for key in kwargs:
        if not isinstance(key, str) or not key.isidentifier():
            raise PayloadError(f"keyword argument names must be identifiers, got {key!r}")
    if serializer == "pickle":
        return base64.b64encode(pickle.dumps((tuple(args), dict(kwargs)), protocol=pickle.HIGHEST_PROTOCOL)).decode()
    try:
        return json.dumps({"args": list(args), "kwargs": dict(kwargs)}, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"the arguments are not JSON-serialisable ({exc}); pass JSON values, "
                           "or opt in to serializer='pickle' for trusted data") from None


def decode_call(text: str | None, serializer: str = "json") -> tuple[list[Any], dict[str, Any]]:
    if not text:
        return [], {}
    if serializer == "pickle":
        args, kwargs = pickle.loads(base64.b64decode(text))  # noqa: S301 - opted in by the caller
        return list(args), dict(kwargs)
    try:
        data = json.loads(text, parse_constant=_reject_non_finite)
    except ValueError as exc:
        raise PayloadError(f"the arguments are not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("args", []), list) or not isinstance(
            data.get("kwargs", {}), dict):
        raise PayloadError('the arguments must be {"args": [...], "kwargs": {...}}')
    return list(data.get("args", [])), dict(data.get("kwargs", {}))


def check_report(text: str) -> str | None:
    """Why a result file's text is not a report the runner writes (None when it is one)."""
    try:
        data = json.loads(text, parse_constant=_reject_non_finite)
    except ValueError as exc:
        return f"the result is not valid JSON ({exc})"
    if not isinstance(data, dict) or len(data) != 1 or next(iter(data)) not in ("value", "pickle", "error"):
        return 'the result is not {"value": ...}, {"pickle": ...} or {"error": ...}'
    if "error" in data and not isinstance(data["error"], dict):
        return "the result's error is not an object"
    if "pickle" in data and not isinstance(data["pickle"], str):
        return "the result's pickle is not base64 text"
    return None


def report_value(report: str | None, serializer: str = "json") -> Any:
    """The function's return value from a stored report (None when it raised or never reported)."""
    if not report:
        return None
    data = json.loads(report)
    if "value" in data:
        return data["value"]
    if "pickle" in data:
        if serializer != "pickle":  # a pickle the caller did not ask for is never loaded
            raise PayloadError("the result is a pickle but the run did not opt in to pickle")
        return pickle.loads(base64.b64decode(data["pickle"]))  # noqa: S301 - opted in by the caller
    return None


def report_error(report: str | None) -> dict[str, str] | None:
    """{type, message, traceback} of the exception the function raised (None when it returned)."""
    if not report:
        return None
    data = json.loads(report)
    error = data.get("error")
    return {str(k): str(v) for k, v in error.items()} if isinstance(error, dict) else None


def value_json(value: Any) -> str:
    """A value as JSON text (a parent's result handed to a follow-up script)."""
    return json.dumps(value, allow_nan=False) if _is_finite_json(value) else json.dumps(repr(value))


def _is_finite_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False
