"""Compiler-grade diagnostics: ``file:line:col: error: message``, the source line, a caret
under the span, and a hint.  :class:`SpaceError` carries every diagnostic of a file."""
from __future__ import annotations

import attrs

from .errors import ArchError, SpaceError  # noqa: F401  (re-exported: the family lives in errors.py)

from .syntax import NO_SPAN, Span

_MAX_SHOWN = 160  # characters of a source line shown around the caret


@attrs.frozen
class Diagnostic:
    filename: str
    span: Span
    message: str
    hint: str | None = None
    severity: str = "error"  # error | warning

    def render(self, source: str | None = None) -> str:
        """The diagnostic as the CLI prints it (source line and caret when ``source`` is given)."""
        if self.span.line:
            head = f"{self.filename}:{self.span.line}:{self.span.col}: {self.severity}: {self.message}"
        else:
            head = f"{self.filename}: {self.severity}: {self.message}"
        lines = [head]
        if source is not None and self.span.line:
            lines += _excerpt(source, self.span)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def as_json(self) -> dict:
        return {"file": self.filename, "line": self.span.line, "col": self.span.col,
                "severity": self.severity, "message": self.message, "hint": self.hint}


def _excerpt(source: str, span: Span) -> list[str]:
    src_lines = source.split("\n")
    if span.line > len(src_lines):
        return []
    text = src_lines[span.line - 1].replace("\t", " ")
    start = span.col - 1
    width = (span.end_col - span.col) if span.end_line == span.line else len(text) - start
    width = max(1, width)
    # keep very long lines readable: show a window around the caret
    offset = 0
    if len(text) > _MAX_SHOWN:
        offset = max(0, start - _MAX_SHOWN // 2)
        text = ("…" if offset else "") + text[offset:offset + _MAX_SHOWN] + "…"
        start = start - offset + (1 if offset else 0)
        width = min(width, _MAX_SHOWN - start + 1)
    return ["    " + text.rstrip(), "    " + " " * start + "^" * max(1, width)]


def error(filename: str, span: Span | None, message: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(filename, span or NO_SPAN, message, hint)
