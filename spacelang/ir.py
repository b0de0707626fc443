"""The resolved, immutable IR: dimensions, derived expressions and the network skeleton.

Expressions are trees of :class:`Const`, :class:`Ref` (a dimension path) and :class:`Op`;
names have been resolved, so evaluation needs only an ``env`` mapping dimension paths to values.
"""
from __future__ import annotations

from fractions import Fraction

import enum
import math
from typing import Any, Callable, Mapping

import attrs

from .errors import EvalError
from .exprtext import ATOM, literal_precedence, literal_text, render
from .syntax import NO_SPAN, Span

MAX_MAGNITUDE = 1e15


@attrs.frozen
class Const:
    value: Any


@attrs.frozen
class Ref:
    path: str


@attrs.frozen
class Op:
    op: str  # + - * / // % neg min max
    args: tuple


Expr = Const | Ref | Op




def refs(e: Expr) -> set[str]:
    """Dimension paths an expression depends on."""
    if isinstance(e, Ref):
        return {e.path}
    if isinstance(e, Op):
        out: set[str] = set()
        for a in e.args:
            out |= refs(a)
        return out
    return set()


def evaluate(e: Expr, env: Mapping[str, Any]) -> Any:
    """Evaluate with plain arithmetic (never Python eval); raises EvalError on bad arithmetic."""
    if isinstance(e, Const):
        return e.value
    if isinstance(e, Ref):
        return env[e.path]
    vals = [evaluate(a, env) for a in e.args]
    for v in vals:
        if isinstance(v, (bool, str)):
            raise EvalError(f"cannot compute with {v!r} ({type(v).__name__})")
    op = e.op
    if op == "neg":
        r = -vals[0]
    elif op == "min":
        r = min(vals)
    elif op == "max":
        r = max(vals)
    else:
        a, b = vals
        if op == "+":
            r = a + b
        elif op == "-":
            r = a - b
        elif op == "*":
            r = a * b
        elif op in ("/", "//", "%"):
            if b == 0:
                raise EvalError(f"division by zero ({a} {op} 0)")
            r = a / b if op == "/" else (a // b if op == "//" else a % b)
        else:  # pragma: no cover - the parser produces no other operators
            raise EvalError(f"unknown operator {op}")
    if isinstance(r, float) and (math.isnan(r) or abs(r) > MAX_MAGNITUDE) or isinstance(r, int) and abs(r) > MAX_MAGNITUDE:
        raise EvalError(f"value {r} is out of range")
    return r


def expr_view(prefix: str = "") -> Callable[[Expr], tuple]:
    """How :func:`spacelang.exprtext.render` reads an IR expression; paths under ``prefix`` (a
    layer's own fields) are shown by their field name."""
    def view(e: Expr) -> tuple:
        if isinstance(e, Const):
            return ("atom", literal_text(e.value), literal_precedence(e.value))
        if isinstance(e, Ref):
            return ("atom", e.path[len(prefix):] if prefix and e.path.startswith(prefix) else e.path, ATOM)
        if e.op in ("min", "max"):
            return ("call", e.op, e.args)
        if e.op == "neg":
            return ("neg", e.args[0])
        return ("bin", e.op, e.args[0], e.args[1])
    return view


def show(e: Expr, prefix: str = "") -> str:
    """An expression as the language writes it (for messages, docs and the diff)."""
    return render(e, expr_view(prefix))


class _StrEnum(str, enum.Enum):
    """A string enum that prints, formats and serialises as its value."""

    __str__ = str.__str__
    __format__ = str.__format__


class Origin(_StrEnum):
    """What a dimension is: a layer field, a ``let``, a stage width, a stage depth, an optional
    block's presence gate, or the input resolution."""

    FIELD = "field"
    LET = "let"
    DIM = "dim"
    DEPTH = "depth"
    PRESENT = "present"
    RESOLUTION = "resolution"


class Scope(_StrEnum):
    """Where a choice is written, which decides how often it is chosen."""

    SPACE = "space"
    STAGE = "stage"
    BLOCK = "block"


@attrs.frozen
class Dim:
    """One searchable dimension.

    ``path`` is stable and readable (``encoder.dim``, ``encoder.3.heads``, ``s1.1.present``,
    ``input.resolution``); ``choices`` is the tuple of values in canonical (sorted) order;
    ``scope`` is ``space``, ``stage`` or ``block``; ``step`` is the S3 rewriter's γ when known.
    """

    path: str
    choices: tuple
    type: str  # int | float | bool | sym | num
    scope: Scope = attrs.field(converter=Scope)
    span: Span = attrs.field(default=NO_SPAN, eq=False)
    step: int | float | None = None
    stage: str | None = None
    block: int | None = None
    field: str = ""
    origin: Origin = attrs.field(default=Origin.FIELD, converter=Origin)
    choice_spans: tuple = attrs.field(default=(), eq=False, repr=False)

    @property
    def size(self) -> int:
        return len(self.choices)

    @property
    def lo(self):
        return self.choices[0]

    @property
    def hi(self):
        return self.choices[-1]


@attrs.frozen
class LayerIR:
    """A stem, transition, block slot or head: its kind and its fields as expressions."""

    role: str
    kind: str
    fields: Mapping[str, Expr]
    span: Span = attrs.field(default=NO_SPAN, eq=False)
    kind_span: Span = attrs.field(default=NO_SPAN, eq=False)
    field_spans: Mapping[str, Span] = attrs.field(factory=dict, eq=False)
    index: int = 0
    optional: bool = False
    present: str | None = None  # the `STAGE.I.present` path of an optional block


@attrs.frozen
class StageIR:
    name: str
    dim: Expr
    depth: Expr | None  # Ref to the STAGE.depth dimension, a Const, or None (all blocks)
    transition: LayerIR | None
    blocks: tuple
    span: Span = attrs.field(default=NO_SPAN, eq=False)
    dim_span: Span = attrs.field(default=NO_SPAN, eq=False)
    depth_span: Span = attrs.field(default=NO_SPAN, eq=False)


@attrs.frozen
class ConstraintIR:
    metric: str
    op: str
    bound: int | Fraction  # exact: parsed by spacelang.util.quantity
    text: str
    span: Span = attrs.field(default=NO_SPAN, eq=False)

    def holds(self, value: float) -> bool:
        return {"<=": value <= self.bound, ">=": value >= self.bound,
                "<": value < self.bound, ">": value > self.bound}[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.text}"
