"""One printer for expressions, with one precedence table, for both trees that hold them.

The formatter prints syntax-tree expressions (:mod:`spacelang.syntax`), the diff and the
messages print IR expressions (:mod:`spacelang.ir`).  Both go through :func:`render` with a
*view* that says what a node is; the printer adds the fewest parentheses that parse back to the
same tree (binary operators are left-associative; unary minus binds tighter than any of them).
"""
from __future__ import annotations

from typing import Any, Callable

#: binding strength of the binary operators; unary minus is :data:`NEG`, atoms :data:`ATOM`
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "%": 2}
NEG = 3
ATOM = 4

# A view maps a node to one of:
#   ("atom", text, precedence)  ("call", fn, args)  ("neg", operand)  ("bin", op, left, right)
View = Callable[[Any], tuple]


def literal_text(v: Any) -> str:
    """A constant as the language writes it: ``true``, ``64``, ``3.5``, ``cls``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def literal_precedence(v: Any) -> int:
    """A negative number prints with a minus: it binds like unary minus."""
    return NEG if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0 else ATOM


def render(e: Any, view: View) -> str:
    """``e`` in the language's syntax with minimal parentheses."""
    def prec(x) -> int:
        v = view(x)
        if v[0] == "atom":
            return v[2]
        if v[0] == "neg":
            return NEG
        if v[0] == "bin":
            return PRECEDENCE[v[1]]
        return ATOM

    def go(x) -> str:
        v = view(x)
        if v[0] == "atom":
            return v[1]
        if v[0] == "call":
            return f"{v[1]}({', '.join(go(a) for a in v[2])})"
        if v[0] == "neg":
            inner = go(v[1])
            return "-" + (f"({inner})" if prec(v[1]) < NEG else inner)
        _, op, left, right = v
        p = PRECEDENCE[op]
        lt, rt = go(left), go(right)
        if prec(left) < p:
            lt = f"({lt})"
        if prec(right) <= p:
            rt = f"({rt})"
        return f"{lt} {op} {rt}"
    return go(e)


__all__ = ["render", "literal_text", "literal_precedence", "PRECEDENCE", "NEG", "ATOM"]
