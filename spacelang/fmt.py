"""The canonical formatter: syntax tree → one layout, every comment kept, and proved safe.

``format_source(text, filename)`` parses the text, prints the tree in the canonical layout
(docs/language.md, "Canonical layout") and then *proves* the result before returning it: the
output re-parses to an equal syntax tree (spans ignored), carries the same comment texts in the
same order, and formats to itself.  If any proof fails the formatter refuses with an
internal-error diagnostic instead of returning text that could lose meaning or comments.

Comments are attached to syntax nodes before printing:

* an end-of-line comment belongs to the node that ends last on its line before it (the
  outermost one on a tie), and is printed at the end of that node's last line;
* an end-of-line comment after an opening ``{`` (with nothing of the body before it on that
  line) stays on the opening line;
* any other comment is printed on its own line before the next node of the innermost body that
  contains it, or before the closing ``}`` (or at the end of the file) when nothing follows.
"""
from __future__ import annotations

import bisect
import re
from typing import Iterable

import attrs

from . import syntax as S
from .diagnostics import SpaceError, error
from .exprtext import ATOM, NEG, render
from .parser import MAX_LINE_CHARS, parse

#: Longest line (indentation included, end-of-line comment excluded) a block may take when its
#: fields are printed on one line.
WIDTH = 100
INDENT = "  "


# ---------------------------------------------------------------------------- values

def fmt_num(v: int | float) -> str:
    """An int as an int, a float by ``repr`` (round-trips exactly)."""
    return repr(float(v)) if isinstance(v, float) else str(int(v))


def _view(e) -> tuple:
    """How :func:`spacelang.exprtext.render` reads a syntax-tree expression."""
    if isinstance(e, S.Num):
        neg = e.value < 0 or str(e.value).startswith("-")
        return ("atom", fmt_num(e.value), NEG if neg else ATOM)
    if isinstance(e, S.Bool):
        return ("atom", "true" if e.value else "false", ATOM)
    if isinstance(e, S.Name):
        return ("atom", e.name, ATOM)
    if isinstance(e, S.Call):
        return ("call", e.fn, e.args)
    if isinstance(e, S.Neg):
        return ("neg", e.operand)
    if isinstance(e, S.BinOp):
        return ("bin", e.op, e.left, e.right)
    raise TypeError(f"not an expression: {e!r}")


def fmt_expr(e) -> str:
    """An expression with the fewest parentheses that parse back to the same tree."""
    return render(e, _view)


def fmt_value(v) -> str:
    """A field/let/dim value: choice set, range or expression."""
    if isinstance(v, S.Choice):
        out = "{" + ", ".join(fmt_expr(i) for i in v.items) + "}"
        return out + (f" step {fmt_num(v.step.value)}" if v.step is not None else "")
    if isinstance(v, S.Range):
        out = f"{fmt_num(v.lo.value)}..{fmt_num(v.hi.value)}"
        return out + (f" step {fmt_num(v.step.value)}" if v.step is not None else "")
    return fmt_expr(v)


# ---------------------------------------------------------------------------- a view of the tree

@attrs.define(eq=False)
class _Node:
    """A statement or field with what comment attachment needs: offsets, body, children."""

    obj: object
    start: int
    end: int
    end_line: int
    start_line: int = 0
    children: list | None = None  # body children for containers (None: not a container)
    open: int = -1                # offset of the body's `{`
    open_line: int = 0
    close: int = -1               # offset of the body's `}`
    # attached comments
    lead: list = attrs.field(factory=list)
    trail: S.Comment | None = None
    opening: S.Comment | None = None
    inner: list = attrs.field(factory=list)  # comments before the closing brace


_SKIP = re.compile(r"(?:\s+|#[^\n]*|optional\b)*")


def _brace_after(text: str, pos: int) -> int:
    """Offset of the `{` that opens a body after ``pos`` (skipping blanks, comments, `optional`)."""
    m = _SKIP.match(text, pos)
    i = m.end()
    if i >= len(text) or text[i] != "{":  # pragma: no cover - the parser accepted the text
        raise ValueError(f"no opening brace after offset {pos}")
    return i


class _LineIndex:
    """Offset → 1-based line number, by bisection over the line starts."""

    def __init__(self, text: str):
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col - 1


