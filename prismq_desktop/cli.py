"""`prismq-desktop`: the headless command line over the same core as the window.

Exit statuses: `run` exits with the child's code (124 timed out, 125 failed to start,
130 cancelled, 128+N killed by signal N); 2 means a bad command line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from prismq_desktop import __version__

if TYPE_CHECKING:
    from prismq_desktop.core.models import Outcome

EXIT_USAGE = 2
EXIT_TIMED_OUT = 124
EXIT_FAILED_TO_START = 125
EXIT_CANCELLED = 130


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line and exit 2, never a traceback."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments"):
            message += " (the script's own arguments go after --)"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


def terminal_safe(text: object) -> str:
    """`text` with control characters escaped for a terminal or a table: ESC is shown as
    ``\\x1b``, a newline as ``\\n`` (so a name cannot move the cursor, recolour, ring the bell
    or forge a row). JSON output never goes through this: it stays exact."""
    out = str(text)
    if out.isprintable():
        return out
    parts = []
    for ch in out:
        code = ord(ch)
        if ch in _NAMED_ESCAPES:
            parts.append(_NAMED_ESCAPES[ch])
        elif code < 0x20 or 0x7F <= code < 0xA0:
            parts.append(f"\\x{code:02x}")
        elif code in _BIDI or code in (0x2028, 0x2029):
            parts.append(f"\\u{code:04x}")
        else:
            parts.append(ch)
    return "".join(parts)


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _count(text: str) -> int:
    """A positive whole number that fits SQLite (so a typo is a usage error, not a traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 < value < 2**63:
        raise argparse.ArgumentTypeError(f"must be between 1 and {2**63 - 1}: {text!r}")
    return value


def _retries(text: str) -> int:
    """Zero or more retries (a negative count is a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1000: {text!r}")
    return value


RUN_PATTERNS = ("simple", "long_running", "fire_and_forget")


def _run_pattern(text: str) -> str:
    """A pattern `run` can do; anything else is a usage error (exit 2), not a failed run."""
    key = text.strip().lower().replace("-", "_").replace(" ", "_")
    if key in RUN_PATTERNS:
        return key
    if key in ("concurrent", "periodic", "pooled"):
        raise argparse.ArgumentTypeError(f"{key} is not available from `run` (use simple, long_running or "
                                         "fire_and_forget; batches and pools are in the Python API and the window)")
    raise argparse.ArgumentTypeError(f"unknown pattern {text!r} (choose from {', '.join(RUN_PATTERNS)})")


def _retry_on_arg(text: str) -> str:
    """Checked here so a typo is a usage error (exit 2): outcome names and/or exit codes."""
    from prismq_desktop.core.orchestrator.retry import RetryPolicy

    try:
        RetryPolicy(retry_on=tuple(_retry_on(text)))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _run_key(text: str) -> str:
    """A caller-chosen run id (letters first; letters, digits, _ . : -), else a usage error."""
    from prismq_desktop.core.models import InvalidRunKey, check_run_key

    try:
        return check_run_key(text)
    except InvalidRunKey as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run_ref(text: str) -> str:
    """RUN_ID: a run's number (12 or #12) or a caller-chosen id; anything else is a usage error."""
    digits = text[1:] if text.startswith("#") else text
    if digits.isascii() and digits.isdigit():
        return text
    try:
        return _run_key(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"not a run number or run id: {text!r}") from None


def _positive(text: str) -> float:
    """A positive, finite number of seconds (NaN and infinity are refused, not ignored)."""
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _seconds(text: str) -> float:
    """Zero or more seconds, finite."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds: {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="prismq-desktop",
        description="PrismQ Desktop: launch, watch and look back at script runs. "
        "With no command it opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--data-dir", help="where the registry and logs live (default: $PRISMQ_DESKTOP_HOME or the user data dir)"
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    run = sub.add_parser("run", help="run a script, module or command and stream its output")
    run.add_argument("target", metavar="SCRIPT", help="a .py script, a module (with -m) or a command")
    run.add_argument("args", nargs="*", default=[], metavar="-- ARGS", help="arguments for it (after --)")
    run.add_argument("-m", "--module", action="store_true", help="SCRIPT is a module name, run as python -m")
    run.add_argument("--timeout", type=_positive, help="soft timeout in seconds: ask to stop, kill after the grace period")
    run.add_argument("--hard-timeout", type=_positive, help="hard timeout in seconds: kill the tree at once")
    run.add_argument("--grace", type=_positive, default=5.0, help="seconds between stop and kill (default 5)")
    run.add_argument("--cwd", help="working directory")
    run.add_argument("--python", help="interpreter for scripts and modules (default: the one running PrismQ)")
    run.add_argument("--env", type=_env_pair, action="append", default=[], metavar="K=V", help="set a variable (repeatable)")
    run.add_argument("--mode", choices=["auto", "async", "threaded", "local", "dry-run"], default=None,
                     help="how to run it (default: auto, or $PRISMQ_RUN_MODE)")
    run.add_argument("--dry-run", action="store_true", help="record what would run, start nothing")
    run.add_argument("--name", help="name shown in history")
    run.add_argument("--run-id", type=_run_key, metavar="KEY",
                     help="your own id for the run (unique; logs/history accept it wherever a number goes)")
    run.add_argument("--encoding", default="utf-8", help="the child's output encoding (default utf-8)")
    run.add_argument("--pattern", type=_run_pattern, default="simple", metavar="P",
                     help="simple (default), long_running (same, streamed) or fire_and_forget (run detached, print its id)")
    run.add_argument("--priority", default="normal", choices=["critical", "high", "normal", "low"])
    run.add_argument("--retries", type=_retries, default=0, metavar="N", help="retry a failed run up to N times")
    run.add_argument("--retry-on", type=_retry_on_arg, default="failed,timed_out", metavar="WHAT",
                     help="comma list of failed, timed_out, failed_to_start and/or exit codes (default failed,timed_out)")
    run.add_argument("--retry-delay", type=_seconds, default=1.0, metavar="S",
                     help="first backoff in seconds; doubles per attempt, capped at 60, with jitter")
    run.add_argument("--remote", metavar="QUEUE", help="run it on a Celery worker listening to QUEUE (needs a broker)")
    run.add_argument("--broker", metavar="URL", help="redis:// or rediss:// broker (default: $PRISMQ_BROKER_URL)")

    worker = sub.add_parser("worker", help="run remote runs here: a Celery worker on the broker's queues")
    worker.add_argument("--broker", metavar="URL", help="redis:// or rediss:// broker (default: $PRISMQ_BROKER_URL)")
    worker.add_argument("--queue", "-Q", action="append", default=[], metavar="NAME",
                        help="a queue to take runs from (repeatable; default: default)")
    worker.add_argument("--concurrency", "-c", type=_count, default=2, metavar="N", help="runs at once (default 2)")
    worker.add_argument("--hostname", "-n", metavar="H", help="this worker's name (default: the machine's hostname)")
    worker.add_argument("--loglevel", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    sub.add_parser("remote-key", help="make remote.key (0600) in the data dir: copy it to every worker's data dir "
                   "so secret values travel sealed")

    dead = sub.add_parser("dead-letters", help="runs whose retries ran out: list, requeue or purge")
    dead.add_argument("--requeue", type=_count, metavar="ID", help="run the entry again (a fresh chain of attempts)")
    dead.add_argument("--purge", type=_count, nargs="*", metavar="ID", help="delete these entries (all when no ID)")
    dead.add_argument("--all", action="store_true", help="include entries already requeued")
    dead.add_argument("--json", action="store_true")

    hist = sub.add_parser("history", help="list recorded runs, newest first")
    hist.add_argument("--status", help="queued, running, paused, done, or an outcome: succeeded, failed, "
                      "failed_to_start, cancelled, timed_out, interrupted")
    hist.add_argument("--limit", type=_count, default=20)
    hist.add_argument("--json", action="store_true", help="print a JSON array")

    logs = sub.add_parser("logs", help="print a run's output exactly as it was written")
    logs.add_argument("run_id", type=_run_ref, metavar="RUN_ID", help="the run's number or the id given with --run-id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing while the run is active")
    logs.add_argument("--stream", choices=["stdout", "stderr"], help="only this stream")

    sched = sub.add_parser("schedule", help="periodic runs: add, list, enable, disable, remove, run-now")
    ssub = sched.add_subparsers(dest="schedule_command", parser_class=_Parser, metavar="ACTION")
    sched_add = ssub.add_parser("add", help="add a schedule (it fires while a PrismQ window or `prismq-desktop scheduler` runs)")
    sched_add.add_argument("name")
    sched_add.add_argument("target", metavar="SCRIPT")
    sched_add.add_argument("args", nargs="*", default=[], metavar="-- ARGS", help="arguments for the script (after --)")
    when = sched_add.add_mutually_exclusive_group(required=True)
    when.add_argument("--every", metavar="DURATION", help="an interval: 30s, 5m, 2h, 1d (or plain seconds)")
    when.add_argument("--cron", metavar="EXPR", help="5 fields, 6 with seconds first, or @hourly/@daily/...")
    when.add_argument("--at", metavar="DATETIME", help="once, at an ISO date-time (e.g. 2026-12-01T09:30)")
    sched_add.add_argument("--tz", default="UTC", help="timezone for cron and --at (default UTC), e.g. Europe/Berlin")
    sched_add.add_argument("--overlap", choices=["forbid", "allow", "replace", "queue"], default="forbid")
    sched_add.add_argument("--catchup", choices=["coalesce", "all", "skip"], default="coalesce")
    sched_add.add_argument("--misfire-grace", type=_seconds, default=60.0, metavar="S")
    sched_add.add_argument("--jitter", type=_seconds, default=0.0, metavar="S")
    sched_add.add_argument("--retries", type=_retries, default=0, metavar="N")
    sched_add.add_argument("-m", "--module", action="store_true", help="SCRIPT is a module name")
    sched_add.add_argument("--cwd")
    sched_add.add_argument("--python")
    sched_add.add_argument("--env", type=_env_pair, action="append", default=[], metavar="K=V")
    sched_add.add_argument("--timeout", type=_positive)
    sched_add.add_argument("--disabled", action="store_true", help="create it disabled")
    sched_list = ssub.add_parser("list", help="all schedules with their next fire")
    sched_list.add_argument("--json", action="store_true")
    for action, text in (("enable", "enable a schedule"), ("disable", "disable a schedule"),
                         ("remove", "delete a schedule (its runs stay in history)"),
                         ("run-now", "fire once now (obeys the overlap policy) and stream the run")):
        p = ssub.add_parser(action, help=text)
        p.add_argument("schedule", metavar="NAME_OR_ID")
    sched_exp = ssub.add_parser("export", help="write a schedule as a Kubernetes CronJob, systemd units or a Windows task")
    sched_exp.add_argument("schedule", metavar="NAME_OR_ID")
    sched_exp.add_argument("--format", required=True, choices=["k8s", "systemd", "windows"])
    sched_exp.add_argument("-o", "--output", metavar="FILE", help="write here (systemd: FILE.service and FILE.timer); "
                           "default: print")
    sched_exp.add_argument("--image", default="python:3.11-slim", help="k8s: the container image (default python:3.11-slim)")
    sched_exp.add_argument("--secret-name", help="k8s: the Secret holding secret env values (default NAME-secrets)")
    sched_exp.add_argument("--cpu", help="k8s: CPU limit, e.g. 500m")
    sched_exp.add_argument("--memory", help="k8s: memory limit, e.g. 256Mi")
    sched_exp.add_argument("--env-file", help="systemd: EnvironmentFile for secret values (default /etc/prismq/NAME.env)")
    sched_hist = ssub.add_parser("history", help="a schedule's runs, including skipped and missed fires")
    sched_hist.add_argument("schedule", metavar="NAME_OR_ID")
    sched_hist.add_argument("--limit", type=_count, default=20)

    prune = sub.add_parser("prune", help="delete finished runs (and their logs) beyond a retention policy")
    prune.add_argument("--keep-days", type=_positive, metavar="N", help="keep runs that ended in the last N days")
    prune.add_argument("--keep-runs", type=_count, metavar="N", help="keep at most the newest N finished runs")
    prune.add_argument("--dry-run", action="store_true", help="print what would be deleted, delete nothing")

    schd = sub.add_parser("scheduler", help="run the scheduler in the foreground (no window) until Ctrl+C")
    schd.add_argument("--broker", metavar="URL", help="with a broker: fires claimed across machines, remote schedules "
                      "(default: $PRISMQ_BROKER_URL)")
    schd.add_argument("--http", metavar="HOST:PORT", help="also serve the local HTTP API here (loopback unless you give "
                      "another host; bearer token in the data dir's api-token file)")

    submit = sub.add_parser("submit", help="send a run to the PrismQ window or scheduler listening on this data dir")
    submit.add_argument("target", metavar="SCRIPT", help="a .py script, a module (with -m) or a command")
    submit.add_argument("args", nargs="*", default=[], metavar="-- ARGS", help="arguments for it (after --)")
    submit.add_argument("-m", "--module", action="store_true", help="SCRIPT is a module name")
    submit.add_argument("--timeout", type=_positive, help="soft timeout in seconds")
    submit.add_argument("--cwd", help="working directory")
    submit.add_argument("--python", help="interpreter for scripts and modules")
    submit.add_argument("--env", type=_env_pair, action="append", default=[], metavar="K=V", help="set a variable (repeatable)")
    submit.add_argument("--name", help="name shown in history")
    submit.add_argument("--priority", default="normal", choices=["critical", "high", "normal", "low"])
    submit.add_argument("--local", action="store_true", help="when nothing is listening, run it here (as `run` does)")
    submit.add_argument("--url", help="the API's address (default: the one the listening app wrote in the data dir)")
    sub.add_parser("gui", help="open the window (the default with no command)")
    return parser


SCRIPT_COMMANDS = {("run",): 1, ("submit",): 1, ("schedule", "add"): 2}  # positionals before the script's args


def parse_command_line(parser: argparse.ArgumentParser, raw: Sequence[str]) -> argparse.Namespace:
    """Options before or after NAME/SCRIPT (so `schedule add every5 hello.py --every 5m` means what
    the README says); the script's own arguments after `--`, or, as before, from the first token
    after SCRIPT that is not one of the command's own long options (`run x.py -v 3`)."""
    raw = list(raw)
    split = _script_args_split(parser, raw)
    if split is None:
        return parser.parse_args(raw)
    ours, script_args = split
    ns = parser.parse_args(ours)
    ns.args = script_args
    return ns


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:  # argparse has no public lookup of a subparser
        if isinstance(action, argparse._SubParsersAction):
            found = action.choices.get(name)
            return found if isinstance(found, argparse.ArgumentParser) else None
    return None


def _arity(sub: argparse.ArgumentParser, token: str) -> int | None:
    """How many values option `token` takes (0 for a flag or `--opt=value`); None if not ours."""
    name, eq, _ = token.partition("=")
    action = sub._option_string_actions.get(name)
    if action is None:
        return None
    return 0 if eq or action.nargs == 0 else 1


def _script_args_split(parser: argparse.ArgumentParser, raw: list[str]) -> tuple[list[str], list[str]] | None:
    """(the tokens argparse should see, the script's own arguments) for run/submit/schedule add."""
    i, path = 0, []
    current: argparse.ArgumentParser | None = parser
    while i < len(raw) and current is not None:  # global options, then the command (and schedule's action)
        tok = raw[i]
        if tok.startswith("-") and tok != "--":
            arity = _arity(current, tok)
            i += 1 + (arity or 0)
            continue
        nxt = _subparser(current, tok)
        if nxt is None:
            break
        path.append(tok)
        current = nxt
        i += 1
        if tuple(path) in SCRIPT_COMMANDS:
            break
    wanted = SCRIPT_COMMANDS.get(tuple(path))
    if wanted is None or current is None:
        return None
    sub = current
    ours = raw[:i]
    positionals = 0
    while i < len(raw) and positionals < wanted:  # before SCRIPT: argparse's usual rules
        tok = raw[i]
        if tok == "--":  # everything after it is positional: NAME/SCRIPT, then the script's arguments
            rest = raw[i + 1 :]
            return ours + rest[: wanted - positionals], rest[wanted - positionals :]
        arity = _arity(sub, tok) if tok.startswith("-") else None
        if tok.startswith("-") and len(tok) > 1 and not _is_number(tok):
            take = 1 + (arity or 0)
            ours += raw[i : i + take]
            i += take
            continue
        ours.append(tok)
        positionals += 1
        i += 1
    while i < len(raw):  # after SCRIPT: our own long options, up to `--` or the first other token
        tok = raw[i]
        if tok == "--":
            return ours, raw[i + 1 :]
        arity = _arity(sub, tok) if tok.startswith("--") else None
        if arity is None:
            return ours, raw[i:]
        ours += raw[i : i + 1 + arity]
        i += 1 + arity
    return ours, []


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _exit_status(outcome: Outcome) -> int:
    from prismq_desktop.core.models import OutcomeKind

    kind = outcome.kind
    if kind is OutcomeKind.SUCCEEDED:
        return 0
    if kind is OutcomeKind.FAILED_TO_START:
        return EXIT_FAILED_TO_START
    if kind is OutcomeKind.TIMED_OUT:
        return EXIT_TIMED_OUT
    if kind is OutcomeKind.CANCELLED:
        return EXIT_CANCELLED
    code = outcome.exit_code
    if code is None:
        return 1
    if code < 0:
        return 128 + (-code)
    return code & 0xFF if code > 255 else code


def _cmd_run(ns: argparse.Namespace) -> int:
    from prismq_desktop.core import RunEngine, RunMode, RunSpec, TargetKind
    from prismq_desktop.core.patterns import TaskPattern
    from prismq_desktop.core.process.executor import requested_mode

    args = list(ns.args)  # a literal "--" among them is the script's own (main() took the separator)
    spec = RunSpec(
        target=ns.target,
        args=tuple(args),
        kind=TargetKind.MODULE if ns.module else TargetKind.AUTO,
        cwd=ns.cwd,
        env=dict(ns.env),
        interpreter=ns.python,
        soft_timeout=ns.timeout,
        hard_timeout=ns.hard_timeout,
        grace_period=ns.grace,
        encoding=ns.encoding,
        name=ns.name,
        where=f"remote:{ns.remote}" if ns.remote else None,
    )
    ns.broker_url = None
    if ns.remote:
        from prismq_desktop.core.models import where_problem
        from prismq_desktop.core.remote.config import require_broker

        problem = where_problem(spec.where)
        if problem:
            _usage_error(f"--remote: {problem}")
        ns.broker_url = require_broker(ns.broker)  # a BrokerError is one line (a ValueError)
        if ns.mode in ("local",):
            _usage_error("--remote runs on a worker: --mode local does not apply")
    mode = RunMode.DRY_RUN if ns.dry_run else (RunMode(ns.mode) if ns.mode else None)
    pattern = TaskPattern.parse(ns.pattern)  # checked by the parser (_run_pattern)
    chosen = requested_mode(mode or RunMode.AUTO)
    blocking = chosen in (RunMode.LOCAL, RunMode.DRY_RUN)
    if blocking and ns.retries:
        _usage_error("--retries needs the async or threaded mode")
    if ns.run_id:
        taken = _key_owner(ns.data_dir, ns.run_id)
        if taken is not None:
            print(f"prismq-desktop: error: run id {ns.run_id!r} is already used by run #{taken}; choose another",
                  file=sys.stderr)
            return 1
    if pattern is TaskPattern.FIRE_AND_FORGET and not os.environ.get(ENV_ANNOUNCE):
        return _detach(ns)
    show = _output_printer()
    if blocking:
        def interrupt(signum: int, _frame: Any) -> None:
            raise KeyboardInterrupt  # LOCAL mode turns this into a cancel of the whole tree

        previous = {}
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                previous[sig] = signal.signal(sig, interrupt)
        engine = RunEngine(ns.data_dir, mode=RunMode.AUTO)
        try:
            engine.bus.subscribe_sync(show)
            run = engine.run_blocking(spec, mode=chosen, key=ns.run_id).run
        finally:
            engine.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    else:
        run = asyncio.run(_run_async(ns, spec, mode, pattern, show))
    if run.dry_run:
        print(f"dry run #{run.id}: would run {terminal_safe(' '.join(run.argv))} in {terminal_safe(run.cwd)}", file=sys.stderr)
    assert run.outcome is not None
    if (run.outcome.kind.value != "succeeded" or run.outcome.message) and not run.dry_run:
        print(f"prismq-desktop: run #{run.id} {terminal_safe(_outcome_words(run.outcome))}", file=sys.stderr)
    return _exit_status(run.outcome)


def _output_printer() -> Callable[[Any], None]:
    """A bus subscriber that writes a run's output live, stdout to stdout and stderr to
    stderr, byte for byte (`run`, `schedule run-now`, `dead-letters --requeue`)."""
    from prismq_desktop.core import OutputBatch
    from prismq_desktop.core.process.logfile import Stream

    out, err = sys.stdout.buffer, sys.stderr.buffer

    def show(event: Any) -> None:
        if isinstance(event, OutputBatch):
            for chunk in event.chunks:
                (out if chunk.stream is Stream.STDOUT else err).write(chunk.data)
            out.flush()
            err.flush()

    return show


def _outcome_words(outcome: Outcome) -> str:
    """describe(), plus what it leaves out for an exit code: a note such as "output after 2 MB
    was not saved: No space left on device" (but not "killed by SIGTERM", which it says)."""
    words = outcome.describe()
    notes = [part for part in (outcome.message or "").split("; ") if part and not part.startswith("killed by ")]
    extra = [part for part in notes if part not in words]
    return "; ".join([words, *extra])


ENV_ANNOUNCE = "PRISMQ_CLI_ANNOUNCE"


def _key_owner(data_dir: str | None, key: str) -> int | None:
    from prismq_desktop.core import RunRegistry
    from prismq_desktop.core.paths import data_dir as resolve_data_dir
    from prismq_desktop.core.paths import registry_path

    with RunRegistry(registry_path(resolve_data_dir(data_dir))) as reg:
        return reg.key_owner(key)


def _detach(ns: argparse.Namespace) -> int:
    """fire_and_forget from a shell: run the same command in a detached process, print its run id."""
    import subprocess

    argv = list(ns.original_argv)
    cleaned: list[str] = []
    skip = False
    for i, tok in enumerate(argv):
        if skip:
            skip = False
            continue
        if tok == "--pattern" and "--" not in argv[:i]:
            skip = True
            continue
        if tok.startswith("--pattern=") and "--" not in argv[:i]:
            continue
        cleaned.append(tok)
    from prismq_desktop.core.process.launch import detached_flags, self_command

    env = dict(os.environ, **{ENV_ANNOUNCE: "1"})
    argv = [*self_command(), *cleaned]  # frozen: the bundle's own EXE (it rejects -m)
    common: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL, "env": env}
    if os.name != "nt":
        proc = subprocess.Popen(argv, start_new_session=True, **common)
    else:
        try:
            proc = subprocess.Popen(argv, creationflags=detached_flags(breakaway=True), **common)
        except PermissionError:  # the caller's job forbids breakaway: detached, but still in it
            proc = subprocess.Popen(argv, creationflags=detached_flags(breakaway=False), **common)
    assert proc.stdout is not None
    line = proc.stdout.readline(200).decode("ascii", "replace").strip()  # one short line, not output
    proc.stdout.close()
    if not line.startswith("PRISMQ-RUN-ID "):
        code = proc.wait(timeout=60)
        print(f"prismq-desktop: the background run could not be started (exit {code})", file=sys.stderr)
        return EXIT_FAILED_TO_START
    run_id = line.split()[1]
    ref = ns.run_id or run_id
    print(f"run #{run_id} started in the background; follow it with: prismq-desktop logs {ref} --follow")
    return 0


