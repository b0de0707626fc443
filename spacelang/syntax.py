"""The syntax tree of a ``.space`` file: what was written, with source spans.

The parser builds it from Lark's tree; the resolver turns it into the IR; the formatter prints
it back canonically.  Nodes are frozen attrs classes and compare by value *ignoring spans*, so
"formatting kept the tree" is a plain ``==`` between the trees of the two texts.
"""
from __future__ import annotations

from fractions import Fraction

from typing import Union

import attrs


@attrs.frozen(order=True)
class Span:
    """1-based line/column of the first character, and the end (exclusive), plus offsets."""

    line: int
    col: int
    end_line: int
    end_col: int
    start: int
    end: int


NO_SPAN = Span(0, 0, 0, 0, 0, 0)


def _span():
    return attrs.field(default=NO_SPAN, eq=False, repr=False)


# --- values -------------------------------------------------------------------------------

@attrs.frozen
class Num:
    value: int | float
    span: Span = _span()


@attrs.frozen
class Bool:
    value: bool
    span: Span = _span()


@attrs.frozen
class Name:
    """A bare name: a reference in an expression, a symbol literal where the field type says so."""

    name: str
    span: Span = _span()


@attrs.frozen
class BinOp:
    op: str  # + - * / // %
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@attrs.frozen
class Neg:
    operand: "Expr"
    span: Span = _span()


@attrs.frozen
class Call:
    fn: str  # min | max
    args: tuple
    span: Span = _span()


Literal = Union[Num, Bool, Name]
Expr = Union[Num, Bool, Name, BinOp, Neg, Call]  # parentheses follow from precedence


@attrs.frozen
class Choice:
    items: tuple  # of Literal
    step: Num | None = None
    span: Span = _span()


@attrs.frozen
class Range:
    lo: Num
    hi: Num
    step: Num | None = None
    span: Span = _span()


Value = Union[Choice, Range, Expr]


# --- statements -----------------------------------------------------------------------------

@attrs.frozen
class Field:
    name: str
    value: Value
    name_span: Span = _span()
    span: Span = _span()


@attrs.frozen
class Block:
    kind: str
    optional: bool
    fields: tuple  # of Field
    has_body: bool = True
    kind_span: Span = _span()
    span: Span = _span()


@attrs.frozen
class Repeat:
    count: Num
    blocks: tuple  # of Block
    span: Span = _span()


@attrs.frozen
class Let:
    name: str
    value: Value
    name_span: Span = _span()
    span: Span = _span()


@attrs.frozen
class Downsample:
    kind: str
    fields: tuple
    has_body: bool = True
    kind_span: Span = _span()
    span: Span = _span()


@attrs.frozen
class DimDecl:
    value: Value
    span: Span = _span()


@attrs.frozen
class DepthDecl:
    value: Value
    span: Span = _span()


@attrs.frozen
class Stage:
    name: str
    items: tuple  # Downsample | DimDecl | DepthDecl | Let | Block | Repeat
    name_span: Span = _span()
    span: Span = _span()


@attrs.frozen
class Template:
    name: str
    kind: str
    fields: tuple
    name_span: Span = _span()
    kind_span: Span = _span()
    span: Span = _span()


@attrs.frozen
class Stem:
    kind: str
    fields: tuple
    has_body: bool = True
    kind_span: Span = _span()
    span: Span = _span()


@attrs.frozen
class Head:
    kind: str
    fields: tuple
    has_body: bool = True
    kind_span: Span = _span()
    span: Span = _span()


@attrs.frozen
class Input:
    resolution: Value
    channels: Num
    span: Span = _span()


@attrs.frozen
class Classes:
    count: Num
    span: Span = _span()


@attrs.frozen
class Constraint:
    metric: str  # params | flops
    op: str  # <= >= < >
    text: str  # the bound as written (9M)
    bound: int | Fraction  # exact: parsed by spacelang.util.quantity
    span: Span = _span()


@attrs.frozen
class Comment:
    """``# text``; ``own_line`` is False for an end-of-line comment after code."""

    text: str
    line: int
    col: int
    own_line: bool


@attrs.frozen
class SpaceFile:
    name: str
    items: tuple
    comments: tuple = attrs.field(default=(), eq=False)
    name_span: Span = _span()
    span: Span = _span()
    source: str = attrs.field(default="", eq=False, repr=False)
    filename: str = attrs.field(default="<string>", eq=False, repr=False)