def _build(file: S.SpaceFile, lines: _LineIndex) -> _Node:
    text = file.source

    def leaf(obj, span) -> _Node:
        return _Node(obj, span.start, span.end, span.end_line, span.line)

    def container(obj, span, after: int, kids: Iterable) -> _Node:
        o = _brace_after(text, after)
        return _Node(obj, span.start, span.end, span.end_line, span.line, list(kids), o, lines.line(o), span.end - 1)

    def fields_node(obj, after: int) -> _Node:
        if not getattr(obj, "has_body", True):
            return leaf(obj, obj.span)
        return container(obj, obj.span, after, (leaf(f, f.span) for f in obj.fields))

    def stage_item(it) -> _Node:
        if isinstance(it, S.Block):
            return fields_node(it, it.kind_span.end)
        if isinstance(it, S.Downsample):
            return fields_node(it, it.kind_span.end)
        if isinstance(it, S.Repeat):
            return container(it, it.span, it.count.span.end,
                             (fields_node(b, b.kind_span.end) for b in it.blocks))
        return leaf(it, it.span)

    def top_item(it) -> _Node:
        if isinstance(it, S.Stage):
            return container(it, it.span, it.name_span.end, (stage_item(i) for i in it.items))
        if isinstance(it, (S.Stem, S.Head)):
            return fields_node(it, it.kind_span.end)
        if isinstance(it, S.Template):
            return fields_node(it, it.kind_span.end)
        return leaf(it, it.span)

    start = text.rfind("space", 0, file.name_span.start)
    header = _Node("header", start, file.name_span.end, file.name_span.end_line, lines.line(start))
    kids = [header] + [top_item(i) for i in file.items]
    return _Node(file, 0, len(text), lines.line(len(text)), 1, kids, -1, 0, len(text))


def _walk(n: _Node):
    yield n
    for c in n.children or ():
        yield from _walk(c)


def _attach(root: _Node, comments: Iterable[S.Comment], lines: _LineIndex) -> list[S.Comment]:
    """Attach every comment to a node; returns the comments left for the end of the file."""
    nodes = [n for n in _walk(root) if n is not root]
    by_end_line: dict[int, list[_Node]] = {}
    for n in nodes:
        by_end_line.setdefault(n.end_line, []).append(n)
    containers = [n for n in nodes if n.children is not None]
    file_trailing: list[S.Comment] = []
    for c in comments:
        p = lines.offset(c.line, c.col)
        if not c.own_line:
            ends = [n for n in by_end_line.get(c.line, ()) if n.end <= p]
            if ends:
                best = max(ends, key=lambda n: (n.end, n.end - n.start))
                best.trail = c
                continue
            opens = [n for n in containers if n.open_line == c.line and n.open < p
                     and all(k.start > p for k in n.children)]
            if opens:
                max(opens, key=lambda n: n.open).opening = c
                continue
        where, node = _descend(root, p)
        if where == "lead":
            node.lead.append(c)
        elif node is root:
            file_trailing.append(c)
        else:
            node.inner.append(c)
    return file_trailing


def _descend(node: _Node, p: int):
    for ch in node.children:
        if ch.start <= p < ch.end:
            if ch.children is not None and ch.open < p < ch.close:
                return _descend(ch, p)
            return "lead", ch
        if ch.start > p:
            return "lead", ch
    return "inner", node


# ---------------------------------------------------------------------------- printing

@attrs.define
class _Line:
    indent: int
    code: str | None          # None: a blank line
    comment: str | None = None
    full_comment: bool = False  # the line is a comment on its own

    def width(self) -> int:
        return len(INDENT) * self.indent + len(self.code or "")


def _has_comments(n: _Node) -> bool:
    """Comments inside a node's body (which force its body onto several lines)."""
    if n.opening is not None or n.inner:
        return True
    return any(k.lead or k.trail is not None or _has_comments(k) for k in n.children or ())


