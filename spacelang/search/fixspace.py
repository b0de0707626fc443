"""A fixed ``.space`` file for one arch of a space, optionally with new stage widths and depths.

Auto-scaling (As-ViT §3.4) writes every network it grows as a file that ``spacelang check``,
``compile`` and ``train`` read like any other: the space's own text with every choice set or
range replaced by the arch's value (comments, layout and derived expressions such as
``heads final_heads // 8`` stay), each stage's ``dim`` set to its new width and its ``depth``
set (or added, after the ``dim`` line) to its new depth.  The edits are textual, by source
span, like :mod:`spacelang.search.rewrite`'s; the result is loaded again and must be a space of
exactly one arch.

Dimensions written once but read by several blocks (``block transformer { heads 2..4 }`` in a
stage of depth 3) fix to one value only when the arch gives all of them the same value —
otherwise there is no single text for them and :class:`SearchError` says which.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .. import syntax as S
from ..errors import SearchError
from .rewrite import format_number


def _literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return format_number(v)
    return str(v)


def fixed_source(space, arch: Mapping[str, Any], *, widths: Sequence[int] | None = None,
                 depths: Sequence[int] | None = None, name: str | None = None, header: str = "") -> str:
    """The text of a space holding only ``arch`` (validated), with optional per-stage ``widths``
    and ``depths`` (one per stage, in order), renamed ``name``, with ``header`` comment lines first."""
    arch = space.validate(arch)
    src = space.source
    edits: dict[tuple[int, int], str] = {}
    owner: dict[tuple[int, int], tuple[str, Any]] = {}
    for d in space.dims:
        if d.span.end <= d.span.start:
            raise SearchError(f"{d.path}: no source text to fix (a dimension without a span)")
        key = (d.span.start, d.span.end)
        value = arch.get(d.path, d.lo)  # an inactive dimension shapes nothing; its smallest choice will do
        if key in owner and d.path in arch and owner[key][0] in arch and owner[key][1] != value:
            raise SearchError(f"{d.path} = {value} and {owner[key][0]} = {owner[key][1]} are written once in "
                              f"{space.filename} (line {d.span.line}); a fixed file cannot give them different values")
        if key not in owner or d.path in arch:
            owner[key] = (d.path, value)
            edits[key] = _literal(value)
    stages = [i for i in space.syntax.items if isinstance(i, S.Stage)]
    for new, what in ((widths, "widths"), (depths, "depths")):
        if new is not None and len(new) != len(stages):
            raise SearchError(f"{len(new)} {what} for {len(stages)} stages")
    inserts: list[tuple[int, str]] = []
    for i, st in enumerate(stages):
        dim_decl = next((x for x in st.items if isinstance(x, S.DimDecl)), None)
        depth_decl = next((x for x in st.items if isinstance(x, S.DepthDecl)), None)
        if widths is not None:
            if dim_decl is None:
                raise SearchError(f"stage {st.name} has no `dim` line to set")
            v = dim_decl.value
            edits[(v.span.start, v.span.end)] = str(int(widths[i]))
        if depths is not None:
            if depth_decl is not None:
                v = depth_decl.value
                edits[(v.span.start, v.span.end)] = str(int(depths[i]))
            elif dim_decl is not None:
                line_start = src.rfind("\n", 0, dim_decl.span.start) + 1
                indent = src[line_start:dim_decl.span.start]
                eol = src.find("\n", dim_decl.value.span.end)
                eol = len(src) if eol < 0 else eol
                inserts.append((eol, f"\n{indent}depth {int(depths[i])}"))
            else:
                raise SearchError(f"stage {st.name} has neither `depth` nor `dim` line to place a depth after")
    if name is not None:
        edits[(space.syntax.name_span.start, space.syntax.name_span.end)] = name
    pieces = [(s, e, text) for (s, e), text in edits.items()] + [(p, p, text) for p, text in inserts]
    pieces.sort(key=lambda t: (t[0], t[1]))
    for (_, e0, _), (s1, _, _) in zip(pieces, pieces[1:]):
        if s1 < e0:
            raise SearchError(f"{space.filename}: overlapping edits at offset {s1}; cannot write a fixed file")
    out, pos = [], 0
    for s, e, text in pieces:
        out.append(src[pos:s])
        out.append(text)
        pos = e
    out.append(src[pos:])
    text = "".join(out)
    if header:
        text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + "#\n" + text
    return text


def fixed_space(space, arch: Mapping[str, Any], **kw):
    """:func:`fixed_source` loaded as a :class:`~spacelang.space.Space` (checked: exactly one arch)."""
    from ..space import loads
    text = fixed_source(space, arch, **kw)
    fixed = loads(text, filename=kw.get("name") or space.filename)
    if fixed.size() != 1:
        raise SearchError(f"the fixed file of {space.name} still has {fixed.size()} archs "
                          f"(dimensions left: {', '.join(d.path for d in fixed.dims)})")
    return fixed


__all__ = ["fixed_source", "fixed_space"]
