"""Command lines as each platform reads them: split a typed argument string, show an argv the way
the child receives it, and quote an argv for a batch file (cmd.exe).

Pure functions of their text and a `platform` argument (default: this one), so the Windows rules
are tested on every platform. Windows has no argv: a child gets one string, which `subprocess`
builds with `list2cmdline` and the child's C runtime splits again; `split_windows` is that split.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["CmdQuoteError", "batch_command_line", "display", "is_batch_file", "split", "split_windows"]

_WHITESPACE = " \t"


def split_windows(text: str) -> list[str]:
    """Split `text` as the Microsoft C runtime splits a command line's arguments (no argv[0] rule).

    The rules of "Parsing C command-line arguments" (learn.microsoft.com/cpp/c-language/
    parsing-c-command-line-arguments): whitespace separates; a quoted part may hold whitespace;
    2n backslashes + `"` give n backslashes and a quote that opens/closes, 2n+1 give n and a
    literal `"`; other backslashes are literal; inside quotes `""` is one literal `"`. It is the
    inverse of `subprocess.list2cmdline` (Lib/subprocess.py), which CPython uses to build the child's
    command line. A quote left open is refused (ValueError), as the POSIX split refuses it.
    """
    args: list[str] = []
    cur: list[str] = []
    in_arg = quoted = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            j = i
            while j < n and text[j] == "\\":
                j += 1
            count = j - i
            if j < n and text[j] == '"':
                cur.append("\\" * (count // 2))
                if count % 2:
                    cur.append('"')
                    i = j + 1
                else:
                    i = j  # the quote is a delimiter: handled below
            else:
                cur.append("\\" * count)
                i = j
            in_arg = True
            continue
        if c == '"':
            in_arg = True
            if quoted and i + 1 < n and text[i + 1] == '"':
                cur.append('"')  # "" inside quotes: one literal quote (UCRT, since VS 2008)
                i += 2
                continue
            quoted = not quoted
            i += 1
            continue
        if c in _WHITESPACE and not quoted:
            if in_arg:
                args.append("".join(cur))
                cur, in_arg = [], False
            i += 1
            continue
        cur.append(c)
        in_arg = True
        i += 1
    if quoted:
        raise ValueError("No closing quotation")
    if in_arg:
        args.append("".join(cur))
    return args


def split(text: str, platform: str = sys.platform) -> list[str]:
    """A typed argument string as the child will receive it: Windows rules on Windows (a backslash
    is a path separator there: ``C:\\data\\in.csv`` stays whole), POSIX shell rules elsewhere."""
    if platform == "win32":
        return split_windows(text)
    return shlex.split(text, posix=True)


def display(argv: Sequence[str], platform: str = sys.platform) -> str:
    """An argv as one line, exactly as the child gets it: `list2cmdline` on Windows (what
    `subprocess.Popen` passes to CreateProcess), shell quoting elsewhere."""
    if platform == "win32":
        return subprocess.list2cmdline(list(argv))
    return shlex.join(argv)


def is_batch_file(path: str) -> bool:
    """A .cmd/.bat file: CreateProcess runs it through cmd.exe, which reads the whole command line."""
    return path.rstrip(" .").lower().endswith((".cmd", ".bat"))


class CmdQuoteError(ValueError):
    """An argument that no quoting can hand safely to a batch file (a line break or NUL in it)."""


# cmd.exe gives meaning to these outside quotes; an argument holding one (or non-ASCII) is quoted.
_CMD_SPECIAL = frozenset("\t &()[]{}^=;!'+,`~%|<>")


def _batch_arg(arg: str) -> str:
    """One argument for a batch file, the way Rust's std quotes it since CVE-2024-24576
    (library/std/src/sys/args/windows.rs `append_bat_arg`): quoted when anything cmd.exe reads is
    in it; an embedded `"` doubled (cmd's quote state stays balanced), backslashes before a quote
    doubled (for the C runtime of the program the batch file hands it to); every `%` written as
    ``%%cd:~,%`` - the zero-length substring of the always-defined CD variable - so no ``%VAR%``
    can ever expand. CR, LF and NUL end cmd's line: refused."""
    if any(c in arg for c in "\r\n\0"):
        raise CmdQuoteError(f"an argument with a line break cannot be passed to a batch file: {arg!r}")
    quote = not arg or any(c in _CMD_SPECIAL or c == '"' or ord(c) > 0x7F for c in arg) or arg.endswith("\\")
    out: list[str] = ['"'] if quote else []
    backslashes = 0
    for c in arg:
        if c == "\\":
            backslashes += 1
        else:
            if c == '"':
                out.append("\\" * backslashes)  # n backslashes become 2n before the quote
                out.append('"')
            backslashes = 0
        out.append("%%cd:~," if c == "%" else "")
        out.append(c)
    if quote:
        out.append("\\" * backslashes)
        out.append('"')
    return "".join(out)


def batch_command_line(script: str, args: Sequence[str]) -> str:
    """The command line that runs `script` (a .cmd/.bat) with `args` and nothing else.

    ``cmd.exe /e:ON /v:OFF /d /c ""script" args"``: /d skips AutoRun commands, /v:OFF keeps `!`
    inert, /e:ON is needed for the `%` guard, and cmd /c strips the outer pair of quotes (`cmd /?`,
    "If /C or /K is specified ... the first and last quote"). Pass it as a *string* to Popen with
    the executable set to cmd.exe, so `list2cmdline` does not quote it again. (Rust std
    `make_bat_command_line`, same scheme.)
    """
    if '"' in script or script.endswith("\\"):
        raise CmdQuoteError(f"not a batch file name: {script!r}")
    if any(c in script for c in "\r\n\0"):
        raise CmdQuoteError(f"not a batch file name: {script!r}")
    program = '"' + script.replace("%", "%%cd:~,%") + '"'
    return 'cmd.exe /e:ON /v:OFF /d /c "' + " ".join([program, *(_batch_arg(a) for a in args)]) + '"'


def system_cmd(environ: dict[str, str] | None = None) -> str:
    """cmd.exe from the system folder (never one found on PATH or in the working directory)."""
    env = environ if environ is not None else dict(__import__("os").environ)
    root = env.get("SystemRoot") or env.get("SYSTEMROOT") or "C:\\Windows"
    return root.rstrip("\\") + "\\System32\\cmd.exe"


def windows_spawn(argv: Sequence[str], resolved: str) -> tuple[str | list[str], str | None]:
    """(args, executable) for `subprocess.Popen` on Windows: `argv` as is, or - when `resolved`
    (argv[0] found on PATH) is a batch file - the cmd.exe line of `batch_command_line` and cmd.exe
    as the executable. CreateProcess would otherwise start the batch file through cmd.exe with the
    command line `list2cmdline` made, whose quoting cmd.exe does not honour (a `&` or `%` in a path
    runs or expands; learn.microsoft.com CreateProcessW, lpApplicationName: "To run a batch file,
    you must start the command interpreter")."""
    if not is_batch_file(resolved):
        return list(argv), None
    return batch_command_line(resolved, argv[1:]), system_cmd()