async def _run_async(ns: argparse.Namespace, spec: Any, mode: Any, pattern: Any, show: Any) -> Any:
    from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator

    loop = asyncio.get_running_loop()
    async with TaskOrchestrator(ns.data_dir, max_concurrent=1, broker=getattr(ns, "broker_url", None)) as orch:
        orch.bus.subscribe_sync(show)
        run_id = orch.delay(spec, mode=mode, pattern=pattern, priority=ns.priority, max_retries=ns.retries,
                            retry_on=tuple(_retry_on(ns.retry_on)), backoff_base=ns.retry_delay, run_key=ns.run_id)
        if os.environ.get(ENV_ANNOUNCE):
            _announce_and_detach(run_id)

        def on_signal() -> None:
            orch.cancel(run_id)

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        try:
            result = await orch.wait(run_id)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        return result.run


def _announce_and_detach(run_id: int) -> None:
    """In the detached child: tell the parent the run id, then stop writing to its pipe."""
    os.write(1, f"PRISMQ-RUN-ID {run_id}\n".encode())
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _retry_on(text: str) -> list[str | int]:
    items: list[str | int] = []
    for part in text.split(","):
        part = part.strip()
        if part:
            items.append(int(part) if part.lstrip("-").isdigit() else part)
    return items


def parse_duration(text: str) -> float:
    """`30s`, `5m`, `2h`, `1d`, `1h30m` or plain seconds → seconds."""
    import re

    raw = text.strip().lower()
    try:
        value = float(raw)
    except ValueError:
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", raw)
        if not raw or parts is None or not any(parts.groups()):
            raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 2h, 1d)") from None
        d, h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
        value = d * 86400 + h * 3600 + m * 60 + sec
    if value <= 0:
        raise ValueError(f"the interval must be positive: {text!r}")
    return value