class _Printer:
    def __init__(self, text: str):
        self.text = text
        self.lines: list[_Line] = []

    # -- helpers
    def body(self, kids: list[_Node], indent: int, inner: list[S.Comment], align: bool) -> None:
        """Children of a body, one per line, with their leading comments and kept blank lines."""
        prev_end = None
        # which children start a new alignment run: a blank line or a comment line before them
        items = []
        for k in kids:
            first_line = min([c.line for c in k.lead] + [k.start_line])
            blank = prev_end is not None and first_line > prev_end + 1
            items.append((k, blank))
            prev_end = self._last_line(k)
        pads = self._pads(items, align, indent)
        prev_end = None
        for (k, blank), pad in zip(items, pads):
            if blank:
                self.lines.append(_Line(indent, None))
            last = None
            for c in k.lead:
                if last is not None and c.line > last + 1:
                    self.lines.append(_Line(indent, None))
                self.lines.append(_Line(indent, c.text, full_comment=True))
                last = c.line
            if last is not None and k.start_line > last + 1:
                self.lines.append(_Line(indent, None))
            self.node(k, indent, pad)
            prev_end = self._last_line(k)
        for c in inner:
            if prev_end is not None and c.line > prev_end + 1:
                self.lines.append(_Line(indent, None))
            self.lines.append(_Line(indent, c.text, full_comment=True))
            prev_end = c.line

    def _last_line(self, k: _Node) -> int:
        return k.end_line

    def _align_key(self, k: _Node, indent: int):
        o = k.obj
        if isinstance(o, S.Field):
            return "field", o.name
        if isinstance(o, S.Let):
            return "let", o.name
        if isinstance(o, S.DimDecl):
            return "dimdepth", "dim"
        if isinstance(o, S.DepthDecl):
            return "dimdepth", "depth"
        if isinstance(o, S.Block) and o.has_body:
            head = self.layer_head(o)
            if self.one_line_fields(k, indent, head) is not None:
                return "block", head
        return None, None

    def _pads(self, items, align: bool, indent: int) -> list[int]:
        """Key widths: consecutive fields, lets, dim/depth statements or one-line blocks align
        what follows their key (a run ends at a blank line, a comment line or another statement)."""
        pads = [0] * len(items)
        run: list[int] = []

        def flush():
            width = max(len(keys[i][1]) for i in run) if run else 0
            for i in run:
                pads[i] = width
            run.clear()

        keys = [self._align_key(k, indent) for k, _ in items]
        cls_prev = None
        for i, (k, blank) in enumerate(items):
            cls, key = keys[i]
            if cls is None or not align or blank or k.lead or cls != cls_prev:
                flush()
            if cls is not None and align:
                run.append(i)
            cls_prev = cls
        flush()
        return pads

    # -- nodes
    def node(self, n: _Node, indent: int, pad: int = 0) -> None:
        o = n.obj
        trail = n.trail.text if n.trail is not None else None
        if isinstance(o, str):  # the `space NAME` header
            self.lines.append(_Line(indent, f"space {self.file.name}", trail))
        elif isinstance(o, S.Field):
            self.lines.append(_Line(indent, f"{o.name.ljust(pad)} {fmt_value(o.value)}", trail))
        elif isinstance(o, S.Let):
            self.lines.append(_Line(indent, f"let {o.name.ljust(pad)} = {fmt_value(o.value)}", trail))
        elif isinstance(o, S.DimDecl):
            self.lines.append(_Line(indent, f"{'dim'.ljust(pad)} {fmt_value(o.value)}", trail))
        elif isinstance(o, S.DepthDecl):
            self.lines.append(_Line(indent, f"{'depth'.ljust(pad)} {fmt_value(o.value)}", trail))
        elif isinstance(o, S.Input):
            self.lines.append(_Line(indent, f"input image {fmt_value(o.resolution)} channels {fmt_num(o.channels.value)}", trail))
        elif isinstance(o, S.Classes):
            self.lines.append(_Line(indent, f"classes {fmt_num(o.count.value)}", trail))
        elif isinstance(o, S.Constraint):
            self.lines.append(_Line(indent, f"constraint {o.metric} {o.op} {o.text}", trail))
        elif isinstance(o, S.Stage):
            self.open_close(n, indent, f"stage {o.name}", align=True)
        elif isinstance(o, S.Repeat):
            head = f"repeat {fmt_num(o.count.value)}"
            one = self.one_line_repeat(n, indent, head)
            if one is not None:
                self.lines.append(_Line(indent, one, trail))
            else:
                self.open_close(n, indent, head, align=True)
        elif isinstance(o, (S.Block, S.Downsample, S.Stem, S.Head, S.Template)):
            head = self.layer_head(o)
            if not getattr(o, "has_body", True):
                self.lines.append(_Line(indent, head, trail))
                return
            one = self.one_line_fields(n, indent, head, pad)
            if one is not None:
                self.lines.append(_Line(indent, one, trail))
            else:
                self.open_close(n, indent, head, align=True)
        else:  # pragma: no cover
            raise TypeError(f"cannot print {o!r}")

    @staticmethod
    def layer_head(o) -> str:
        if isinstance(o, S.Block):
            return f"block {o.kind}" + (" optional" if o.optional else "")
        if isinstance(o, S.Downsample):
            return f"downsample {o.kind}"
        if isinstance(o, S.Stem):
            return f"stem {o.kind}"
        if isinstance(o, S.Head):
            return f"head {o.kind}"
        return f"template {o.name} {o.kind}"

    def one_line_fields(self, n: _Node, indent: int, head: str, pad: int = 0) -> str | None:
        """``head { a 1  b 2 }`` when no comment is inside and it fits; else None.

        Whether it fits is decided before ``pad`` (header alignment) is applied."""
        if _has_comments(n):
            return None
        fields = "  ".join(f"{k.obj.name} {fmt_value(k.obj.value)}" for k in n.children)
        line = f"{head} {{ {fields} }}" if fields else f"{head} {{}}"
        if len(INDENT) * indent + len(line) > WIDTH:
            return None
        return head.ljust(pad) + line[len(head):]

    def one_line_repeat(self, n: _Node, indent: int, head: str) -> str | None:
        if len(n.children) != 1 or _has_comments(n):
            return None
        b = n.children[0]
        inner = self.layer_head(b.obj) if not b.obj.has_body else self.one_line_fields(b, indent, self.layer_head(b.obj))
        if inner is None:
            return None
        line = f"{head} {{ {inner} }}"
        return line if len(INDENT) * indent + len(line) <= WIDTH else None

    def open_close(self, n: _Node, indent: int, head: str, align: bool) -> None:
        self.lines.append(_Line(indent, head + " {", n.opening.text if n.opening else None))
        self.body(n.children, indent + 1, n.inner, align)
        self.lines.append(_Line(indent, "}", n.trail.text if n.trail is not None else None))

    # -- the file
    def file_(self, file: S.SpaceFile) -> str:
        self.file = file
        lines = _LineIndex(self.text)
        root = _build(file, lines)
        trailing = _attach(root, file.comments, lines)
        self.body(root.children, 0, trailing, align=True)
        return _render(self.lines)


