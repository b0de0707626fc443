"""Syntax tree → IR: name resolution, scopes, types, ranges, block expansion.

Scope decides sharing: a choice written in a block field becomes one dimension per block
instance (``STAGE.I.FIELD``); on a stage, one per stage; at space level, one.  Names are looked
up innermost first (the layer's own fields, then the stage's ``dim`` and ``let``s, then the
space's ``let``s); references within a group may come in any order, and cycles among them are
found with networkx and reported.
"""
from __future__ import annotations

from typing import Any, Callable

import attrs
import graphlib

from . import kinds as K
from . import syntax as S
from .diagnostics import Diagnostic
from .ir import ConstraintIR, Const, Dim, Expr, LayerIR, Op, Ref, StageIR

MAX_RANGE_VALUES = 10_000
MAX_BLOCKS_PER_STAGE = 1_000
_OPS = {"+": "+", "-": "-", "*": "*", "/": "/", "//": "//", "%": "%"}


@attrs.define
class Resolved:
    name: str
    resolution: Expr
    channels: int
    classes: int
    stem: LayerIR
    stages: tuple
    head: LayerIR
    constraints: tuple
    dims: dict  # path -> Dim, in source order
    let_paths: set  # paths of dims introduced by `let`


class Diags:
    """Collects diagnostics once each (block instances share spans)."""

    def __init__(self, filename: str):
        self.filename = filename
        self.items: list[Diagnostic] = []
        self._seen: set = set()

    def add(self, span, message: str, hint: str | None = None, severity: str = "error") -> None:
        key = (span.start, span.line, span.col, message)
        if key not in self._seen:
            self._seen.add(key)
            self.items.append(Diagnostic(self.filename, span, message, hint, severity))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]


def _expr_names(e) -> list[S.Name]:
    if isinstance(e, S.Name):
        return [e]
    if isinstance(e, S.BinOp):
        return _expr_names(e.left) + _expr_names(e.right)
    if isinstance(e, S.Neg):
        return _expr_names(e.operand)
    if isinstance(e, S.Call):
        return [n for a in e.args for n in _expr_names(a)]
    return []


def _fmt_num(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)


@attrs.frozen
class Entry:
    """One name of a group being resolved (a field, a ``let``, a stage's width)."""

    value: Any            # its syntax (literal, choice set, range, expression)
    path: str             # the dimension path it becomes if it is a choice
    scope: str            # space | stage | block
    fdef: Any             # the kind's Field, when it is a field
    origin: str           # field | let | dim | ...
    stage: str | None
    block: int | None
    span: Any


@attrs.frozen
class Site:
    """Where a layer is written: its role, its dimension path prefix and scope, and for a block
    its stage, slot, optional flag and presence gate."""

    role: str
    path: str
    scope: str
    stage: str | None = None
    block: int | None = None
    optional: bool = False
    present: str | None = None


@attrs.frozen
class Names:
    """The names visible from a place: how to look one up, and the list (for "did you mean")."""

    lookup: Callable[[str], Any]
    names: list