def _cmd_schedule(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not ns.schedule_command:
        _usage_error("schedule needs an action: add, list, enable, disable, remove, run-now, history")
    return asyncio.run(_schedule_async(ns))


async def _schedule_async(ns: argparse.Namespace) -> int:
    from prismq_desktop.core import RunSpec, TargetKind
    from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator
    from prismq_desktop.core.schedule.model import ScheduleError
    from prismq_desktop.core.schedule.scheduler import make_trigger
    from prismq_desktop.core.schedule.triggers import TriggerError, local_text, parse_when
    from prismq_desktop.core.secrets import masked_spec_dict

    async with TaskOrchestrator(ns.data_dir, max_concurrent=1) as orch:
        sch = orch.scheduler
        action = ns.schedule_command
        try:
            if action == "add":
                args = list(ns.args)
                spec = RunSpec(ns.target, tuple(args), kind=TargetKind.MODULE if ns.module else TargetKind.AUTO, cwd=ns.cwd,
                               env=dict(ns.env), interpreter=ns.python, soft_timeout=ns.timeout, name=ns.name)
                if ns.every:
                    trigger = make_trigger(interval_seconds=parse_duration(ns.every), timezone=ns.tz)
                elif ns.cron:
                    trigger = make_trigger(cron=ns.cron, timezone=ns.tz)
                else:
                    trigger = make_trigger(at=parse_when(ns.at, ns.tz), timezone=ns.tz)
                options = {"max_retries": ns.retries} if ns.retries else {}
                s = sch.add(ns.name, spec, trigger, enabled=not ns.disabled, overlap=ns.overlap, catchup=ns.catchup,
                            misfire_grace=ns.misfire_grace, jitter=ns.jitter, **options)
                if not s.enabled:
                    when = f"disabled (enable it with: prismq-desktop schedule enable {s.id})"
                else:
                    when = "next fire " + (local_text(s.next_fire, s.trigger.timezone) if s.next_fire else "never")
                print(f"schedule #{s.id} {terminal_safe(repr(s.name))}: {terminal_safe(s.describe())}; {when}")
                return 0
            if action == "list":
                items = sch.all()
                broken = sch.broken()
                if ns.json:
                    rows: list[dict[str, Any]] = [
                        {"id": s.id, "name": s.name, "trigger": s.trigger.to_dict(), "describe": s.describe(),
                         "enabled": s.enabled, "overlap": s.overlap.value, "catchup": s.catchup.value,
                         "next_fire": s.next_fire, "last_fire": s.last_fire,
                         "spec": masked_spec_dict(s.spec.to_dict())} for s in items]
                    rows += [{"id": b.id, "name": b.name, "broken": b.reason} for b in broken]
                    json.dump(rows, sys.stdout, indent=2)
                    sys.stdout.write("\n")
                    return 0
                if not items and not broken:
                    print("no schedules")
                    return 0
                print(f"{'ID':>4}  {'NAME':<20} {'WHEN':<28} {'ON':<3} {'OVERLAP':<8} NEXT FIRE")
                for s in items:
                    nxt = local_text(s.next_fire, s.trigger.timezone) if s.next_fire and s.enabled else "-"
                    print(f"{s.id:>4}  {terminal_safe(s.name)[:20]:<20} {terminal_safe(s.describe())[:28]:<28} "
                          f"{'yes' if s.enabled else 'no':<3} {s.overlap.value:<8} {nxt}")
                for b in broken:
                    print(f"{b.id:>4}  {terminal_safe(b.name)[:20]:<20} {'BROKEN':<28} {'-':<3} {'-':<8} "
                          f"never: {terminal_safe(b.reason)} (remove it: prismq-desktop schedule remove {b.id})")
                return 0
            key: int | str = int(ns.schedule) if ns.schedule.isdigit() else ns.schedule
            if action == "enable":
                s = sch.enable(key)
                nxt = local_text(s.next_fire, s.trigger.timezone) if s.next_fire else "never"
                print(f"schedule {terminal_safe(repr(s.name))} enabled; next fire {nxt}")
            elif action == "disable":
                s = sch.disable(key)
                print(f"schedule {terminal_safe(repr(s.name))} disabled")
            elif action == "remove":
                name = sch.remove(key)
                print(f"schedule {terminal_safe(repr(name))} removed (its runs stay in history)")
            elif action == "history":
                fired = sch.history(key, limit=ns.limit)
                if not fired:
                    print(f"schedule {terminal_safe(repr(sch.get(key).name))} has no runs yet")
                    return 0
                print(f"{'RUN':>6}  {'WHEN':<19}  {'TRIGGER':<34} OUTCOME")
                for r in fired:
                    state = r.outcome.describe() if r.outcome else r.status.value
                    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at or r.created_at))
                    print(f"{r.id:>6}  {when}  {terminal_safe(r.trigger or '')[:34]:<34} {terminal_safe(state)}")
            elif action == "export":
                return _export(ns, sch.get(key))
            elif action == "run-now":
                orch.bus.subscribe_sync(_output_printer())  # streamed like `run`, stderr included
                fired_now = sch.fire_now(key)
                if fired_now.run_id is None:
                    print(f"prismq-desktop: {terminal_safe(fired_now.message)}", file=sys.stderr)
                    return 1
                return await _wait_and_report(orch, fired_now.run_id)
            return 0
        except (ScheduleError, TriggerError, ValueError) as exc:
            print(f"prismq-desktop: error: {terminal_safe(exc)}", file=sys.stderr)
            return EXIT_USAGE


