"""Text → syntax tree.  Hostile input (binary, bad UTF-8, absurd sizes, deep nesting) is refused
with one clean diagnostic before Lark sees it; syntax errors become diagnostics with the
expected tokens as a hint.  Nothing is ever evaluated."""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import attrs
import lark
from lark import Token, Transformer, v_args

from . import syntax as S
from .diagnostics import Diagnostic, SpaceError, error
from .errors import WhereError
from .util.quantity import exact_number, parse_bound

MAX_FILE_BYTES = 256 << 10    # a real space is a few KB; refuse beyond 256 KiB (worst-case parse ~2 s)
MAX_LINE_CHARS = 10_000
MAX_NESTING = 64              # brackets/braces/parentheses
MAX_TREE_DEPTH = 200          # syntax tree depth (operator chains nest without brackets)
MAX_INT_DIGITS = 15
MAX_SYNTAX_ERRORS = 10


@lru_cache(maxsize=1)
def _lark() -> lark.Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    # cache=True stores the LALR tables in the temp dir keyed by the grammar's hash: building them
    # costs ~70 ms, loading them ~5 ms, and `check` must answer instantly
    return lark.Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False, cache=True)


def _span_of(x) -> S.Span:
    if isinstance(x, Token):
        return S.Span(x.line, x.column, x.end_line, x.end_column, x.start_pos, x.end_pos)
    m = x.meta if hasattr(x, "meta") else x
    if getattr(m, "empty", True):
        return S.NO_SPAN
    return S.Span(m.line, m.column, m.end_line, m.end_column, m.start_pos, m.end_pos)


def read_source(path: str) -> str:
    """Read a .space file, refusing what is not a reasonable text file (raises SpaceError)."""
    def fail(msg, hint=None):
        raise SpaceError([error(path, None, msg, hint)])
    try:
        if os.path.isdir(path):
            fail("is a directory, not a .space file", "pass the .space files inside it, e.g. DIR/*.space")
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            fail(f"file is {size:,} bytes; a .space file is limited to {MAX_FILE_BYTES:,}",
                 "is this really a search space?")
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        fail("no such file")
    except PermissionError:
        fail("permission denied")
    except IsADirectoryError:
        fail("is a directory, not a .space file")
    except OSError as e:
        fail(f"cannot read: {e.strerror or e}")
    return decode_source(data, path)


