"""Static checks by enumeration, and the supernet's largest-field spec.

Every layer is normalised by its kind under every combination of the dimensions it depends on
(feature-map sizes from the input resolution, stem and transitions; widths; its own choices), so
kind rules — divisibility, windows that must fit the map, even maps for merging — are checked for
all archs, not just one.  Combinations beyond :data:`MAX_COMBOS` are covered by the corners
(all-lowest, all-highest) plus a fixed-seed random sample.
"""
from __future__ import annotations

import itertools
import random
from typing import Any, Iterable

from .diagnostics import Diagnostic
from .fields import FieldError, head_has_cls, normalize
from .ir import EvalError, LayerIR, Ref, evaluate, refs
from .kinds.base import Context, FieldError
from .netspec import Layer, NetSpec, StageSpec
from .resolve import Diags
from .syntax import NO_SPAN

MAX_COMBOS = 4096
_SAMPLES = 256


def _assignments(space, paths: Iterable[str]) -> list[dict]:
    dims = [space.dim(p) for p in sorted(paths)]
    total = 1
    for d in dims:
        total *= d.size
    if total <= MAX_COMBOS:
        return [dict(zip([d.path for d in dims], vals)) for vals in itertools.product(*[d.choices for d in dims])]
    rng = random.Random(0)
    out = [{d.path: d.lo for d in dims}, {d.path: d.hi for d in dims}]
    out += [{d.path: d.choices[rng.randrange(d.size)] for d in dims} for _ in range(_SAMPLES)]
    return out