async def _scheduler_foreground(ns: argparse.Namespace) -> int:
    """Fire schedules until Ctrl+C or SIGTERM, with no window (a headless PrismQ)."""
    from prismq_desktop.core.events import ScheduleChanged
    from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    from prismq_desktop.core.remote.config import broker_url, check_broker_url

    url = broker_url(getattr(ns, "broker", None))
    listen = None
    if getattr(ns, "http", None):
        from prismq_desktop.core.services.api import ApiError, is_loopback, parse_listen

        try:
            listen = parse_listen(ns.http)
        except ApiError as exc:
            _usage_error(f"--http: {exc}")
    async with TaskOrchestrator(ns.data_dir, broker=check_broker_url(url) if url else None) as orch:
        orch.engine.reattach_remote()  # remote runs a dead app was following: followed from here on
        server = None
        if listen is not None:
            from prismq_desktop.core.services.api import ApiServer

            if not is_loopback(listen[0]):
                print(f"prismq-desktop: warning: the API listens on {listen[0]}, beyond this machine: anyone with the "
                      "token can run programs as you (see the README)", file=sys.stderr, flush=True)
            server = ApiServer(orch, *listen)
            try:
                api_url = await server.start()
            except OSError as exc:
                print(f"prismq-desktop: error: the API cannot listen on {terminal_safe(ns.http)}: "
                      f"{terminal_safe(exc.strerror or exc)}", file=sys.stderr)
                return 1
            print(f"API listening on {api_url} (bearer token in {server.home / 'api-token'})", flush=True)

        def report(ev: Any) -> None:
            run = getattr(ev, "run", None)
            if run is not None and run.schedule_id is not None and ev.kind in ("started", "finished"):
                state = run.outcome.describe() if run.outcome else "started"
                print(f"{time.strftime('%H:%M:%S')} run #{run.id} ({terminal_safe(run.name)}, {terminal_safe(run.trigger)}): "
                      f"{terminal_safe(state)}", flush=True)
            elif isinstance(ev, ScheduleChanged) and ev.what in ("added", "removed"):
                print(f"{time.strftime('%H:%M:%S')} schedule #{ev.schedule_id} {ev.what}", flush=True)

        orch.bus.subscribe_sync(report)
        orch.scheduler.start()
        print(f"scheduler running with {len(orch.scheduler.all())} schedule(s); Ctrl+C to stop", flush=True)
        for b in orch.scheduler.broken():
            print(f"schedule #{b.id} {terminal_safe(repr(b.name))} is broken and never fires: {terminal_safe(b.reason)}",
                  flush=True)
        try:
            await stop.wait()
        finally:
            if server is not None:
                await server.stop()
    return 0


