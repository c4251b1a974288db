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
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from prismq_desktop import __version__

EXIT_USAGE = 2
EXIT_TIMED_OUT = 124
EXIT_FAILED_TO_START = 125
EXIT_CANCELLED = 130


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line and exit 2, never a traceback."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
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
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="arguments for it (after --)")
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
    run.add_argument("--encoding", default="utf-8", help="the child's output encoding (default utf-8)")

    hist = sub.add_parser("history", help="list recorded runs, newest first")
    hist.add_argument("--status", help="queued, running, paused, done, or an outcome: succeeded, failed, "
                      "failed_to_start, cancelled, timed_out, interrupted")
    hist.add_argument("--limit", type=int, default=20)
    hist.add_argument("--json", action="store_true", help="print a JSON array")

    logs = sub.add_parser("logs", help="print a run's output exactly as it was written")
    logs.add_argument("run_id", type=int, metavar="RUN_ID")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing while the run is active")
    logs.add_argument("--stream", choices=["stdout", "stderr"], help="only this stream")

    sub.add_parser("gui", help="open the window (the default with no command)")
    return parser


def run_to_json(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status.value,
        "outcome": run.outcome.kind.value if run.outcome else None,
        "exit_code": run.exit_code,
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration": run.duration,
        "mode": run.mode,
        "dry_run": run.dry_run,
        "argv": list(run.argv),
        "cwd": run.cwd,
        "pid": run.pid,
        "log_path": run.log_path,
    }


def _exit_status(outcome: Any) -> int:
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
    from prismq_desktop.core import OutputBatch, RunEngine, RunMode, RunSpec, TargetKind
    from prismq_desktop.core.events import Event
    from prismq_desktop.core.output import Stream
    from prismq_desktop.core.wrapper import requested_mode

    args = list(ns.args)
    if args and args[0] == "--":
        args = args[1:]
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
    )
    mode = RunMode.DRY_RUN if ns.dry_run else (RunMode(ns.mode) if ns.mode else None)
    out, err = sys.stdout.buffer, sys.stderr.buffer

    def show(event: Event) -> None:
        if isinstance(event, OutputBatch):
            for chunk in event.chunks:
                (out if chunk.stream is Stream.STDOUT else err).write(chunk.data)
            out.flush()
            err.flush()

    engine = RunEngine(ns.data_dir, mode=RunMode.AUTO)
    try:
        chosen = requested_mode(mode or RunMode.AUTO)
        if chosen in (RunMode.LOCAL, RunMode.DRY_RUN):
            engine.bus.subscribe_sync(show)
            handle = engine.run_blocking(spec, mode=chosen)
        else:
            handle = asyncio.run(_run_async(engine, spec, mode, show))
    finally:
        engine.close()
    run = handle.run
    if run.dry_run:
        print(f"dry run #{run.id}: would run {' '.join(run.argv)} in {run.cwd}", file=sys.stderr)
    assert run.outcome is not None
    if (run.outcome.kind.value != "succeeded" or run.outcome.message) and not run.dry_run:
        print(f"prismq-desktop: run #{run.id} {run.outcome.describe()}", file=sys.stderr)
    return _exit_status(run.outcome)


async def _run_async(engine: Any, spec: Any, mode: Any, show: Any) -> Any:
    loop = asyncio.get_running_loop()
    engine.bus.subscribe_sync(show)
    handle = await engine.start(spec, mode=mode)

    def on_signal() -> None:
        engine.cancel(handle.id)

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        await handle.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return handle


_STATUSES = {"queued", "running", "paused", "done"}
_OUTCOMES = {"succeeded", "failed", "failed_to_start", "cancelled", "timed_out", "interrupted"}


def _cmd_history(ns: argparse.Namespace) -> int:
    from prismq_desktop.core import RunRegistry
    from prismq_desktop.core.paths import data_dir, registry_path

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
        runs = reg.list(status=status, outcome=outcome, limit=ns.limit)
    if ns.json:
        json.dump([run_to_json(r) for r in runs], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not runs:
        print("no runs recorded")
        return 0
    print(f"{'ID':>6}  {'NAME':<24} {'STATUS':<26} {'STARTED':<19} {'DURATION':>9}")
    for r in runs:
        state = r.outcome.describe() if r.outcome else r.status.value
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at or r.created_at))
        dur = f"{r.duration:.2f}s" if r.duration is not None else "-"
        print(f"{r.id:>6}  {r.name[:24]:<24} {state[:26]:<26} {started:<19} {dur:>9}")
    return 0


def _cmd_logs(ns: argparse.Namespace) -> int:
    from prismq_desktop.core import RunRegistry
    from prismq_desktop.core.output import Stream
    from prismq_desktop.core.paths import data_dir, registry_path

    wanted = {"stdout": {Stream.STDOUT}, "stderr": {Stream.STDERR}, None: {Stream.STDOUT, Stream.STDERR}}[ns.stream]
    with RunRegistry(registry_path(data_dir(ns.data_dir)), recover=False) as reg:
        run = reg.get(ns.run_id)
        if run is None:
            print(f"prismq-desktop: no run #{ns.run_id}", file=sys.stderr)
            return 1
        path = run.log_path
        if not path or not os.path.exists(path):
            print(f"prismq-desktop: run #{ns.run_id} has no log file", file=sys.stderr)
            return 1
        out = sys.stdout.buffer
        offset = _copy_log(path, 0, wanted, out)
        while ns.follow:
            current = reg.get(ns.run_id)
            if current is None or not current.is_active:
                _copy_log(path, offset, wanted, out)
                break
            time.sleep(0.2)
            offset = _copy_log(path, offset, wanted, out)
        return 0


def _copy_log(path: str, offset: int, wanted: set[Any], out: Any) -> int:
    """Write the payload of records from `offset` on; return the offset after the last one."""
    from prismq_desktop.core import read_log

    for record, end in read_log(path, offset):
        if record.stream in wanted:
            out.write(record.data)
        offset = end
    out.flush()
    return offset


def _usage_error(message: str) -> NoReturn:
    sys.stderr.write(f"prismq-desktop: error: {message}\n")
    raise SystemExit(EXIT_USAGE)


def _cmd_gui(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        from prismq_desktop.gui.app import main as gui_main  # type: ignore[import-not-found]
    except ImportError:
        parser.print_help()
        return 0
    result: int = gui_main(ns.data_dir)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        if ns.command == "run":
            return _cmd_run(ns)
        if ns.command == "history":
            return _cmd_history(ns)
        if ns.command == "logs":
            return _cmd_logs(ns)
        return _cmd_gui(ns, parser)
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        return EXIT_CANCELLED
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"prismq-desktop: error: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