def decode_source(data: bytes, filename: str) -> str:
    if b"\0" in data[:8192]:
        raise SpaceError([error(filename, None, "binary file (contains NUL bytes), not .space text")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise SpaceError([error(filename, None,
                                f"not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}, line {line})",
                                "save the file as UTF-8")]) from None


def _precheck(text: str, filename: str) -> None:
    """Refuse sizes that would make lexing/parsing/evaluation slow or deep, in linear time."""
    if len(text) > MAX_FILE_BYTES:
        raise SpaceError([error(filename, None, f"text is {len(text):,} characters; the limit is {MAX_FILE_BYTES:,}")])
    line_no, start = 1, 0
    depth, deepest_at = 0, None
    for i, ch in enumerate(text):
        if ch == "\n":
            if i - start > MAX_LINE_CHARS:
                sp = S.Span(line_no, 1, line_no, 2, start, start + 1)
                raise SpaceError([error(filename, sp,
                                        f"line {line_no} is {i - start:,} characters long (limit {MAX_LINE_CHARS:,})",
                                        "a .space statement fits on a line; is this a .space file?")], text)
            line_no, start = line_no + 1, i + 1
        elif ch in "({[":
            depth += 1
            if depth > MAX_NESTING and deepest_at is None:
                deepest_at = S.Span(line_no, i - start + 1, line_no, i - start + 2, i, i + 1)
        elif ch in ")}]":
            depth -= 1
    if len(text) - start > MAX_LINE_CHARS:
        sp = S.Span(line_no, 1, line_no, 2, start, start + 1)
        raise SpaceError([error(filename, sp,
                                f"line {line_no} is {len(text) - start:,} characters long (limit {MAX_LINE_CHARS:,})",
                                "a .space statement fits on a line; is this a .space file?")], text)
    if deepest_at is not None:
        raise SpaceError([error(filename, deepest_at, f"brackets nested more than {MAX_NESTING} deep",
                                "split the expression into named `let` parameters")], text)


_TOKEN_NAMES = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "QUANTITY": "a quantity like 9M",
    "DURATION": "a time like 20ms",
    "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "EQUAL": "'='",
    "TRUE": "'true'", "FALSE": "'false'", "MIN": "'min'", "MAX": "'max'", "METRIC": "'params', 'flops' or 'latency'",
    "CMP": "a comparison (<=, >=, <, >)", "OPTIONAL": "'optional'", "NEG": "'-'", "PLUS": "'+'", "STAR": "'*'",
    "SLASH": "'/'", "DSLASH": "'//'", "PERCENT": "'%'", "$END": "the end of the file",
}


def _describe(terminal: str) -> str:
    if terminal in _TOKEN_NAMES:
        return _TOKEN_NAMES[terminal]
    try:
        pat = _lark().get_terminal(terminal).pattern
        if isinstance(pat, lark.lexer.PatternStr):
            return f"'{pat.value}'"
    except KeyError:
        pass
    return terminal.lower()


def _expected_hint(expected) -> str | None:
    names = sorted({_describe(t) for t in expected})
    if not names:
        return None
    if len(names) > 8:
        names = names[:8] + ["…"]
    return "expected " + ", ".join(names)


def parse(text: str, filename: str = "<string>") -> S.SpaceFile:
    """Parse ``.space`` text into a :class:`~spacelang.syntax.SpaceFile` (raises SpaceError)."""
    _precheck(text, filename)
    if not text.strip():
        raise SpaceError([error(filename, None, "empty file", "a .space file starts with `space NAME`")], text)
    diags: list[Diagnostic] = []

    def on_error(e: lark.exceptions.UnexpectedInput) -> bool:
        d = _syntax_diag(e, filename, text)
        if not diags or d.span.line != diags[-1].span.line:  # one error per line: no cascades
            diags.append(d)
        if diags[0].message.endswith(_NOT_SPACE):
            return False  # not a .space file at all: one diagnostic says so, no cascade
        return len(diags) < MAX_SYNTAX_ERRORS and isinstance(e, lark.exceptions.UnexpectedToken) \
            and e.token.type != "$END"

    parser = _lark()
    try:
        # comments are ignored by the grammar; collect them through a lexer pass of their own
        tree = parser.parse(text, on_error=on_error)
    except lark.exceptions.UnexpectedInput as e:
        d = _syntax_diag(e, filename, text)
        if not diags or diags[-1].span.line != d.span.line:  # on_error may have reported it
            diags.append(d)
        raise SpaceError(diags, text) from None
    except RecursionError:
        raise SpaceError([error(filename, None, "input nested too deeply")], text) from None
    if diags:
        raise SpaceError(diags, text)
    deep = _too_deep(tree)
    if deep is not None:
        raise SpaceError([error(filename, _span_of(deep), f"expression nested more than {MAX_TREE_DEPTH} levels deep",
                                "split the expression into named `let` parameters")], text)
    try:
        result = _ToAst(filename, text).transform(tree)
    except _AstError as e:
        raise SpaceError([e.diag], text) from None
    except RecursionError:
        raise SpaceError([error(filename, None, "input nested too deeply")], text) from None
    except lark.exceptions.VisitError as e:  # Lark wraps what the transformer raises
        if isinstance(e.orig_exc, _AstError):
            raise SpaceError([e.orig_exc.diag], text) from None
        raise
    return attrs.evolve(result, comments=tuple(collect_comments(text)), source=text, filename=filename)


def _too_deep(tree: lark.Tree) -> lark.Tree | None:
    """The first subtree deeper than MAX_TREE_DEPTH (long operator chains, unary minus runs),
    found without recursion; the tree walks after parsing are recursive."""
    stack = [(tree, 1)]
    while stack:
        t, d = stack.pop()
        if d > MAX_TREE_DEPTH:
            return t
        stack.extend((c, d + 1) for c in t.children if isinstance(c, lark.Tree))
    return None


def collect_comments(text: str) -> list[S.Comment]:
    """Every ``#`` comment with its position; ``own_line`` when only whitespace precedes it."""
    out = []
    for tok in _lark().lex(text, dont_ignore=True):
        if tok.type == "COMMENT":
            line_start = text.rfind("\n", 0, tok.start_pos) + 1
            own = text[line_start:tok.start_pos].strip() == ""
            out.append(S.Comment(tok.value.rstrip(), tok.line, tok.column, own))
    return out


def _err_span(e) -> S.Span:
    tok = getattr(e, "token", None)
    if isinstance(tok, Token) and tok.type != "$END" and tok.line is not None:
        return _span_of(tok)
    line, col = getattr(e, "line", 0) or 0, getattr(e, "column", 0) or 0
    pos = getattr(e, "pos_in_stream", 0) or 0
    return S.Span(line, col, line, col + 1, pos, pos + 1)


def _syntax_diag(e, filename: str, text: str) -> Diagnostic:
    span = _err_span(e)
    if isinstance(e, lark.exceptions.UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        return error(filename, span, f"unexpected character {ch!r}", _expected_hint(e.allowed or ()))
    if isinstance(e, lark.exceptions.UnexpectedEOF) or getattr(e.token, "type", None) == "$END":
        lines = text.split("\n")
        last = len(lines)
        col = len(lines[-1]) + 1
        return error(filename, S.Span(last, col, last, col + 1, len(text), len(text)),
                     "unexpected end of file", _expected_hint(getattr(e, "expected", ())))
    tok = e.token
    first = re.match(r"(?:\s+|#[^\n]*)*", text).end()  # the first token, after blanks and comments
    if getattr(tok, "start_pos", None) == first and tok.value != "space":
        return error(filename, span, f"unexpected {_describe_token(tok)}{_NOT_SPACE}",
                     "e.g. `space my_space`; this does not look like a .space file")
    hint = _expected_hint(e.expected)
    if tok.value in _TOP_LEVEL and "RBRACE" in (e.expected or ()):
        # a top-level statement inside a body: the body was not closed
        return error(filename, span, f"unexpected {_describe_token(tok)} inside braces: is a `}}` missing before it?", hint)
    return error(filename, span, f"unexpected {_describe_token(tok)}", hint)


_TOP_LEVEL = {"space", "input", "classes", "template", "stem", "stage", "head", "constraint"}


_NOT_SPACE = ": a .space file starts with `space NAME`"


def _describe_token(tok: Token) -> str:
    v = tok.value if len(tok.value) <= 30 else tok.value[:27] + "..."
    return f"{v!r}"


@attrs.frozen
class _Step:
    """A parsed `step N` annotation, until its choice set or range takes it."""

    num: S.Num


class _AstError(Exception):
    def __init__(self, diag):
        self.diag = diag


@v_args(meta=True)
class _ToAst(Transformer):
    """Lark tree → syntax nodes with spans; checks literal sizes."""

    def __init__(self, filename: str, text: str):
        super().__init__()
        self.filename = filename
        self.text = text

    def _int(self, tok: Token) -> int:
        if len(tok.value) > MAX_INT_DIGITS:
            raise _AstError(error(self.filename, _span_of(tok), f"integer {tok.value[:20]}… has {len(tok.value)} digits",
                                  f"integers are limited to {MAX_INT_DIGITS} digits"))
        return int(tok.value)

    def _float(self, tok: Token) -> float:
        if len(tok.value) > 40:
            raise _AstError(error(self.filename, _span_of(tok), "number literal too long"))
        v = float(tok.value)
        if v != v or v in (float("inf"),) or abs(v) > 1e15:
            raise _AstError(error(self.filename, _span_of(tok), f"number {tok.value} is out of range",
                                  "numbers are limited to magnitudes below 1e15"))
        return v

    # values
    def int_lit(self, meta, ch):
        return S.Num(self._int(ch[0]), _span_of(ch[0]))

    def float_lit(self, meta, ch):
        return S.Num(self._float(ch[0]), _span_of(ch[0]))

    def true_lit(self, meta, ch):
        return S.Bool(True, _span_of(ch[0]))

    def false_lit(self, meta, ch):
        return S.Bool(False, _span_of(ch[0]))

    def name(self, meta, ch):
        return S.Name(ch[0].value, _span_of(ch[0]))

    def binop(self, meta, ch):
        return S.BinOp(ch[1].value, ch[0], ch[2], _span_of(meta))

    def neg(self, meta, ch):
        operand = ch[1]
        if isinstance(operand, S.Num):  # fold negative literals
            return S.Num(-operand.value, _span_of(meta))
        return S.Neg(operand, _span_of(meta))

    def call(self, meta, ch):
        return S.Call(ch[0].value, tuple(ch[1:]), _span_of(meta))

    def number(self, meta, ch):
        sign = -1 if ch[0].type == "NEG" else 1
        tok = ch[-1]
        v = self._int(tok) if tok.type == "INT" else self._float(tok)
        return S.Num(sign * v, _span_of(meta))

    def literal(self, meta, ch):
        x = ch[0]
        if isinstance(x, Token):
            if x.type == "TRUE":
                return S.Bool(True, _span_of(x))
            if x.type == "FALSE":
                return S.Bool(False, _span_of(x))
            return S.Name(x.value, _span_of(x))
        return x

    def step(self, meta, ch):
        return _Step(ch[0])

    def choice(self, meta, ch):
        # the step annotation is marked by its rule (a comment may hold a `}`: no text heuristics)
        step = ch[-1].num if isinstance(ch[-1], _Step) else None
        items = tuple(ch[:-1]) if step is not None else tuple(ch)
        return S.Choice(items, step, _span_of(meta))

    def range(self, meta, ch):
        step = ch[2].num if len(ch) > 2 else None
        return S.Range(ch[0], ch[1], step, _span_of(meta))

    # statements
    def field(self, meta, ch):
        return S.Field(ch[0].value, ch[1], _span_of(ch[0]), _span_of(meta))

    def field_block(self, meta, ch):
        return tuple(ch)

    def block_decl(self, meta, ch):
        kind = ch[0]
        optional = any(isinstance(c, Token) and c.type == "OPTIONAL" for c in ch[1:])
        body = [c for c in ch[1:] if isinstance(c, tuple)]
        return S.Block(kind.value, optional, body[0] if body else (), bool(body), _span_of(kind), _span_of(meta))

    def repeat_decl(self, meta, ch):
        return S.Repeat(S.Num(self._int(ch[0]), _span_of(ch[0])), tuple(ch[1:]), _span_of(meta))

    def let_decl(self, meta, ch):
        return S.Let(ch[0].value, ch[1], _span_of(ch[0]), _span_of(meta))

    def downsample_decl(self, meta, ch):
        body = ch[1] if len(ch) > 1 else None
        return S.Downsample(ch[0].value, body or (), body is not None, _span_of(ch[0]), _span_of(meta))

    def dim_decl(self, meta, ch):
        return S.DimDecl(ch[0], _span_of(meta))

    def depth_decl(self, meta, ch):
        return S.DepthDecl(ch[0], _span_of(meta))

    def stage_decl(self, meta, ch):
        return S.Stage(ch[0].value, tuple(ch[1:]), _span_of(ch[0]), _span_of(meta))

    def template_decl(self, meta, ch):
        return S.Template(ch[0].value, ch[1].value, ch[2], _span_of(ch[0]), _span_of(ch[1]), _span_of(meta))

    def stem_decl(self, meta, ch):
        body = ch[1] if len(ch) > 1 else None
        return S.Stem(ch[0].value, body or (), body is not None, _span_of(ch[0]), _span_of(meta))

    def head_decl(self, meta, ch):
        body = ch[1] if len(ch) > 1 else None
        return S.Head(ch[0].value, body or (), body is not None, _span_of(ch[0]), _span_of(meta))

    def input_decl(self, meta, ch):
        return S.Input(ch[0], S.Num(self._int(ch[1]), _span_of(ch[1])), _span_of(meta))

    def classes_decl(self, meta, ch):
        return S.Classes(S.Num(self._int(ch[0]), _span_of(ch[0])), _span_of(meta))

    def quantity(self, meta, ch):
        return ch[0]

    def constraint_decl(self, meta, ch):
        metric, op, q = ch
        text = q.value
        try:
            bound = exact_number(parse_bound(metric.value, text))
        except WhereError as e:
            raise _AstError(error(self.filename, _span_of(q), f"constraint bound {e.message}")) from None
        return S.Constraint(metric.value, op.value, text, bound, _span_of(meta))

    def space_decl(self, meta, ch):
        return ch[0]

    def start(self, meta, ch):
        name = ch[0]
        return S.SpaceFile(name.value, tuple(ch[1:]), (), _span_of(name), _span_of(meta))


