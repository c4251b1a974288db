"""Windows command-line rules, tested on every platform (the platform is a parameter).

`split_windows` must be the exact inverse of `subprocess.list2cmdline` (what Popen hands to
CreateProcess on Windows), so an argument typed in the form reaches the child unchanged;
`batch_command_line` must never let cmd.exe read an argument as syntax.
"""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prismq_desktop.core.models import RunSpec
from prismq_desktop.core.process import cmdline
from prismq_desktop.core.process.launch import LaunchError, split_args

ARG = st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=12)
NASTY = st.text(alphabet='ab \t\\"', max_size=10)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(ARG, NASTY), max_size=6))
def test_split_windows_is_the_inverse_of_list2cmdline(args):
    assert cmdline.split_windows(subprocess.list2cmdline(args)) == args


@pytest.mark.parametrize(("text", "argv"), [
    (r"C:\data\in.csv", [r"C:\data\in.csv"]),
    (r'"C:\Program Files\x.txt" --out D:\o\ ', [r"C:\Program Files\x.txt", "--out", "D:\\o\\"]),
    (r'a\\\"b', ['a\\"b']),         # 3 backslashes + quote: one backslash, literal quote
    (r'a\\"b c"', [r"a\b c"]),         # 2 backslashes + quote: one backslash, quote opens
    (r'"say ""hi"""', ['say "hi"']),   # "" inside quotes is a literal quote
    ('  \t ', []),
    ('""', [""]),
    ("a\\\\", ["a\\\\"]),                 # backslashes not before a quote are literal
])
def test_split_windows_examples(text, argv):
    assert cmdline.split_windows(text) == argv


def test_split_args_keeps_backslashes_on_windows_and_not_on_posix():
    assert split_args(r"C:\data\in.csv --n 3", platform="win32") == (r"C:\data\in.csv", "--n", "3")
    assert split_args(r"C:\data\in.csv", platform="linux") == ("C:datain.csv",)  # POSIX shell rules there


def test_unclosed_quote_is_one_clear_error_on_both_platforms():
    for platform in ("win32", "linux"):
        with pytest.raises(LaunchError, match="cannot parse arguments"):
            split_args('"C:\\my dir', platform=platform)


def test_preview_is_what_the_child_receives():
    argv = ["C:\\Python311\\python.exe", "C:\\a b\\x.py", 'say "hi"', "C:\\data\\"]
    line = cmdline.display(argv, "win32")
    assert line == subprocess.list2cmdline(argv)
    assert cmdline.split_windows(line) == argv
    assert cmdline.display(["a b", "c"], "linux") == "'a b' c"


def test_runspec_args_resolve_unchanged(tmp_path):
    """The whole path: a RunSpec's typed args become the argv's tail (POSIX rules here)."""
    from prismq_desktop.core.process.launch import resolve

    script = tmp_path / "s.py"
    script.write_text("")
    launch = resolve(RunSpec(target=str(script), args="--a 'b c'", cwd=str(tmp_path)))
    assert launch.argv[-2:] == ("--a", "b c")


# ------------------------------------------------------------------ batch files through cmd.exe
@pytest.mark.parametrize("name", ["code.cmd", "C:\\x\\CODE.CMD", "run.bat", "a.cmd. ", "code.exe"])
def test_is_batch_file(name):
    assert cmdline.is_batch_file(name) == (not name.endswith(".exe"))


def test_batch_line_quotes_metacharacters_and_guards_percent():
    line = cmdline.batch_command_line("C:\\VS Code\\bin\\code.cmd", ["-g", "C:\\R&D\\x.py:3", "100%\\%PATH%.py", 'a"&calc&"b'])
    assert line.startswith('cmd.exe /e:ON /v:OFF /d /c ""C:\\VS Code\\bin\\code.cmd" ')
    assert line.endswith('"')
    assert ' -g "C:\\R&D\\x.py:3" ' in line
    assert '"100%%cd:~,%\\%%cd:~,%PATH%%cd:~,%.py"' in line
    assert '"a""&calc&""b"' in line  # quotes doubled: cmd.exe's quote state never opens the &
    # outside the outer pair, no metacharacter is ever unquoted: count quotes before each &
    inner = line[len('cmd.exe /e:ON /v:OFF /d /c "'):-1]
    for i, c in enumerate(inner):
        if c in "&|<>^":
            assert inner[:i].count('"') % 2 == 1, f"{c!r} at {i} is outside quotes in {inner!r}"


def test_batch_line_refuses_line_breaks_and_bad_names():
    with pytest.raises(cmdline.CmdQuoteError):
        cmdline.batch_command_line("C:\\code.cmd", ["a\r\nb"])
    with pytest.raises(cmdline.CmdQuoteError):
        cmdline.batch_command_line('C:\\co"de.cmd', ["x"])


def test_batch_arg_trailing_backslash_is_doubled_before_the_closing_quote():
    line = cmdline.batch_command_line("C:\\e.cmd", ["C:\\dir with space\\"])
    assert line.endswith('"C:\\dir with space\\\\""')


def test_windows_spawn_leaves_exe_alone():
    assert cmdline.windows_spawn(["C:\\e\\code.exe", "a&b"], "C:\\e\\code.exe") == (["C:\\e\\code.exe", "a&b"], None)
    args, exe = cmdline.windows_spawn(["code", "R&D\\x.py"], "C:\\e\\code.cmd")
    assert isinstance(args, str) and exe is not None and exe.lower().endswith("\\system32\\cmd.exe")