class Resolver:
    def __init__(self, file: S.SpaceFile):
        self.file = file
        self.d = Diags(file.filename)
        self.dims: dict[str, Dim] = {}
        self.let_paths: set[str] = set()
        self.templates: dict[str, S.Template] = {}

    # ---------------------------------------------------------------- values → dims/exprs
    def _literal_values(self, items, ftype, field, where) -> tuple[list, str] | None:
        """Type-check choice elements; returns (values, type) or None after reporting."""
        ok = True
        values = []
        if ftype is None:  # a let: infer from the elements
            kinds_seen = {type(i) for i in items}
            if kinds_seen <= {S.Num}:
                ftype = "float" if any(isinstance(i.value, float) for i in items) else "int"
            elif kinds_seen <= {S.Bool}:
                ftype = "bool"
            elif kinds_seen <= {S.Name}:
                ftype = "sym"
            else:
                self.d.add(items[0].span, f"choice set {where} mixes numbers, booleans and names",
                           "a dimension's choices all have one type")
                return None
        for it in items:
            if ftype == "int":
                if isinstance(it, S.Num) and isinstance(it.value, int):
                    values.append(it.value)
                    continue
                got = _fmt_num(it.value) if isinstance(it, S.Num) else getattr(it, "name", str(getattr(it, "value", "")).lower())
                self.d.add(it.span, f"{field} takes integers, got {got}", None)
                ok = False
            elif ftype == "float":
                if isinstance(it, S.Num):
                    values.append(float(it.value))
                    continue
                self.d.add(it.span, f"{field} takes numbers, got {getattr(it, 'name', it)}")
                ok = False
            elif ftype == "bool":
                if isinstance(it, S.Bool):
                    values.append(it.value)
                    continue
                self.d.add(it.span, f"{field} takes true or false", None)
                ok = False
            elif ftype == "sym":
                if isinstance(it, S.Name):
                    values.append(it.name)
                    continue
                self.d.add(it.span, f"{field} takes a name, got {_fmt_num(getattr(it, 'value', ''))}")
                ok = False
        return (values, ftype) if ok else None

    def _check_min(self, values, spans, fdef, field) -> bool:
        ok = True
        if fdef is not None and fdef.min is not None:
            for v, sp in zip(values, spans):
                if v < fdef.min:
                    self.d.add(sp, f"{field} must be ≥ {_fmt_num(fdef.min)}, got {_fmt_num(v)}")
                    ok = False
        return ok

    def _check_symbols(self, values, spans, fdef, field) -> bool:
        ok = True
        if fdef is not None and fdef.type == "sym" and fdef.symbols:
            for v, sp in zip(values, spans):
                if v not in fdef.symbols:
                    alt = K.suggest(v, fdef.symbols)
                    self.d.add(sp, f"{field} has no value `{v}`",
                               f"did you mean `{alt}`?" if alt else "one of: " + ", ".join(fdef.symbols))
                    ok = False
        return ok

    def make_dim(self, value, path, scope, fdef, field, origin, stage=None, block=None) -> Expr | None:
        """A Choice or Range becomes a dimension at ``path``; returns Ref(path)."""
        ftype = fdef.type if fdef is not None else None
        if origin in ("dim", "depth", "resolution"):
            ftype = "int"
        if isinstance(value, S.Choice):
            if len(value.items) > MAX_RANGE_VALUES:
                self.d.add(value.span, f"choice set has {len(value.items):,} values (limit {MAX_RANGE_VALUES:,})",
                           "use a range with a step, or fewer values")
                return None
            res = self._literal_values(value.items, ftype, field, f"for {field}")
            if res is None:
                return None
            values, ftype = res
            spans = [i.span for i in value.items]
            seen = {}
            for v, sp in zip(values, spans):
                if v in seen:
                    self.d.add(sp, f"choice {_fmt_num(v)} is listed twice in {field}", "remove the duplicate")
                    return None
                seen[v] = sp
            step = value.step.value if value.step is not None else None
            if step is not None and step <= 0:
                self.d.add(value.step.span, f"step must be positive, got {_fmt_num(step)}")
                return None
        else:  # Range
            lo, hi = value.lo.value, value.hi.value
            is_int = isinstance(lo, int) and isinstance(hi, int) and (value.step is None or isinstance(value.step.value, int))
            if ftype == "int" and not is_int:
                self.d.add(value.span, f"{field} takes integers, got the range {_fmt_num(lo)}..{_fmt_num(hi)}")
                return None
            if ftype in ("bool", "sym"):
                self.d.add(value.span, f"{field} takes {'true or false' if ftype == 'bool' else 'a name'}, not a range")
                return None
            if value.step is None and not is_int:
                self.d.add(value.span, f"the float range {_fmt_num(lo)}..{_fmt_num(hi)} needs a step",
                           f"e.g. `{_fmt_num(lo)}..{_fmt_num(hi)} step 0.5`")
                return None
            step = value.step.value if value.step is not None else 1
            step_span = value.step.span if value.step is not None else value.span
            if step <= 0:
                self.d.add(step_span, f"step must be positive, got {_fmt_num(step)}")
                return None
            if lo > hi:
                self.d.add(value.span, f"empty range {_fmt_num(lo)}..{_fmt_num(hi)}: the low end exceeds the high end",
                           f"write {_fmt_num(hi)}..{_fmt_num(lo)}")
                return None
            count_f = (hi - lo) / step
            count = round(count_f)
            if abs(count_f - count) > 1e-9:
                self.d.add(step_span, f"step {_fmt_num(step)} does not divide the range {_fmt_num(lo)}..{_fmt_num(hi)} "
                           f"({_fmt_num(hi)} - {_fmt_num(lo)} = {_fmt_num(hi - lo)})",
                           f"the range would miss its high end; use a step dividing {_fmt_num(hi - lo)}")
                return None
            if count + 1 > MAX_RANGE_VALUES:
                self.d.add(value.span, f"range has {count + 1:,} values (limit {MAX_RANGE_VALUES:,})",
                           "use a larger step")
                return None
            if is_int and ftype != "float":
                values = [lo + k * step for k in range(count + 1)]
                ftype = ftype or "int"
            else:
                values = [round(lo + k * step, 10) for k in range(count + 1)]
                ftype = "float"
            spans = [value.span] * len(values)
        if not self._check_min(values, spans, fdef, field) or not self._check_symbols(values, spans, fdef, field):
            return None
        if origin == "depth" and values and min(values) < 1:
            self.d.add(value.span, "depth must be at least 1", "a stage runs at least one block")
            return None
        order = sorted(range(len(values)), key=lambda i: values[i])
        dim = Dim(path=path, choices=tuple(values[i] for i in order), type=ftype, scope=scope, span=value.span,
                  step=step, stage=stage, block=block, field=field, origin=origin,
                  choice_spans=tuple(spans[i] for i in order))
        self.dims[path] = dim
        if origin == "let":
            self.let_paths.add(path)
        return Ref(path)

    def expr(self, e, lookup: Callable[[str], Expr | None], fdef, field) -> Expr | None:
        if isinstance(e, S.Num):
            return Const(e.value)
        if isinstance(e, S.Bool):
            return Const(e.value)
        if isinstance(e, S.Name):
            if fdef is not None and fdef.type == "sym":
                return Const(e.name) if self._check_symbols([e.name], [e.span], fdef, field) else None
            r = lookup(e.name)
            if r is None:
                return None
            return r
        if isinstance(e, S.BinOp):
            a, b = self.expr(e.left, lookup, None, field), self.expr(e.right, lookup, None, field)
            return Op(_OPS[e.op], (a, b)) if a is not None and b is not None else None
        if isinstance(e, S.Neg):
            a = self.expr(e.operand, lookup, None, field)
            return Op("neg", (a,)) if a is not None else None
        if isinstance(e, S.Call):
            args = [self.expr(a, lookup, None, field) for a in e.args]
            return Op(e.fn, tuple(args)) if all(a is not None for a in args) else None
        raise AssertionError(e)

    def value(self, v, path, scope, fdef, field, origin, lookup, stage=None, block=None) -> Expr | None:
        if isinstance(v, (S.Choice, S.Range)):
            return self.make_dim(v, path, scope, fdef, field, origin, stage, block)
        if origin == "depth":
            if not (isinstance(v, S.Num) and isinstance(v.value, int)):
                self.d.add(v.span, "depth must be an integer, a choice set or a range",
                           "depth gates blocks, so it cannot be derived")
                return None
            if v.value < 1:
                self.d.add(v.span, "depth must be at least 1")
                return None
        if fdef is not None and fdef.type == "bool" and isinstance(v, S.Name):
            self.d.add(v.span, f"{field} takes true or false, got {v.name}")
            return None
        # a literal of the wrong type is a name/type error: report it now, with the others
        ltype = "int" if origin in ("dim", "resolution") else (fdef.type if fdef is not None else None)
        if ltype is not None and isinstance(v, (S.Num, S.Bool)):
            bad = _literal_type_error(v, ltype, field, fdef)
            if bad is not None:
                self.d.add(v.span, *bad)
                return None
        if fdef is not None and fdef.min is not None and isinstance(v, S.Num) and v.value < fdef.min:
            self.d.add(v.span, f"{field} must be ≥ {_fmt_num(fdef.min)}, got {_fmt_num(v.value)}")
            return None
        return self.expr(v, lookup, fdef, field)

    # ---------------------------------------------------------------- groups of names
    def group(self, entries: dict, outer: Callable[[str], Expr | None], kind_desc: str) -> dict[str, Expr | None]:
        """Resolve a group of mutually visible names (a block's fields, a stage's lets...).

        ``entries``: name -> :class:`Entry`
        Returns name -> Expr (None for entries that failed).
        """
        deps: dict[str, set[str]] = {name: set() for name in entries}
        for name, ent in entries.items():
            v, fdef = ent.value, ent.fdef
            if isinstance(v, (S.Choice, S.Range)) or (fdef is not None and fdef.type == "sym"):
                continue
            for n in _expr_names(v):
                if n.name in entries:
                    deps[name].add(n.name)
        out: dict[str, Expr | None] = {}
        cyclic: set[str] = set()
        try:
            order = list(graphlib.TopologicalSorter(deps).static_order())
        except graphlib.CycleError:
            # rare path: name every cycle (networkx enumerates them), then order the rest
            import networkx as nx
            graph = nx.DiGraph([(a, b) for a, bs in deps.items() for b in bs])
            for cycle in nx.simple_cycles(graph):
                cyclic |= set(cycle)
                first = min(cycle, key=lambda n: entries[n].span.start)
                chain = " → ".join(cycle[cycle.index(first):] + cycle[:cycle.index(first)] + [first])
                self.d.add(entries[first].span, f"derived {kind_desc} form a cycle: {chain}",
                           "one of them must be a literal, a choice set or a range")
            rest = {n: ds - cyclic for n, ds in deps.items() if n not in cyclic}
            order = list(graphlib.TopologicalSorter(rest).static_order())
        for name in cyclic:
            out[name] = None

        def lookup(n: str) -> Expr | None:
            if n in entries:
                return out.get(n)
            return outer(n)

        order = [n for n in order if n in entries and n not in cyclic]
        for name in order:
            e = entries[name]
            out[name] = self.value(e.value, e.path, e.scope, e.fdef, name if e.origin in ("field", "let") else e.origin,
                                   e.origin, lookup, e.stage, e.block)
        return out

    def unknown_name(self, scope_names: list[str]) -> Callable:
        def fail(span, name):
            alt = K.suggest(name, scope_names)
            self.d.add(span, f"unknown name `{name}`",
                       f"did you mean `{alt}`?" if alt else
                       ("names in scope: " + ", ".join(sorted(scope_names)) if scope_names else "nothing is in scope here"))
        return fail

    # ---------------------------------------------------------------- layers
    def layer(self, decl, site: Site, names: Names, kind_name: str | None = None, template_fields=()):
        """Resolve a layer declaration (stem, downsample, block or head) at ``site``.

        ``kind_name`` overrides the declaration's kind (a template's); ``template_fields`` are
        the template's fields, which the declaration's own override."""
        role, kind_name, kind_span = site.role, kind_name or decl.kind, decl.kind_span
        fields_syn, span, path_prefix, scope = decl.fields, decl.span, site.path, site.scope
        outer_lookup, outer_names, stage, block = names.lookup, names.names, site.stage, site.block
        kind = K.get(kind_name)
        if kind is None or role not in kind.roles:
            cands = K.kinds_for(role) + (sorted(self.templates) if role == "block" else [])
            alt = K.suggest(kind_name, cands)
            what = {"stem": "stem", "downsample": "downsample", "block": "block", "head": "head"}[role]
            if kind is not None:
                self.d.add(kind_span, f"`{kind_name}` cannot be used as a {what}",
                           f"{what} kinds: " + ", ".join(K.kinds_for(role)))
            else:
                self.d.add(kind_span, f"unknown {what} kind `{kind_name}`",
                           f"did you mean `{alt}`?" if alt else f"{what} kinds: " + ", ".join(cands))
            return None
        given: dict[str, S.Field] = {}
        for f in list(template_fields) + list(fields_syn):
            given[f.name] = f  # a block's own fields override its template's
        seen: dict[str, S.Field] = {}
        for f in fields_syn:
            if f.name in seen:
                self.d.add(f.name_span, f"field `{f.name}` is given twice", "remove one of them")
            seen[f.name] = f
        ok = True
        for f in given.values():
            if f.name not in kind.fields:
                alt = K.suggest(f.name, kind.fields)
                self.d.add(f.name_span, f"{kind_name} has no field `{f.name}`",
                           f"did you mean `{alt}`?" if alt else "fields: " + ", ".join(kind.fields))
                ok = False
        for fdef in kind.fields.values():
            if fdef.required and fdef.name not in given:
                self.d.add(kind_span, f"{kind_name} needs `{fdef.name}`",
                           f"add `{fdef.name} VALUE` inside the braces")
                ok = False
        entries = {
            f.name: Entry(f.value, f"{path_prefix}.{f.name}", scope, kind.fields[f.name], "field", stage, block, f.name_span)
            for f in given.values() if f.name in kind.fields
        }
        fail = self.unknown_name(list(entries) + outer_names)
        resolved = self._group_with_unknowns(entries, outer_lookup, "fields", fail)
        if not ok or any(v is None for v in resolved.values()):
            return None
        return LayerIR(role=role, kind=kind_name, fields=resolved, span=span, kind_span=kind_span,
                       field_spans={f.name: f.value.span for f in given.values()}, index=block or 0,
                       optional=site.optional, present=site.present)

    def _group_with_unknowns(self, entries, outer, desc, fail):
        """``group`` with unknown names reported at their spans."""
        names_by_entry = {n: _expr_names(e.value) if not isinstance(e.value, (S.Choice, S.Range)) else []
                          for n, e in entries.items()}
        pending = {}
        for lst in names_by_entry.values():
            for nm in lst:
                pending.setdefault(nm.name, nm.span)

        def lookup(name: str):
            r = outer(name)
            if r is _MISSING:
                fail(pending.get(name, S.NO_SPAN), name)
                return None
            return r

        return self.group(entries, lookup, desc)

    # ---------------------------------------------------------------- the file
    def run(self) -> Resolved | None:
        f = self.file
        singles: dict[type, Any] = {}
        lets: list[S.Let] = []
        stages: list[S.Stage] = []
        constraints: list[S.Constraint] = []
        for it in f.items:
            if isinstance(it, (S.Input, S.Classes, S.Stem, S.Head)):
                if type(it) in singles:
                    self.d.add(it.span, f"`{_stmt_name(it)}` is given twice", "keep one")
                    continue
                singles[type(it)] = it
            elif isinstance(it, S.Let):
                lets.append(it)
            elif isinstance(it, S.Template):
                if it.name in self.templates:
                    self.d.add(it.name_span, f"template `{it.name}` is defined twice")
                elif K.get(it.name) is not None:
                    self.d.add(it.name_span, f"template `{it.name}` would hide the kind of the same name",
                               "choose another name")
                else:
                    self.templates[it.name] = it
            elif isinstance(it, S.Stage):
                stages.append(it)
            elif isinstance(it, S.Constraint):
                constraints.append(it)
        for typ, stmt, hint in ((S.Input, "input", "add `input image 224 channels 3`"),
                                (S.Classes, "classes", "add `classes 1000`"),
                                (S.Stem, "stem", "add e.g. `stem patch_embed { patch 16 }`"),
                                (S.Head, "head", "add e.g. `head linear { pool cls }`")):
            if typ not in singles:
                self.d.add(f.name_span, f"the space has no `{stmt}`", hint)
        if not stages:
            self.d.add(f.name_span, "the space has no stage", "add `stage NAME { dim ...  block transformer { ... } }`")

        # names: space lets, stages, templates share one namespace
        taken: dict[str, S.Span] = {}
        for name, sp in [(let.name, let.name_span) for let in lets] + [(s.name, s.name_span) for s in stages] \
                + [(t.name, t.name_span) for t in self.templates.values()]:
            if name in taken:
                self.d.add(sp, f"`{name}` is already defined (line {taken[name].line})", "names must be unique")
            elif name in ("input", "stem", "head"):
                self.d.add(sp, f"`{name}` is reserved for dimension paths", "choose another name")
            else:
                taken[name] = sp

        seen_let = {}
        for let in lets:
            if let.name in seen_let:
                continue
            seen_let[let.name] = let
        space_entries = {n: Entry(let.value, n, "space", None, "let", None, None, let.name_span)
                         for n, let in seen_let.items()}
        space_fail = self.unknown_name(list(space_entries))
        space_env = self._group_with_unknowns(space_entries, lambda n: _MISSING, "parameters", space_fail)

        def space_lookup(n: str):
            if n in space_env:
                return space_env[n]
            return _MISSING

        def space_lookup_or_fail(n, span):
            r = space_lookup(n)
            if r is _MISSING:
                self.unknown_name(list(space_env))(span, n)
                return None
            return r

        res_expr = None
        channels = classes = 0
        if S.Input in singles:
            inp = singles[S.Input]
            res_expr = self.value(inp.resolution, "input.resolution", "space", K.Field("resolution", "int", min=1),
                                  "resolution", "resolution", lambda n: space_lookup_or_fail(n, inp.resolution.span))
            channels = inp.channels.value
            if channels < 1:
                self.d.add(inp.channels.span, "channels must be at least 1")

        if S.Classes in singles:
            classes = singles[S.Classes].count.value
            if classes < 1:
                self.d.add(singles[S.Classes].count.span, "classes must be at least 1")

        stage_irs = []
        stage_dims: list[Expr | None] = []
        for st in stages:
            ir = self.stage(st, space_lookup, list(space_env))
            if ir is not None:
                stage_irs.append(ir)
                stage_dims.append(ir.dim)
        stem = head = None
        if S.Stem in singles and stages:
            s = singles[S.Stem]
            first_dim = stage_dims[0] if stage_dims else None
            stem = self.layer(s, Site("stem", "stem", "space"),
                              Names(_with(space_lookup, {"dim": first_dim}), list(space_env) + ["dim"]))
        if S.Head in singles and stages:
            h = singles[S.Head]
            last_dim = stage_dims[-1] if stage_dims else None
            head = self.layer(h, Site("head", "head", "space"),
                              Names(_with(space_lookup, {"dim": last_dim}), list(space_env) + ["dim"]))
        cons = tuple(ConstraintIR(c.metric, c.op, c.bound, c.text, c.span) for c in constraints)
        for c in constraints:
            if c.bound <= 0 and c.op in ("<=", "<"):
                self.d.add(c.span, f"constraint {c.metric} {c.op} {c.text} admits no network")
        self.d.items.sort(key=lambda d: (d.span.line, d.span.col))
        if self.d.errors or stem is None or head is None or res_expr is None or len(stage_irs) != len(stages):
            return None
        return Resolved(f.name, res_expr, channels, classes, stem, tuple(stage_irs), head, cons, self.dims,
                        self.let_paths)

    def stage(self, st: S.Stage, space_lookup, space_names) -> StageIR | None:
        name = st.name
        dims_decl = [i for i in st.items if isinstance(i, S.DimDecl)]
        depth_decl = [i for i in st.items if isinstance(i, S.DepthDecl)]
        downs = [i for i in st.items if isinstance(i, S.Downsample)]
        lets = [i for i in st.items if isinstance(i, S.Let)]
        for group_, what in ((dims_decl, "dim"), (depth_decl, "depth"), (downs, "downsample")):
            for extra in group_[1:]:
                self.d.add(extra.span, f"stage {name} has more than one `{what}`", "keep one")
        if not dims_decl:
            self.d.add(st.name_span, f"stage {name} has no `dim`", "add e.g. `dim 192` or `dim {192, 240}`")
            return None
        entries = {"dim": Entry(dims_decl[0].value, f"{name}.dim", "stage", None, "dim", name, None, dims_decl[0].span)}
        seen = {}
        for let in lets:
            if let.name in seen:
                self.d.add(let.name_span, f"`{let.name}` is already defined in stage {name} (line {seen[let.name].line})")
                continue
            if let.name in space_names:
                self.d.add(let.name_span, f"`{let.name}` hides the space-level parameter of the same name",
                           "choose another name")
                continue
            seen[let.name] = let.name_span
            entries[let.name] = Entry(let.value, f"{name}.{let.name}", "stage", None, "let", name, None, let.name_span)
        fail = self.unknown_name(list(entries) + list(space_names))
        env = self._group_with_unknowns(entries, space_lookup, "parameters", fail)
        dim_expr = env.get("dim")

        def stage_lookup(n: str):
            if n in env:
                return env[n]
            return space_lookup(n)
        stage_names = list(entries) + list(space_names)

        depth_expr = None
        if depth_decl:
            depth_expr = self.value(depth_decl[0].value, f"{name}.depth", "stage", None, "depth", "depth",
                                    lambda n: None, name)
            if depth_expr is None:
                return None

        failed = dim_expr is None
        transition = None
        if downs:
            dn = downs[0]
            transition = self.layer(dn, Site("downsample", f"{name}.downsample", "stage", stage=name),
                                    Names(stage_lookup, stage_names))
            failed |= transition is None

        expanded: list[S.Block] = []
        for it in st.items:
            if isinstance(it, S.Block):
                expanded.append(it)
            elif isinstance(it, S.Repeat):
                if it.count.value < 1:
                    self.d.add(it.count.span, "repeat count must be at least 1")
                    return None
                if not it.blocks:
                    self.d.add(it.span, "repeat has no blocks", "put `block ...` statements inside")
                    return None
                if it.count.value * len(it.blocks) > MAX_BLOCKS_PER_STAGE:
                    self.d.add(it.count.span, f"repeat makes {it.count.value * len(it.blocks):,} blocks "
                               f"(limit {MAX_BLOCKS_PER_STAGE:,} per stage)")
                    return None
                expanded.extend(list(it.blocks) * it.count.value)
        if not expanded:
            self.d.add(st.name_span, f"stage {name} has no blocks", "add `block transformer { ... }`")
            return None
        if depth_expr is not None:
            max_depth = self.dims[depth_expr.path].hi if isinstance(depth_expr, Ref) else depth_expr.value
            if max_depth > MAX_BLOCKS_PER_STAGE:
                self.d.add(depth_decl[0].span, f"depth {max_depth:,} exceeds {MAX_BLOCKS_PER_STAGE:,} blocks per stage")
                return None
            if len(expanded) == 1:
                expanded = expanded * max_depth
            elif len(expanded) != max_depth:
                self.d.add(depth_decl[0].span, f"stage {name} lists {len(expanded)} blocks but its depth reaches {max_depth}",
                           "write one block statement (it is repeated to the depth) or exactly as many as the largest depth")
                return None
        blocks = []
        for i, b in enumerate(expanded):
            tpl = self.templates.get(b.kind)
            kind, tfields = (tpl.kind, tpl.fields) if tpl else (b.kind, ())
            present = f"{name}.{i}.present" if b.optional else None
            if present:
                self.dims[present] = Dim(present, (False, True), "bool", "block", b.kind_span, None, name, i,
                                         "present", "present", (b.kind_span, b.kind_span))
            lay = self.layer(b, Site("block", f"{name}.{i}", "block", stage=name, block=i, optional=b.optional,
                                     present=present),
                             Names(stage_lookup, stage_names), kind_name=kind, template_fields=tfields)
            failed |= lay is None
            blocks.append(lay)
        if failed:
            return None
        return StageIR(name, dim_expr, depth_expr, transition, tuple(blocks), st.span, dims_decl[0].span,
                       depth_decl[0].span if depth_decl else S.NO_SPAN)


