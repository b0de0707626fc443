"""Minimal, comment-preserving edits of ``.space`` text: replace choice sets in place.

The rewriter never reprints the file.  Each edit replaces the text of one choice set or range,
found by its source span, and everything else — comments, blank lines, spacing, order, the
``step`` annotation — stays byte-identical, so ``git diff`` of two evolved spaces shows only the
lines whose choices moved.  The author's form is kept when possible:

* a choice set stays a choice set and keeps its inner spacing and separators
  (``{7, 14}`` → ``{14, 21}``, ``{ 2,3 }`` → ``{ 3,4 }``);
* a range stays a range while the new values are still evenly spaced by its step
  (``3..4`` → ``4..5``, ``192..240 step 24`` → ``256..304 step 24``), and otherwise becomes a
  choice set, keeping an explicit ``step`` as the set's γ annotation (``2..4 step 2`` →
  ``{4} step 2``);
* numbers keep their style: a float dimension written ``{3, 3.5, 4}`` gets ``{3.5, 4, 4.5}``.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import attrs

from .. import syntax as S


def value_nodes(tree: S.SpaceFile) -> dict[tuple[int, int], S.Choice | S.Range]:
    """Every choice set and range of a syntax tree, keyed by its span's (start, end) offsets."""
    out: dict[tuple[int, int], S.Choice | S.Range] = {}

    def walk(node: Any) -> None:
        if isinstance(node, (S.Choice, S.Range)):
            out[(node.span.start, node.span.end)] = node
            return
        if isinstance(node, tuple):
            for x in node:
                walk(x)
        elif attrs.has(type(node)):
            for f in attrs.fields(type(node)):
                if f.name not in ("span", "comments", "source", "filename"):
                    walk(getattr(node, f.name))

    walk(tree)
    return out


def _int_style(source: str, literals: Iterable[S.Num]) -> bool:
    """Whether the author writes integral values of this set without a decimal point."""
    for lit in literals:
        if float(lit.value).is_integer():
            return "." not in source[lit.span.start:lit.span.end]
    return True


def format_number(v: int | float, int_style: bool = True) -> str:
    """A number as the grammar reads it back: ints bare, floats shortest (``3.5``, ``4``)."""
    if isinstance(v, bool):
        raise TypeError("booleans are not rewritten")
    if isinstance(v, int):
        return str(v)
    v = round(v, 10)
    if v.is_integer():
        return str(int(v)) if int_style else f"{v:.1f}"
    r = repr(v)
    return r


