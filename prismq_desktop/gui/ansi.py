"""ANSI escape handling for log panes: SGR colours become segments, everything else is dropped.

Pure Python (no Qt) so it can be tested and reused; the pane maps a segment's style to a
QTextCharFormat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

# CSI sequences (colours, cursor moves, erase), OSC (window titles, hyperlinks), lone ESC pairs
_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_SGR = re.compile(r"\x1b\[([0-9;:]*)m")

PALETTE = [
    "#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",  # normal
    "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff",  # bright
]


@dataclass(frozen=True)
class Style:
    fg: str | None = None
    bg: str | None = None
    bold: bool = False
    italic: bool = False
    underline: bool = False

    @property
    def plain(self) -> bool:
        return self == PLAIN


PLAIN = Style()


def _color_256(n: int) -> str:
    if n < 16:
        return PALETTE[n]
    if n < 232:
        n -= 16
        r, g, b = (n // 36) % 6, (n // 6) % 6, n % 6
        return "#%02x%02x%02x" % tuple(0 if c == 0 else 55 + c * 40 for c in (r, g, b))  # noqa: UP031
    level = 8 + (n - 232) * 10
    return f"#{level:02x}{level:02x}{level:02x}"


def apply_sgr(style: Style, params: str) -> Style:
    codes = [int(p) if p.isdigit() else 0 for p in re.split(r"[;:]", params)] if params else [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            style = PLAIN
        elif c == 1:
            style = replace(style, bold=True)
        elif c == 3:
            style = replace(style, italic=True)
        elif c == 4:
            style = replace(style, underline=True)
        elif c == 22:
            style = replace(style, bold=False)
        elif c == 23:
            style = replace(style, italic=False)
        elif c == 24:
            style = replace(style, underline=False)
        elif 30 <= c <= 37:
            style = replace(style, fg=PALETTE[c - 30])
        elif 90 <= c <= 97:
            style = replace(style, fg=PALETTE[c - 90 + 8])
        elif 40 <= c <= 47:
            style = replace(style, bg=PALETTE[c - 40])
        elif 100 <= c <= 107:
            style = replace(style, bg=PALETTE[c - 100 + 8])
        elif c == 39:
            style = replace(style, fg=None)
        elif c == 49:
            style = replace(style, bg=None)
        elif c in (38, 48) and i + 1 < len(codes):
            color: str | None = None
            if codes[i + 1] == 5 and i + 2 < len(codes):
                color = _color_256(codes[i + 2] % 256)
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                r, g, b = (max(0, min(255, v)) for v in codes[i + 2 : i + 5])
                color = f"#{r:02x}{g:02x}{b:02x}"
                i += 4
            if color is not None:
                style = replace(style, fg=color) if c == 38 else replace(style, bg=color)
        i += 1
    return style


def split_styled(line: str, style: Style) -> tuple[list[tuple[str, Style]], Style]:
    """Segments of `line` with their styles, and the style in force at its end."""
    if "\x1b" not in line:
        return ([(line, style)] if line else []), style
    segments: list[tuple[str, Style]] = []
    pos = 0
    for match in _ESCAPE.finditer(line):
        if match.start() > pos:
            segments.append((line[pos : match.start()], style))
        sgr = _SGR.fullmatch(match.group(0))
        if sgr is not None:
            style = apply_sgr(style, sgr.group(1))
        pos = match.end()
    if pos < len(line):
        segments.append((line[pos:], style))
    return segments, style


# ---------------------------------------------------------------------------- legibility
# Like VS Code's terminal.integrated.minimumContrastRatio (default 4.5): a colour a script
# asks for is darkened on a light background (lightened on a dark one) until it meets WCAG AA,
# so ANSI yellow (WARNING lines of coloured loggers) is readable on white.

MIN_CONTRAST = 4.5


def _rgb(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    if len(color) == 3:
        color = "".join(c * 2 for c in color)
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def relative_luminance(color: str) -> float:
    """WCAG 2 relative luminance of `#rrggbb`."""
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = _rgb(color)
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours (1 to 21)."""
    la, lb = relative_luminance(a), relative_luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


_LEGIBLE: dict[tuple[str, str, float], str] = {}


def legible(color: str, background: str, minimum: float = MIN_CONTRAST) -> str:
    """`color`, or the nearest colour of the same hue that reaches `minimum` contrast on `background`."""
    key = (color, background, minimum)
    found = _LEGIBLE.get(key)
    if found is not None:
        return found
    result = color.lower()
    if contrast_ratio(color, background) < minimum:
        target = (0.0, 0.0, 0.0) if relative_luminance(background) > 0.18 else (255.0, 255.0, 255.0)
        src = _rgb(color)
        lo, hi = 0.0, 1.0  # blend factor toward black/white: the smallest that is legible
        for _ in range(16):
            mid = (lo + hi) / 2
            candidate = _hex(tuple(s + (t - s) * mid for s, t in zip(src, target, strict=True)))  # type: ignore[arg-type]
            if contrast_ratio(candidate, background) >= minimum:
                hi = mid
            else:
                lo = mid
        result = _hex(tuple(s + (t - s) * hi for s, t in zip(src, target, strict=True)))  # type: ignore[arg-type]
    if len(_LEGIBLE) > 4096:
        _LEGIBLE.clear()
    _LEGIBLE[key] = result
    return result


def strip_ansi(text: str) -> str:
    return _ESCAPE.sub("", text) if "\x1b" in text else text