class _Checker:
    def __init__(self, space, diags: Diags):
        self.space = space
        self.d = diags
        self.max_fields: dict[tuple, dict] = {}  # layer key -> max normalised fields

    def _report(self, layer: LayerIR, env: dict, err, where: str) -> None:
        field = getattr(err, "field", None)
        span = layer.kind_span
        if field and field in layer.field_spans:
            span = layer.field_spans[field]
            expr = layer.fields.get(field)
            # point at the offending choice of a choice set when we know it
            if isinstance(expr, Ref) and expr.path in env and self.space._dim.get(expr.path) is not None:
                d = self.space.dim(expr.path)
                if d.choice_spans and env[expr.path] in d.choices:
                    span = d.choice_spans[d.choices.index(env[expr.path])]
        self.d.add(span, f"{err.message}{where}", err.hint)

    def _norm(self, key, layer: LayerIR, env: dict, ctx: Context, where: str) -> dict | None:
        try:
            f = normalize(layer, env, ctx)
        except FieldError as e:
            self._report(layer, env, e, where)
            return None
        except EvalError as e:
            self.d.add(layer.kind_span, f"{e}{where}")
            return None
        cur = self.max_fields.get(key)
        if cur is None:
            self.max_fields[key] = dict(f)
        else:
            for k, v in f.items():
                old = cur.get(k)
                if isinstance(v, bool) or isinstance(old, bool):
                    cur[k] = bool(old) or bool(v)
                elif isinstance(v, (int, float)) and isinstance(old, (int, float)):
                    cur[k] = max(old, v)
        return f

    def run(self) -> None:
        sp = self.space
        trunk_paths = set(sp._trunk) - sp._depth_paths
        stage_contexts: list[dict] = [dict() for _ in sp.stages]  # ctx tuple -> env of trunk refs
        block_trunk_refs = []
        for st in sp.stages:
            r = set()
            for b in st.blocks:
                for e in b.fields.values():
                    r |= refs(e)
            block_trunk_refs.append(r & trunk_paths)
        for env in _assignments(sp, trunk_paths):
            try:
                res = evaluate(sp.resolution, env)
                cls = head_has_cls(sp.head, env)
                dims = [evaluate(st.dim, env) for st in sp.stages]
            except (EvalError, FieldError) as e:
                self.d.add(NO_SPAN, str(e))
                return
            for si, dv in enumerate(dims):
                if not isinstance(dv, int) or isinstance(dv, bool) or dv < 1:
                    self.d.add(sp.stages[si].dim_span, f"stage {sp.stages[si].name} width must be a positive integer, got {dv!r}",
                               "use // for integer division")
                    return
            stem = self._norm(("stem",), sp.stem, env, Context(sp.channels, dims[0], res, cls_token=cls), "")
            if stem is None:
                continue
            cur_dim, cur_size = stem["dim"], stem["size"]
            ok = True
            for si, st in enumerate(sp.stages):
                where = f" in stage {st.name}"
                if st.transition is not None:
                    t = self._norm(("t", si), st.transition, env, Context(cur_dim, dims[si], cur_size, cls_token=cls, role="downsample"), where)
                    if t is None:
                        ok = False
                        break
                    cur_dim, cur_size = t["dim"], t["size"]
                key = (cur_dim, dims[si], cur_size, cls, tuple(sorted((p, env[p]) for p in block_trunk_refs[si])))
                stage_contexts[si][key] = env
                cur_dim = dims[si]
            if ok:
                self._norm(("head",), sp.head, env, Context(cur_dim, cur_dim, cur_size, cls_token=cls, classes=sp.classes), "")
        for si, st in enumerate(sp.stages):
            self._check_blocks(si, st, stage_contexts[si])

    def _check_blocks(self, si, st, contexts: dict) -> None:
        sp = self.space
        trunk = set(sp._trunk)
        where = f" in stage {st.name}"
        for b in st.blocks:
            own = set()
            for e in b.fields.values():
                own |= refs(e)
            own -= trunk
            # the first block that runs receives the stage's entry width; later ones the stage width
            can_be_first = all(p.optional for p in st.blocks[: b.index])
            for (entry_dim, dim, size, cls, _), env in contexts.items():
                in_dims = {dim, entry_dim} if can_be_first else {dim}
                for own_env in _assignments(sp, own):
                    full = {**env, **own_env}
                    for in_dim in sorted(in_dims):
                        f = self._norm(("b", si, b.index), b, full, Context(in_dim, dim, size, index=b.index, cls_token=cls), where)
                        if f is None:
                            continue
                        if f["size"] != size:
                            self.d.add(b.kind_span, f"a block must keep the {size}×{size} feature map{where}",
                                       "strided layers go in the stage's `downsample`")
                        elif f["dim"] != dim:
                            self.d.add(b.kind_span, f"a block must produce the stage width {dim}{where}")

    def constraints(self) -> None:
        sp = self.space
        if not sp.constraints:
            return
        try:
            lo, hi = sp.cost_range()
        except (ImportError, NotImplementedError):
            return
        for c in sp.constraints:
            lo_v, hi_v = getattr(lo, c.metric), getattr(hi, c.metric)
            if c.op in ("<=", "<") and not c.holds(lo_v):
                self.d.add(c.span, f"constraint {c} is infeasible: the smallest subnet already has {_human(lo_v)} {c.metric}",
                           f"the space spans {_human(lo_v)}–{_human(hi_v)} {c.metric}")
            if c.op in (">=", ">") and not c.holds(hi_v):
                self.d.add(c.span, f"constraint {c} is infeasible: the largest subnet has only {_human(hi_v)} {c.metric}",
                           f"the space spans {_human(lo_v)}–{_human(hi_v)} {c.metric}")


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def check_space(space, diags: Diags) -> list[Diagnostic]:
    ch = _Checker(space, diags)
    ch.run()
    for d in space.unused:
        diags.add(d.span, f"`{d.path}` is never used", "remove it, or refer to it from a field", severity="warning")
    if not diags.errors:
        ch.constraints()
    space._max_fields = ch.max_fields
    diags.items.sort(key=lambda d: (d.span.line, d.span.col))
    return diags.items


def supernet_spec(space) -> NetSpec:
    mf = space._max_fields
    stages = []
    for si, st in enumerate(space.stages):
        trans = Layer(st.transition.kind, mf[("t", si)]) if st.transition is not None else None
        blocks = tuple(Layer(b.kind, mf[("b", si, b.index)], b.index) for b in st.blocks)
        dim = max(mf[("b", si, b.index)]["dim"] for b in st.blocks)
        stages.append(StageSpec(st.name, dim, trans, blocks))
    res = max(space.dim(p).hi for p in refs(space.resolution)) if refs(space.resolution) else evaluate(space.resolution, {})
    return NetSpec(space.channels, res, space.classes, Layer(space.stem.kind, mf[("stem",)]), tuple(stages),
                   Layer(space.head.kind, mf[("head",)]))