def is_progression(values: Sequence[float], step: float) -> bool:
    """Sorted ``values`` (two or more) are exactly ``lo, lo+step, …``."""
    if len(values) < 2 or step <= 0:
        return False
    return all(math.isclose(b - a, step, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(values, values[1:]))


def implied_gamma(values: Sequence[float], explicit_step: float | None, default: float | None,
                  range_form: bool) -> float | None:
    """The evolution step γ that the written form implies (see docs/s3-evolve.md)."""
    if explicit_step is not None:
        return explicit_step
    if default is not None:
        return default
    if range_form:
        return 1
    gaps = [b - a for a, b in zip(values, values[1:])]
    return min(gaps) if gaps else None


@attrs.frozen
class Edit:
    """Replace the choice set or range at ``key`` (its span offsets) with ``values``.

    ``gamma``: the step the values moved by; when the new form would no longer imply it (a range
    whose implied step was its spacing turned into a set, a set whose smallest gap changed) a
    ``step γ`` annotation is added so that the next iteration moves by the same step.
    ``default_gamma``: the S3 default step for the field (None when it has none).
    """

    key: tuple
    values: tuple
    gamma: float | None = None
    default_gamma: float | None = None


def _needs_annotation(values: Sequence[float], edit: Edit) -> bool:
    if edit.gamma is None:
        return False
    implied = implied_gamma(values, None, edit.default_gamma, False)
    return implied is None or not math.isclose(implied, edit.gamma, rel_tol=1e-9, abs_tol=1e-9)


def _closing_brace(source: str, pos: int) -> int:
    """Offset of the ``}`` closing a choice set whose last literal ends at ``pos`` (comments skipped)."""
    while True:
        c = source[pos]
        if c == "}":
            return pos
        if c == "#":
            pos = source.index("\n", pos)
        pos += 1


def _removed(region: str) -> str:
    """What is left of the text of dropped literals and their commas: nothing, or the comments it held.

    Between the braces of a numeric set there are only numbers, commas, spaces and comments, so a
    line's code part is dropped whole and its comment (which runs to the end of the line) kept.
    """
    if "#" not in region:
        return ""
    out = []
    for line in region.split("\n"):
        if "#" in line:
            code, comment = line.split("#", 1)
            out.append(" " * (len(code) - len(code.rstrip())) + "#" + comment if code.strip() else code + "#" + comment)
        else:
            out.append("")
    return "\n".join(out)


def render(source: str, node: S.Choice | S.Range, edit: Edit) -> tuple[int, int, str]:
    """The (start, end, text) replacing ``node``'s text so that it reads ``edit.values``."""
    values = sorted(edit.values)
    if not values:
        raise ValueError("a choice set cannot be empty")
    if isinstance(node, S.Choice):
        nums = [i for i in node.items if isinstance(i, S.Num)]
        if len(nums) != len(node.items):
            raise ValueError("only numeric choice sets are rewritten")
        style = _int_style(source, nums)
        items = node.items
        if len(values) > len(items):
            raise ValueError("an evolved choice set never grows")
        close = _closing_brace(source, items[-1].span.end)
        # each kept value takes the place of an old literal, so separators, line breaks and comments
        # between the braces stay as written; literals beyond the new count go with their commas
        parts = [source[node.span.start:items[0].span.start]]
        for i, v in enumerate(values):
            parts.append(format_number(v, style))
            if i + 1 < len(values):
                parts.append(source[items[i].span.end:items[i + 1].span.start])
        parts.append(_removed(source[items[len(values) - 1].span.end:items[-1].span.end]))
        parts.append(source[items[-1].span.end:close + 1])
        text = "".join(parts)
        step = node.step.value if node.step is not None else None
        if step is None and _needs_annotation(values, edit):
            text += " step " + format_number(edit.gamma, style)
        return node.span.start, close + 1, text
    # a range
    style = _int_style(source, [node.lo, node.hi])
    step = node.step.value if node.step is not None else None
    spacing = step if step is not None else 1
    if is_progression(values, spacing):
        return node.lo.span.start, node.hi.span.end, \
            f"{format_number(values[0], style)}..{format_number(values[-1], style)}"
    text = "{" + ", ".join(format_number(v, style) for v in values) + "}"
    if step is None and _needs_annotation(values, edit):
        text += " step " + format_number(edit.gamma, style)
    # an explicit step stays after the braces, now as the set's γ annotation
    return node.lo.span.start, node.hi.span.end, text


def rewrite(source: str, tree: S.SpaceFile, edits: Iterable[Edit]) -> str:
    """``source`` with every edit applied; text outside the edited spans is untouched."""
    nodes = value_nodes(tree)
    pieces = []
    for e in edits:
        if e.key not in nodes:
            raise KeyError(f"no choice set or range at offsets {e.key}")
        pieces.append(render(source, nodes[e.key], e))
    pieces.sort()
    for (_, e1, _), (s2, _, _) in zip(pieces, pieces[1:]):
        if s2 < e1:
            raise ValueError("overlapping edits")
    out = source
    for start, end, text in reversed(pieces):
        out = out[:start] + text + out[end:]
    return out


def render_values(values: Sequence, int_style: bool = True) -> str:
    """``{a, b, c}`` for reports."""
    return "{" + ", ".join(format_number(v, int_style) if not isinstance(v, (bool, str)) else str(v)
                           for v in values) + "}"


__all__ = ["Edit", "value_nodes", "render", "rewrite", "format_number", "is_progression", "implied_gamma",
           "render_values"]
