"""Every `prismq-desktop ...` command line shown in README.md goes through the real parser: a
README example that stops parsing fails the suite (found by a new user following it)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from prismq_desktop.cli import build_parser, parse_command_line

README = Path(__file__).resolve().parents[2] / "README.md"

#: what a placeholder of the synopsis stands for (an unknown one fails the test: add it here)
SAMPLES = {
    "SCRIPT": "hello.py", "ARGS": "a", "NAME": "every5", "NAME_OR_ID": "every5", "ID": "1", "RUN_ID": "1",
    "S": "5", "N": "3", "URL": "redis://localhost:6379/0", "QUEUE": "gpu", "EXPR": "*/5 * * * *",
    "ISO": "2030-01-01T09:30", "DIR": "/tmp/prismq-readme", "H": "box1", "TZ": "Europe/Berlin", "K=V": "A=1",
    "FILE": "out.yaml", "PORT": "8765", "HOST:PORT": "127.0.0.1:8765", "TASK": "nightly", "P": "simple",
}
STATUS_SAMPLE = {"--status": "failed"}


def readme_lines() -> tuple[list[str], list[str]]:
    """(synopsis and example lines of the code blocks, inline `prismq-desktop ...` spans)."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    lines = [ln.split("  #")[0].strip() for b in blocks for ln in b.splitlines()]
    lines = [ln for ln in lines if re.match(r"prismq-desktop(\s|$)", ln)]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    spans = [m.strip() for m in re.findall(r"`([^`\n]+)`", prose)]
    spans = [re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", s) for s in spans]  # VAR=value prismq-desktop ...
    spans = [s for s in spans if re.match(r"prismq-desktop(\s|$)", s)]
    return lines, spans


def _tokens(line: str) -> list[str]:
    out: list[str] = []
    for tok in shlex.split(line):
        out.extend(re.findall(r"\[|\]|\(|\)|[^\[\]()]+", tok) if tok not in ("[", "]", "(", ")") else [tok])
    return out


def _group(tokens: list[str], i: int, end: str | None) -> tuple[list, int]:
    """Parse a synopsis into nested ("opt"|"req", [alternatives...]) groups."""
    alts: list[list] = [[]]
    while i < len(tokens):
        tok = tokens[i]
        if tok == end:
            return alts, i + 1
        if tok in ("[", "("):
            inner, i = _group(tokens, i + 1, "]" if tok == "[" else ")")
            alts[-1].append(("opt" if tok == "[" else "req", inner))
            continue
        if tok == "|":
            alts.append([])
        else:
            alts[-1].append(tok)
        i += 1
    return alts, i


def _word(tok: str, k: int, prev: str | None) -> list[str]:
    tok = tok.removesuffix("...")
    if not tok or tok == "..." or tok == "--data-dir DIR":
        return []
    if "|" in tok and not tok.startswith("-"):
        choices = tok.split("|")
        return [choices[k % len(choices)]]
    if re.fullmatch(r"[A-Z][A-Z_:=]*", tok):
        if prev in STATUS_SAMPLE:
            return [STATUS_SAMPLE[prev]]
        assert tok in SAMPLES, f"README placeholder {tok} has no sample value in this test"
        return [SAMPLES[tok]]
    return [tok]


def _expand(alts: list[list], k: int, with_optional: bool) -> list[str]:
    seq = alts[k % len(alts)]
    out: list[str] = []
    for item in seq:
        if isinstance(item, tuple):
            kind, inner = item
            if kind == "opt" and not with_optional:
                continue
            out += _expand(inner, k, with_optional)
        else:
            out += _word(item, k, out[-1] if out else None)
    return out


def variants(line: str) -> list[list[str]]:
    """Each alternative at least once, with and without the optional parts."""
    tree, _ = _group(_tokens(line), 0, None)
    widest = max([len(line.split("|")), 1]) + 1
    seen: list[list[str]] = []
    for k in range(widest):
        for opt in (False, True):
            argv = _expand(tree, k, opt)[1:]  # drop "prismq-desktop"
            if argv not in seen:
                seen.append(argv)
    return seen


def parses(argv: list[str]) -> None:
    """The real parser, as main() calls it (a usage error is SystemExit(2))."""
    parse_command_line(build_parser(), argv)


LINES, SPANS = readme_lines()


def test_the_readme_shows_commands():
    assert len(LINES) >= 15 and len(SPANS) >= 5  # the extraction itself works (else this suite tests nothing)
    assert any("schedule add every5 hello.py --every 5m" in ln for ln in LINES)


@pytest.mark.parametrize("line", LINES)
def test_every_readme_command_line_parses(line):
    for argv in variants(line):
        try:
            parses(argv)
        except SystemExit as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"README line {line!r} as {argv!r} is refused by the parser (exit {exc.code})")


@pytest.mark.parametrize("span", SPANS)
def test_every_inline_readme_command_parses(span):
    for argv in variants(span):
        try:
            parses(argv)
        except SystemExit as exc:  # pragma: no cover
            pytest.fail(f"README text `{span}` as {argv!r} is refused by the parser (exit {exc.code})")


@pytest.mark.parametrize("bad", [
    "prismq-desktop schedule add every5 hello.py",                     # no --every/--cron/--at
    "prismq-desktop run --retries -1 hello.py",
    "prismq-desktop run --pattern bogus hello.py",
    "prismq-desktop prune --keep-runs zero",
    "prismq-desktop logs RUN_ID --stream both",
])
def test_the_checker_can_fail(bad, capsys):
    """The same path refuses what the parser refuses, so a broken README line would be caught."""
    with pytest.raises(SystemExit) as exc:
        for argv in variants(bad):
            parses(argv)
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_options_after_the_positionals_and_script_args_after_the_separator():
    ns = parse_command_line(build_parser(), ["schedule", "add", "every5", "hello.py", "--every", "5m", "--", "--every", "x"])
    assert (ns.name, ns.target, ns.every, ns.args) == ("every5", "hello.py", "5m", ["--every", "x"])
    ns = parse_command_line(build_parser(), ["run", "t.py", "--timeout", "3", "--", "--", "-m"])
    assert (ns.target, ns.timeout, ns.args) == ("t.py", 3.0, ["--", "-m"])
    ns = parse_command_line(build_parser(), ["run", "--cwd", "/tmp", "t.py", "a", "b"])
    assert (ns.cwd, ns.args) == ("/tmp", ["a", "b"])
    # as before: from the first token after SCRIPT that is not one of run's long options, all are the script's
    ns = parse_command_line(build_parser(), ["run", "python3", "-S", "-c", "pass", "--timeout", "3"])
    assert (ns.target, ns.args, ns.timeout) == ("python3", ["-S", "-c", "pass", "--timeout", "3"], None)
    ns = parse_command_line(build_parser(), ["run", "t.py", "--timeout=3", "-v", "--timeout", "9"])
    assert (ns.timeout, ns.args) == (3.0, ["-v", "--timeout", "9"])
    ns = parse_command_line(build_parser(), ["--data-dir", "/d", "run", "--", "python3", "-c", "x"])
    assert (ns.data_dir, ns.target, ns.args) == ("/d", "python3", ["-c", "x"])
    ns = parse_command_line(build_parser(), ["schedule", "add", "--every", "3600", "nightly", "py", "-c", "pass"])
    assert (ns.every, ns.name, ns.target, ns.args) == ("3600", "nightly", "py", ["-c", "pass"])
    ns = parse_command_line(build_parser(), ["submit", "t.py", "--local", "--priority", "high", "x"])
    assert (ns.local, ns.priority, ns.args) == (True, "high", ["x"])