_MISSING = object()


def _literal_type_error(v, ltype: str, field: str, fdef) -> tuple[str, str | None] | None:
    """(message, hint) when the literal ``v`` does not fit a field of type ``ltype``."""
    shown = ("true" if v.value else "false") if isinstance(v, S.Bool) else _fmt_num(v.value)
    if ltype == "int":
        if isinstance(v, S.Num) and isinstance(v.value, int):
            return None
        hint = f"write {int(v.value)}" if isinstance(v, S.Num) and float(v.value).is_integer() else None
        return f"{field} takes integers, got {shown}", hint
    if ltype == "float":
        return None if isinstance(v, S.Num) else (f"{field} takes numbers, got {shown}", None)
    if ltype == "bool":
        return None if isinstance(v, S.Bool) else (f"{field} takes true or false, got {shown}", None)
    if ltype == "sym":
        symbols = getattr(fdef, "symbols", ())
        return f"{field} takes a name, got {shown}", ("one of: " + ", ".join(symbols) if symbols else None)
    return None


def _with(lookup, extra: dict):
    def f(n):
        if n in extra:
            return extra[n]
        return lookup(n)
    return f


def _stmt_name(it) -> str:
    return {S.Input: "input", S.Classes: "classes", S.Stem: "stem", S.Head: "head"}[type(it)]