def _render(lines: list[_Line]) -> str:
    """Lines → text.  End-of-line comments of a paragraph (lines between blank lines) start in
    one column: two spaces after the longest code line of the paragraph that carries one."""
    cols = [0] * len(lines)
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and lines[j].code is not None:
            j += 1
        commented = [k for k in range(i, j) if lines[k].comment is not None]
        if commented:
            col = max(lines[k].width() for k in commented) + 2
            for k in commented:
                cols[k] = col
        i = j + 1
    out = []
    for ln, col in zip(lines, cols):
        if ln.code is None:
            out.append("")
            continue
        s = INDENT * ln.indent + ln.code
        if ln.comment is not None:
            s = s.ljust(col) + ln.comment
        out.append(s)
    # at most one blank line anywhere, none at the start or the end
    text, blank = [], False
    for s in out:
        if s == "":
            blank = bool(text)
            continue
        if blank:
            text.append("")
            blank = False
        text.append(s)
    return "\n".join(text) + "\n"


# ---------------------------------------------------------------------------- public API

def print_tree(file: S.SpaceFile) -> str:
    """The canonical text of a parsed file (no safety proof; see :func:`format_source`)."""
    return _Printer(file.source).file_(file)


def format_source(text: str, filename: str = "<string>") -> str:
    """Canonical text of a ``.space`` source, proved to keep its tree, comments and to be stable.

    Raises :class:`~spacelang.diagnostics.SpaceError` with the syntax errors of an unparsable
    text, or with an internal-error diagnostic when a proof fails (then nothing should be written).
    """
    tree = parse(text, filename)
    out = print_tree(tree)
    for no, line in enumerate(out.split("\n"), 1):
        if len(line) > MAX_LINE_CHARS:
            raise SpaceError([error(filename, None, f"formatting would put {len(line):,} characters on line {no} "
                                    f"(the limit is {MAX_LINE_CHARS:,}); the file was left unchanged",
                                    "use a range with a step, or split the value into named `let` parameters")])

    def refuse(why: str):
        raise SpaceError([error(filename, None, f"internal error: the formatter {why}; the file was left unchanged",
                                "please report this with the file attached")])
    try:
        again = parse(out, filename)
    except SpaceError:
        refuse("produced text that does not parse")
    if again != tree:
        refuse("would change the meaning of the file (its syntax tree differs)")
    if [c.text for c in again.comments] != [c.text for c in tree.comments]:
        refuse("would lose, reorder or alter comments")
    if print_tree(again) != out:
        refuse("is not stable on this file (formatting twice gives different text)")
    return out