def _cmd_remote_key(ns: argparse.Namespace) -> int:
    """Make the key secret values of remote runs are sealed with; print where (never the key)."""
    from prismq_desktop.core.paths import data_dir
    from prismq_desktop.core.remote.sealing import make_key_file

    path, made = make_key_file(data_dir(ns.data_dir))
    print(f"{'made' if made else 'kept the existing'} {path} (0600): copy it into the data dir of every worker "
          "(or set PRISMQ_REMOTE_KEY to its content there)")
    return 0


def _cmd_worker(ns: argparse.Namespace) -> int:
    """A real Celery worker (threads pool: the runs' trees stay children of this process)."""
    import logging

    from prismq_desktop.core.remote.config import DEFAULT_QUEUE, require_broker
    from prismq_desktop.core.secrets import mask_text

    url = require_broker(ns.broker)
    try:
        import celery  # noqa: F401 - the extra is needed here, say so in one line

        from prismq_desktop.core.remote.worker import start_worker
    except ImportError as exc:
        sys.stderr.write(f"prismq-desktop: error: the worker needs the remote extra "
                         f"(pip install 'prismq-desktop[remote]'): {exc}\n")
        return 1
    logging.basicConfig(level=getattr(logging, ns.loglevel), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    queues = ns.queue or [DEFAULT_QUEUE]
    for q in queues:
        from prismq_desktop.core.models import where_problem

        problem = where_problem(f"remote:{q}")
        if problem:
            _usage_error(f"--queue: {problem}")
    from prismq_desktop.core.paths import data_dir
    from prismq_desktop.core.remote.sealing import SealError, load_key

    home = data_dir(ns.data_dir)
    try:
        keyed = "a remote key" if load_key(home) else "no remote key (runs carrying secret values fail to start here)"
    except SealError as exc:
        sys.stderr.write(f"prismq-desktop: error: worker: {terminal_safe(str(exc))}\n")
        return 1
    print(f"prismq worker {ns.hostname or ''} on {terminal_safe(mask_text(url))}, queues {', '.join(queues)}, "
          f"concurrency {ns.concurrency}, {keyed}; Ctrl+C to stop", file=sys.stderr, flush=True)
    try:
        return start_worker(url, queues, ns.concurrency, ns.hostname, loglevel=ns.loglevel, home=home)
    except Exception as exc:  # noqa: BLE001 - e.g. the broker refuses the password: one line
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        sys.stderr.write(f"prismq-desktop: error: worker: {terminal_safe(mask_text(str(exc)))}\n")
        return 1


def _cmd_dead_letters(ns: argparse.Namespace) -> int:
    from prismq_desktop.core import RunRegistry
    from prismq_desktop.core.paths import data_dir, registry_path
    from prismq_desktop.core.secrets import masked_spec_dict

    if ns.requeue is not None:
        return asyncio.run(_requeue(ns))
    with RunRegistry(registry_path(data_dir(ns.data_dir))) as reg:
        if ns.purge is not None:
            ids = ns.purge or None
            n = reg.purge_dead_letters(ids)
            print(f"purged {n} dead letter(s)")
            return 0
        entries = reg.dead_letters(include_requeued=ns.all)
    if ns.json:
        json.dump([{"id": d.id, "run_id": d.run_id, "first_run_id": d.first_run_id, "name": d.name,
                    "attempts": d.attempts, "reason": d.reason, "created_at": d.created_at,
                    "requeued_run_id": d.requeued_run_id, "spec": masked_spec_dict(d.spec.to_dict())} for d in entries],
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not entries:
        print("no dead letters")
        return 0
    print(f"{'ID':>5}  {'RUN':>6}  {'NAME':<24} {'TRIES':>5}  REASON")
    for d in entries:
        note = f" (requeued as #{d.requeued_run_id})" if d.requeued_run_id else ""
        print(f"{d.id:>5}  {d.run_id:>6}  {terminal_safe(d.name)[:24]:<24} {d.attempts:>5}  {terminal_safe(d.reason)}{note}")
    return 0


async def _requeue(ns: argparse.Namespace) -> int:
    from prismq_desktop.core.orchestrator.orchestrator import TaskOrchestrator

    async with TaskOrchestrator(ns.data_dir, max_concurrent=1) as orch:
        orch.bus.subscribe_sync(_output_printer())  # streamed like `run`
        try:
            run_id = orch.requeue_dead_letter(ns.requeue)
        except (KeyError, ValueError) as exc:
            print(f"prismq-desktop: {terminal_safe(exc.args[0])}", file=sys.stderr)
            return 1
        print(f"dead letter #{ns.requeue} requeued as run #{run_id}", file=sys.stderr, flush=True)
        return await _wait_and_report(orch, run_id)


def _export(ns: argparse.Namespace, schedule: Any) -> int:
    """`schedule export`: the files on stdout or in -o FILE; what maps only nearly, on stderr."""
    from prismq_desktop.core.services.export import ExportError, ExportOptions, export_schedule

    opts = ExportOptions(image=ns.image, secret_name=ns.secret_name, cpu=ns.cpu, memory=ns.memory, env_file=ns.env_file)
    try:
        result = export_schedule(schedule, ns.format, opts)
    except ExportError as exc:
        print(f"prismq-desktop: error: {ns.format} cannot express schedule {terminal_safe(repr(schedule.name))}: "
              f"{terminal_safe(exc)}", file=sys.stderr)
        return 1
    for warning in result.warnings:
        print(f"prismq-desktop: warning: {terminal_safe(warning)}", file=sys.stderr)
    if not ns.output:
        many = len(result.files) > 1
        for name, text in result.files.items():
            sys.stdout.write((f"# ---- {name} ----\n" if many else "") + text)
        return 0
    from prismq_desktop.core.services.export import write_export

    for path in write_export(result, ns.output):
        print(f"wrote {terminal_safe(path)}", file=sys.stderr)
    return 0


async def _wait_and_report(orch: Any, run_id: int) -> int:
    """Wait for a run whose output is being streamed; Ctrl+C/SIGTERM cancel it; its exit status."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, orch.cancel, run_id)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        result = await orch.wait(run_id)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    assert result.outcome is not None
    if result.outcome.kind.value != "succeeded" or result.outcome.message:
        print(f"prismq-desktop: run #{result.run_id} {terminal_safe(_outcome_words(result.outcome))}", file=sys.stderr)
    return _exit_status(result.outcome)


_STATUSES = {"queued", "running", "paused", "done"}
_OUTCOMES = {"succeeded", "failed", "failed_to_start", "cancelled", "timed_out", "interrupted", "dependency_failed"}


def _cmd_history(ns: argparse.Namespace) -> int:
    from prismq_desktop.core import RunRegistry
    from prismq_desktop.core.paths import data_dir, registry_path
    from prismq_desktop.core.services.history import run_to_json
    from prismq_desktop.core.store import RunQuery

    status = outcome = None
    if ns.status:
        wanted = ns.status.strip().lower().replace("-", "_").replace(" ", "_")
        if wanted in _STATUSES:
            status = wanted
        elif wanted in _OUTCOMES:
            outcome = wanted
        else:
            _usage_error(f"unknown status {ns.status!r} (choose from {', '.join(sorted(_STATUSES | _OUTCOMES))})")
    if ns.limit <= 0:
        _usage_error("--limit must be positive")
    with RunRegistry(registry_path(data_dir(ns.data_dir))) as reg:
        runs = reg.query(RunQuery.of(status or outcome, limit=ns.limit))
    if ns.json:
        json.dump([run_to_json(r) for r in runs], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not runs:
        print("no runs recorded")
        return 0
    keyed = any(r.key for r in runs)  # a RUN ID column only when some run was given one (--run-id, run_id=)
    key_head = f"{'RUN ID':<24} " if keyed else ""
    print(f"{'ID':>6}  {key_head}{'NAME':<24} {'STATUS':<26} {'STARTED':<19} {'DURATION':>9}")
    for r in runs:
        state = r.outcome.describe() if r.outcome else r.status.value
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at or r.created_at))
        dur = f"{r.duration:.2f}s" if r.duration is not None else "-"
        key = f"{(r.key or '-')[:24]:<24} " if keyed else ""
        print(f"{r.id:>6}  {key}{terminal_safe(r.name)[:24]:<24} {terminal_safe(state)[:26]:<26} {started:<19} {dur:>9}")
    return 0


def _cmd_submit(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Send the run to the app listening on this data dir (it shows in its panes); else say so,
    and run it here only with --local."""
    import urllib.error
    import urllib.request

    from prismq_desktop.core import RunSpec, TargetKind
    from prismq_desktop.core.models import absolute_spec
    from prismq_desktop.core.paths import data_dir
    from prismq_desktop.core.services.endpoint import TOKEN_FILE, read_endpoint

    home = data_dir(ns.data_dir)
    endpoint = {"url": ns.url} if ns.url else read_endpoint(home)
    token_path = home / TOKEN_FILE
    if endpoint is None or not token_path.exists():
        if not ns.local:
            print(f"prismq-desktop: no PrismQ window or scheduler is listening on {terminal_safe(home)} (start one with "
                  "`prismq-desktop scheduler --http 127.0.0.1:PORT`, or add --local to run it here)", file=sys.stderr)
            return 1
        raw = list(ns.original_argv)
        at = raw.index("submit")
        local, skip = [], False
        for i, tok in enumerate(raw[at + 1 :]):
            before_args = "--" not in raw[at + 1 : at + 1 + i]
            if skip:
                skip = False
            elif before_args and tok == "--url":
                skip = True
            elif not (before_args and (tok == "--local" or tok.startswith("--url="))):
                local.append(tok)
        print("prismq-desktop: nothing is listening; running it here (--local)", file=sys.stderr, flush=True)
        return _cmd_run(parse_command_line(parser, [*raw[:at], "run", *local]))
    spec = absolute_spec(RunSpec(ns.target, tuple(ns.args), kind=TargetKind.MODULE if ns.module else TargetKind.AUTO,
                                 cwd=ns.cwd, env=dict(ns.env), interpreter=ns.python, soft_timeout=ns.timeout,
                                 name=ns.name))
    body: dict[str, Any] = {"script": spec.target, "args": list(spec.args), "env": dict(spec.env),
                            "priority": ns.priority, "module": ns.module}
    for key, value in (("cwd", spec.cwd or os.getcwd()), ("timeout", ns.timeout), ("name", ns.name),
                       ("python", ns.python)):
        if value is not None:
            body[key] = value
    token = token_path.read_text(encoding="ascii", errors="replace").strip()
    request = urllib.request.Request(endpoint["url"].rstrip("/") + "/runs", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own loopback API
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            why = json.loads(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError):
            why = exc.reason
        print(f"prismq-desktop: error: the app refused the run: {terminal_safe(why)}", file=sys.stderr)
        return EXIT_FAILED_TO_START if exc.code == 400 else 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"prismq-desktop: error: the app at {terminal_safe(endpoint['url'])} did not answer "
              f"({terminal_safe(getattr(exc, 'reason', exc))})", file=sys.stderr)
        return 1
    run_id = answer["id"]
    print(f"run #{run_id} submitted to the app at {terminal_safe(endpoint['url'])}; follow it with: "
          f"prismq-desktop logs {run_id} --follow")
    return 0


def _cmd_prune(ns: argparse.Namespace) -> int:
    """Retention from the shell: the same policy and deletion as the window's History tab."""
    from prismq_desktop.core import RunRegistry
    from prismq_desktop.core.paths import data_dir, registry_path
    from prismq_desktop.core.services.history import RetentionPolicy, apply_retention, retention_candidates
    from prismq_desktop.core.wording import plural

    if ns.keep_days is None and ns.keep_runs is None:
        _usage_error("prune needs --keep-days N and/or --keep-runs N (it never deletes everything)")
    policy = RetentionPolicy(keep_days=ns.keep_days, keep_runs=ns.keep_runs)
    with RunRegistry(registry_path(data_dir(ns.data_dir))) as reg:
        if ns.dry_run:
            doomed = retention_candidates(reg, policy)
            for run_id, _log in doomed:
                r = reg.get(run_id)
                if r is None:
                    continue
                ended = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.ended_at or r.created_at))
                state = r.outcome.describe() if r.outcome else r.status.value
                print(f"would delete #{r.id:<6} {terminal_safe(r.name)[:24]:<24} ended {ended}  {terminal_safe(state)[:40]}")
            print(f"dry run: {plural(len(doomed), 'run')} and {'its log' if len(doomed) == 1 else 'their logs'} would be "
                  f"deleted ({policy.describe()}); nothing was deleted")
            return 0
        gone = apply_retention(reg, policy)
    print(f"deleted {plural(gone.runs, 'run')} and {plural(gone.logs, 'log file')} ({policy.describe()})")
    for problem in gone.log_errors:
        print(f"prismq-desktop: could not delete a log file: {terminal_safe(problem)}", file=sys.stderr)
    return 1 if gone.log_errors else 0


