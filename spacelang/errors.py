"""One family of errors for everything a user can get wrong.

Every error a user can cause — a bad ``.space`` file, an arch outside its space, a damaged
checkpoint, a dataset that does not fit, an option out of range — is a :class:`SpacelangError`.
Commands catch this family (and only it) and print :meth:`SpacelangError.render`: one line,
``file:line:col: error: message`` where a position is known, ``file: error: message`` where only
a file is, ``error: message`` otherwise, with an optional ``hint:`` line; exit code 2.
Anything else that escapes is a bug in spacelang, and shows as one.

Pure Python: importing it never imports torch.
"""
from __future__ import annotations

from typing import Iterable


class SpacelangError(Exception):
    """Root of the family: a one-line ``message``, an optional ``hint`` and position."""

    def __init__(self, message: str, *, hint: str | None = None, filename: str | None = None,
                 line: int | None = None, col: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.filename = filename
        self.line = line
        self.col = col

    def render(self) -> str:
        """The error as the CLI prints it."""
        if self.filename and self.line:
            head = f"{self.filename}:{self.line}:{self.col or 1}: error: {self.message}"
        elif self.filename:
            head = f"{self.filename}: error: {self.message}"
        else:
            head = f"error: {self.message}"
        return head + (f"\n  hint: {self.hint}" if self.hint else "")

    def __str__(self) -> str:
        return self.message


class SpaceError(SpacelangError):
    """A ``.space`` file (or text) with errors; ``diagnostics`` holds every one of them."""

    def __init__(self, diagnostics: Iterable, source: str | None = None):
        self.diagnostics = list(diagnostics)
        self.source = source
        first = self.diagnostics[0] if self.diagnostics else None
        super().__init__(first.message if first else "invalid space",
                         filename=getattr(first, "filename", None),
                         line=getattr(getattr(first, "span", None), "line", None) or None,
                         col=getattr(getattr(first, "span", None), "col", None) or None)

    def render(self) -> str:
        return "\n".join(d.render(self.source) for d in self.diagnostics)

    def __str__(self) -> str:
        return self.render()


class ArchError(SpacelangError):
    """An arch that is not a point of its space; ``path`` names the offending dimension."""

    def __init__(self, path: str | None, message: str, *, hint: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message, hint=hint)


class FieldError(SpacelangError):
    """A layer field whose value its kind cannot accept or whose expression cannot be computed.

    ``field`` names the field (None when the complaint is about the layer as a whole).
    """

    def __init__(self, field: str | None, message: str, hint: str | None = None):
        self.field = field
        super().__init__(message, hint=hint)


class EvalError(SpacelangError):
    """Arithmetic on a derived expression that fails (division by zero, overflow, a symbol)."""


class WhereError(SpacelangError):
    """A ``--where`` expression or a quantity that does not parse."""


class InfeasibleError(SpacelangError):
    """No arch of the space satisfies a band; the message names it and the space's range."""


class CheckpointError(SpacelangError):
    """A checkpoint or run directory that cannot be used (missing, damaged, another space, locked)."""


class DataError(SpacelangError):
    """A dataset that cannot be loaded or does not fit the space (classes, channels, empty splits)."""


class OptionError(SpacelangError):
    """A command-line option with a value out of range or of the wrong form."""


class CompileError(SpacelangError):
    """A space the PyTorch compiler cannot build (a kind without an op, a supernet beyond memory)."""


class SearchError(SpacelangError):
    """A search or evolution that cannot start or resume (state of another search, bad results)."""


class DistributedError(SpacelangError):
    """The processes of a distributed run disagree (archs, settings) or cannot start."""


class ProfileError(SpacelangError):
    """A latency profile that cannot be used: unreadable, of another space or device, incomplete."""


class OutputError(SpacelangError):
    """An output path that cannot be written (read-only, a file where a folder is needed, too long)."""


__all__ = ["SpacelangError", "SpaceError", "ArchError", "FieldError", "EvalError", "WhereError",
           "InfeasibleError", "CheckpointError", "DataError", "OptionError", "CompileError",
           "SearchError", "OutputError", "DistributedError",
           "ProfileError"]
