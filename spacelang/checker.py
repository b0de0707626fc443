"""Static checks: every layer normalised in every situation it can meet, plus the constraints.

:func:`spacelang.cases.layer_cases` enumerates each layer slot under every combination of the
dimensions it depends on (feature-map sizes from the input resolution, stem and transitions;
widths; its own choices), so kind rules — divisibility, windows that must fit the map, even maps
for merging — are checked for all archs, not just one.  One mistake gives one diagnostic: a
span reported once is not reported again (the first, in enumeration order, stands for the rest).
"""
from __future__ import annotations

from .cases import Stop, layer_cases
from .diagnostics import Diagnostic
from .errors import EvalError, FieldError
from .fields import field_values
from .ir import LayerIR, Ref
from .kinds import get as get_kind
from .kinds.base import Context
from .resolve import Diags
from .syntax import NO_SPAN
from .util.quantity import human
from .walk import Role, Slot


class _Checker:
    def __init__(self, space, diags: Diags):
        self.space = space
        self.d = diags
        self._seen: set = set()
        self._idle_seen: set = set()                 # (slot, ctx, values) already asked
        self._cases: dict[int, int] = {}             # slot -> distinct cases asked
        self._idle: dict[tuple, tuple] = {}          # (slot, field) -> (cases idle, message, span)

    def _add(self, span, message: str, hint: str | None = None, severity: str = "error") -> None:
        key = (span.line, span.col, span.end_line, span.end_col, severity) if span.line else (message, severity)
        if key in self._seen:
            return
        self._seen.add(key)
        self.d.add(span, message, hint, severity=severity)

    def _span(self, layer: LayerIR, field: str | None, env: dict):
        """The span of ``field`` (the offending choice of a choice set when known), else the kind's."""
        if not field or field not in layer.field_spans:
            return layer.kind_span
        span = layer.field_spans[field]
        expr = layer.fields.get(field)
        if isinstance(expr, Ref) and expr.path in env and self.space.has_dim(expr.path):
            d = self.space.dim(expr.path)
            if d.choice_spans and env[expr.path] in d.choices:
                span = d.choice_spans[d.choices.index(env[expr.path])]
        return span

    def _where(self, slot: Slot) -> str:
        return f" in stage {self.space.stages[slot.stage].name}" if slot.stage is not None else ""

    def visit(self, slot: Slot, ctx: Context, env: dict):
        layer = slot.layer
        try:
            values = field_values(layer, env)
            f = get_kind(layer.kind).normalize(values, ctx)
        except FieldError as e:
            self._add(self._span(layer, e.field, env), f"{e.message}{self._where(slot)}", e.hint)
            raise Stop from None
        except EvalError as e:
            self._add(layer.kind_span, f"{e.message}{self._where(slot)}")
            raise Stop from None
        self._idle_fields(slot, values, ctx, env)
        if slot.role is Role.BLOCK:
            where = self._where(slot)
            if f.size != ctx.in_size:
                self._add(layer.kind_span, f"a block must keep the {ctx.in_size}×{ctx.in_size} feature map{where}",
                          "strided layers go in the stage's `downsample`")
            elif f.dim != ctx.dim:
                self._add(layer.kind_span, f"a block must produce the stage width {ctx.dim}{where}")
        return f

    def _idle_fields(self, slot: Slot, values: dict, ctx: Context, env: dict) -> None:
        """Record which fields do nothing in this case (the kind's ``idle_fields`` hook); a field
        is warned about only if it does nothing in every case (see :meth:`idle_warnings`)."""
        hook = get_kind(slot.layer.kind).idle_fields
        if hook is None:
            return
        key = (slot.number, ctx, tuple(values.values()))
        if key in self._idle_seen:
            return
        self._idle_seen.add(key)
        self._cases[slot.number] = self._cases.get(slot.number, 0) + 1
        for field, message in hook(values, frozenset(slot.layer.fields), ctx):
            n, first, span = self._idle.get((slot.number, field), (0, message, None))
            self._idle[(slot.number, field)] = (n + 1, first, span or self._span(slot.layer, field, env))

    def idle_warnings(self) -> None:
        """Warn about fields that did nothing in every case the enumeration met."""
        for (number, _), (n, message, span) in self._idle.items():
            if n == self._cases.get(number):
                self._add(span, message, severity="warning")

    def run(self) -> None:
        sp = self.space

        def bad_width(si: int, value) -> None:
            st = sp.stages[si]
            self._add(st.dim_span, f"stage {st.name} width must be a positive integer, got {value!r}",
                      "use // for integer division")

        def bad_eval(e: Exception) -> None:
            self._add(NO_SPAN, getattr(e, "message", str(e)))

        layer_cases(sp, self.visit, bad_width=bad_width, bad_eval=bad_eval)
        self.idle_warnings()

    def constraints(self) -> None:
        sp = self.space
        if not sp.constraints:
            return
        from .search.where import Bounds, constraint_interval
        # constraints that exclude each other (each may be feasible alone)
        bounds = Bounds()
        for c in sp.constraints:
            bounds = bounds & Bounds({c.metric: constraint_interval(c)})
            iv = bounds.intervals[c.metric]
            if iv.empty():
                self._add(c.span, f"constraint {c} excludes the earlier bounds on {c.metric}: "
                                  f"no subnet can satisfy them all",
                          f"the constraints on {c.metric} together ask for {iv.describe(c.metric)}")
                return
        from .util.quantity import TIME_METRICS
        for c in sp.constraints:
            if c.metric in TIME_METRICS:  # a device's latency is not in the space: a profile knows it
                self._add(c.span, f"constraint {c} needs a latency profile: it is not checked here, and "
                                  f"sample/search refuse it without one",
                          "build one with `spacelang latency profile FILE -o PROFILE.json` and pass "
                          "--latency-profile PROFILE.json to sample or search", severity="warning")
        try:
            lo, hi = sp.cost_range()
        except (ImportError, NotImplementedError):
            return
        for c in sp.constraints:
            if c.metric in TIME_METRICS:
                continue
            lo_v, hi_v = getattr(lo, c.metric), getattr(hi, c.metric)
            if c.op in ("<=", "<") and not c.holds(lo_v):
                self._add(c.span, f"constraint {c} is infeasible: the smallest subnet already has {human(lo_v)} {c.metric}",
                          f"the space spans {human(lo_v)}–{human(hi_v)} {c.metric}")
            if c.op in (">=", ">") and not c.holds(hi_v):
                self._add(c.span, f"constraint {c} is infeasible: the largest subnet has only {human(hi_v)} {c.metric}",
                          f"the space spans {human(lo_v)}–{human(hi_v)} {c.metric}")


def check_space(space, diags: Diags) -> list[Diagnostic]:
    """Run every static check of a resolved space; returns the diagnostics sorted by position."""
    ch = _Checker(space, diags)
    ch.run()
    for d in space.unused:
        diags.add(d.span, f"`{d.path}` is never used", "remove it, or refer to it from a field", severity="warning")
    if not diags.errors:
        ch.constraints()
    diags.items.sort(key=lambda d: (d.span.line, d.span.col))
    return diags.items