def _cmd_logs(ns: argparse.Namespace) -> int:
    from prismq_desktop.core import RunRegistry
    from prismq_desktop.core.paths import data_dir, registry_path
    from prismq_desktop.core.process.logfile import Stream
    from prismq_desktop.core.store.recovery import process_alive as owner_alive

    wanted = {"stdout": {Stream.STDOUT}, "stderr": {Stream.STDERR}, None: {Stream.STDOUT, Stream.STDERR}}[ns.stream]
    with RunRegistry(registry_path(data_dir(ns.data_dir))) as reg:
        run_id = reg.resolve(ns.run_id)  # a number, "#12" or a caller-chosen id (RunNotFound: one line)
        if not 0 < run_id < 2**63:
            _usage_error(f"must be between 1 and {2**63 - 1}: {ns.run_id!r}")
        run = reg.get(run_id)
        if run is None:
            print(f"prismq-desktop: no run #{run_id}", file=sys.stderr)
            return 1
        path = run.log_path
        if not path:
            print(f"prismq-desktop: run #{run_id} has no log file", file=sys.stderr)
            return 1
        # no file: the run has written nothing (yet: it is made at the first output), and a
        # finished run without one had no output to keep: nothing to print, not an error
        out = sys.stdout.buffer
        offset = _copy_log(path, 0, wanted, out)
        while ns.follow:
            current = reg.get(run_id)
            if current is None or not current.is_active or not owner_alive(current.owner_pid, current.owner_create_time):
                _copy_log(path, offset, wanted, out)
                break
            time.sleep(0.2)
            offset = _copy_log(path, offset, wanted, out)
        return 0


def _copy_log(path: str, offset: int, wanted: set[Any], out: Any) -> int:
    """Write the payload of records from `offset` on; return the offset after the last one."""
    from prismq_desktop.core import read_log

    try:
        for record, end in read_log(path, offset):
            if record.stream in wanted:
                out.write(record.data)
            offset = end
    except FileNotFoundError:  # no output yet (or none at all)
        pass
    out.flush()
    return offset


def _usage_error(message: str) -> NoReturn:
    sys.stderr.write(f"prismq-desktop: error: {terminal_safe(message)}\n")
    raise SystemExit(EXIT_USAGE)


def _cmd_gui(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        from prismq_desktop.gui.app import main as gui_main
    except ImportError as exc:  # the core alone (no PySide6/qasync): the CLI still works
        parser.print_help()
        print(f"\nThe window needs the GUI extra (pip install 'prismq-desktop[gui]'): {exc}", file=sys.stderr)
        return 0
    result: int = gui_main(ns.data_dir)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    ns = parse_command_line(parser, raw)
    ns.original_argv = raw
    from prismq_desktop.core import paths  # a data dir others could read is tightened, and said once:
    paths.notice = lambda text: sys.stderr.write(f"prismq-desktop: {text}\n")

    try:
        if ns.command in ("run", "schedule") and (ns.command == "run" or ns.schedule_command == "add"):
            full = _disk_full(ns.data_dir)
            if full:
                sys.stderr.write(f"prismq-desktop: error: {full}\n")
                return 1
        if ns.command == "run":
            return _cmd_run(ns)
        if ns.command == "history":
            return _cmd_history(ns)
        if ns.command == "logs":
            return _cmd_logs(ns)
        if ns.command == "dead-letters":
            return _cmd_dead_letters(ns)
        if ns.command == "schedule":
            return _cmd_schedule(ns, parser)
        if ns.command == "submit":
            return _cmd_submit(ns, parser)
        if ns.command == "prune":
            return _cmd_prune(ns)
        if ns.command == "scheduler":
            return asyncio.run(_scheduler_foreground(ns))
        if ns.command == "worker":
            return _cmd_worker(ns)
        if ns.command == "remote-key":
            return _cmd_remote_key(ns)
        return _cmd_gui(ns, parser)
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        return EXIT_CANCELLED
    except Exception as exc:
        # the store is imported only when something failed: `submit`, one short process per run, never loads it
        from prismq_desktop.core.store.schema import RegistryError

        if isinstance(exc, RegistryError):  # damaged, locked, read-only, newer, full: one line, no traceback
            sys.stderr.write(f"prismq-desktop: error: {terminal_safe(exc)}\n")
            return 1
        if isinstance(exc, sqlite3.DatabaseError):  # a registry file that is not one (corrupt, or another file)
            sys.stderr.write(f"prismq-desktop: error: the registry cannot be read ({terminal_safe(exc)}); "
                             "it was left as it is\n")
            return 1
        if isinstance(exc, (ValueError, OSError, OverflowError)):
            sys.stderr.write(f"prismq-desktop: error: {terminal_safe(exc)}\n")
            return 1
        raise


MIN_FREE = 64 * 1024  # below this, a run or a new schedule could not even be recorded


def _disk_full(data_dir: str | None) -> str | None:
    """One line when the disk holding the data dir has (next to) no room, else None."""
    import shutil

    from prismq_desktop.core.paths import data_dir as resolve_data_dir

    where = Path(resolve_data_dir(data_dir))
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return None
    if free >= MIN_FREE:
        return None
    return f"no space left on the disk holding {where} ({free} bytes free); free some space and try again"


if __name__ == "__main__":
    sys.exit(main())
