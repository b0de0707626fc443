"""Cost structure used by the constrained sampler: exact ranges and trunk/local decomposition.

*Cost range.*  :class:`spacelang.cost_range.CostRange` (one algorithm for the whole project).

*Trunk and locals.*  A dimension is *local* to a block slot when that slot alone consumes it
(its per-block fields, its presence gate); every other dimension — widths, depths, resolution,
stem/head/transition fields, ``let``s shared by several blocks — is *trunk*.  Given the trunk,
each block keeps its stage's width and map size (the checker enforces it), so the cost is a
fixed part plus a sum of independent per-slot terms.  :class:`TrunkModel` uses that to weigh
each trunk by an estimate of its in-band mass (a normal approximation of the sum: exact mean
and variance per slot, from its local choices), so a narrow band is sampled trunk-first.
"""
from __future__ import annotations

import itertools
import math
import random
from typing import Any, Mapping

from ..ir import Origin
from ..util.archkey import arch_key
from .costcache import CostCache

MAX_TRUNKS = 20_000       # trunk configurations enumerated; beyond it trunks are drawn (SIR)
MAX_SLOT_CONFIGS = 256    # local configurations enumerated per slot; beyond it a fixed sample


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


class TrunkModel:
    """Trunk configurations of a space, each weighed by (prior) × (estimated in-band probability).

    ``sample(rng)`` draws a trunk (a dict of trunk dimension values, gates included) in proportion
    to that weight; a trunk whose exact cost range misses the band has weight 0.
    """

    def __init__(self, space, cost: CostCache, ends: list, rng_seed: int = 0):
        self.space = space
        self.cost = cost
        self.ends = ends  # [(metric, lo int | None, hi int | None, 1/scale)]
        self.local: dict[tuple, list[str]] = {}
        self.trunk: list[str] = []
        for d in space.dims:
            uses = space.uses(d.path)
            slots = {None if u.always else (u.stage, u.block) for u in uses}
            if len(slots) == 1 and None not in slots:
                self.local.setdefault(next(iter(slots)), []).append(d.path)
            else:
                self.trunk.append(d.path)
        self._local_set = {p for ps in self.local.values() for p in ps}
        #: the dimensions that repair and mixing may move once a trunk is fixed
        self.local_paths = frozenset(self._local_set)
        self._all_present = {d.path: True for d in space.dims if d.origin is Origin.PRESENT}
        # a trunk dimension that only optional blocks use goes inactive when they are all absent
        self._trunk_gated = any(all(not u.always and (u.gate or space.stages[u.stage].blocks[u.block].optional)
                                    for u in space.uses(p))
                                for p in self.trunk)
        self._tables: dict[tuple, tuple] = {}
        self._plans: dict[tuple, list] = {}
        self._dps: dict[tuple, LocalDP | None] = {}
        self._rng = random.Random(rng_seed)
        self.enumerated = math.prod(space.dim(p).size for p in self.trunk) <= MAX_TRUNKS
        self._trunks: list[dict] = []
        self._weights: list[float] = []
        if self.enumerated:
            seen = set()
            dims = [space.dim(p) for p in self.trunk]
            for vals in itertools.product(*[d.choices for d in dims]):
                t = self._canonical(dict(zip(self.trunk, vals)))
                key = arch_key(t)
                if key in seen:
                    continue
                seen.add(key)
                w = self.weight(t)
                if w > 0:
                    self._trunks.append(t)
                    self._weights.append(w)
            self._cum = list(itertools.accumulate(self._weights))

    def _canonical(self, values: Mapping[str, Any]) -> dict:
        """Only the trunk dimensions active under these depths (optional blocks counted present)."""
        active = self.space.active_paths({**values, **self._all_present})
        return {p: values[p] for p in active if p not in self._local_set}

    @property
    def feasible(self) -> bool:
        """Whether some trunk can reach the band (only meaningful when enumerated)."""
        return not self.enumerated or bool(self._trunks)

    def prior(self, t: Mapping[str, Any]) -> float:
        """Probability of this trunk under the uniform sampler."""
        return math.prod(1.0 / self.space.dim(p).size for p in t)

    def weight(self, t: Mapping[str, Any]) -> float:
        """prior(t) × estimated P(band | t); 0 when the trunk's exact range misses the band."""
        mean, var, lo_t, hi_t, exact = self._moments(t)
        p = 1.0
        for m, lo, hi, _ in self.ends:
            if exact and ((lo is not None and hi_t[m] < lo) or (hi is not None and lo_t[m] > hi)):
                return 0.0
            mu, sd = mean[m], math.sqrt(max(var[m], 0.0))
            if sd == 0:
                q = 1.0 if (lo is None or mu >= lo) and (hi is None or mu <= hi) else 0.0
            else:
                q = (_phi((hi + 0.5 - mu) / sd) if hi is not None else 1.0) - \
                    (_phi((lo - 0.5 - mu) / sd) if lo is not None else 0.0)
            p *= q
        # the range says the band is reachable: never weigh the trunk out entirely
        return self.prior(t) * max(p, 1e-9)

    def _moments(self, t: Mapping[str, Any]) -> tuple[dict, dict, dict, dict, bool]:
        """Mean, variance, min and max of each metric over the uniform local choices given the
        trunk, and whether min/max are exact (every slot's configurations enumerated)."""
        sp = self.space
        base = sp.complete(lambda d: t.get(d.path, True if d.origin is Origin.PRESENT else d.hi),
                           lambda d: t.get(d.path, d.lo))
        total = self.cost(base)
        ctxs = self.cost.block_contexts(base)
        metrics = [m for m, *_ in self.ends]
        mean = {m: getattr(total, m) for m in metrics}
        lo_t, hi_t = dict(mean), dict(mean)
        var = {m: 0.0 for m in metrics}
        exact = True
        for slot_key, ctx in ctxs.items():
            slot = self.cost.block_slot[slot_key]
            in_base = self.cost.layer_cost(slot, ctx, base)
            tab, ex = self._table(slot_key, slot, ctx, base)
            exact = exact and ex
            for m in metrics:
                i = 0 if m == "params" else 1
                mu, v, a, b = tab[i]
                mean[m] += mu - in_base[i]
                var[m] += v
                lo_t[m] += a - in_base[i]
                hi_t[m] += b - in_base[i]
        return mean, var, lo_t, hi_t, exact

    def _table(self, slot_key, slot, ctx, base) -> tuple[tuple, bool]:
        """Per metric (params, flops): mean, variance, min and max of a slot's cost over its
        uniform local choices; and whether every configuration was enumerated."""
        locals_ = [p for p in self.local.get(slot_key, []) if self.space.dim(p).origin is not Origin.PRESENT]
        optional = len(locals_) != len(self.local.get(slot_key, []))
        trunk_vals = tuple(base[p] for p in self.cost.layer_refs(slot) if p not in self._local_set)
        key = (slot, ctx, trunk_vals)
        hit = self._tables.get(key)
        if hit is not None:
            return hit
        dims = [self.space.dim(p) for p in locals_]
        n = math.prod(d.size for d in dims)
        exact = n <= MAX_SLOT_CONFIGS
        if exact:
            configs = itertools.product(*[d.choices for d in dims])
        else:
            r = random.Random(slot)
            configs = [tuple(d.choices[r.randrange(d.size)] for d in dims) for _ in range(MAX_SLOT_CONFIGS)]
        env = dict(base)
        cols: tuple[list, list] = ([], [])
        for vals in configs:
            env.update(zip(locals_, vals))
            p, f = self.cost.layer_cost(slot, ctx, env)
            cols[0].append(p)
            cols[1].append(f)
        out = []
        for xs in cols:
            mu = sum(xs) / len(xs)
            e2 = sum(x * x for x in xs) / len(xs)
            lo, hi = min(xs), max(xs)
            if optional:
                # an optional block is absent half the time (the uniform sampler draws its gate first)
                mu, e2, lo = mu / 2, e2 / 2, 0
            out.append((mu, e2 - mu * mu, lo, hi))
        hit = (tuple(out), exact)
        self._tables[key] = hit
        return hit

    def exclude(self, t: Mapping[str, Any]) -> None:
        """Drop a trunk the DP proved cannot reach the band."""
        if not self.enumerated:
            return
        key = sorted(t.items())
        for i, u in enumerate(self._trunks):
            if sorted(u.items()) == key:
                del self._trunks[i], self._weights[i]
                self._cum = list(itertools.accumulate(self._weights))
                return

    def draw_locals(self, t: Mapping[str, Any], rng: random.Random) -> dict:
        """An arch with trunk ``t`` and uniform locals: optional blocks present with probability
        1/2, then each active local dimension uniform — ``space.sample``'s law given the trunk."""
        key = arch_key(t)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(t)
        out = dict(t)
        rand = rng.random
        for present, dims in plan:
            if present is not None:
                on = rand() < 0.5
                out[present] = on
                if not on:
                    continue
            for p, choices in dims:
                out[p] = choices[int(rand() * len(choices))]
        if self._trunk_gated:
            return {p: out[p] for p in sorted(self.space.active_paths(out))}
        return dict(sorted(out.items()))

    def _plan(self, t: Mapping[str, Any]) -> list:
        """Per active block slot under trunk ``t``: its presence gate (or None) and its other locals."""
        gates = dict(t)
        for p in self.local_paths:
            if self.space.dim(p).origin is Origin.PRESENT:
                gates[p] = True
        active = set(self.space.active_paths(gates))
        plan = []
        for _, paths in sorted(self.local.items(), key=lambda kv: kv[0]):
            live = [p for p in paths if p in active]
            if not live:
                continue
            present = next((p for p in live if self.space.dim(p).origin is Origin.PRESENT), None)
            plan.append((present, [(p, self.space.dim(p).choices) for p in live if p != present]))
        return plan

    def dp(self, t: Mapping[str, Any]) -> LocalDP | None:
        """The trunk's :class:`LocalDP` on its most constraining metric (cached), or None when a
        slot has too many local configurations to enumerate."""
        key = arch_key(t)
        if key in self._dps:
            return self._dps[key]
        if len(self._dps) >= 512:
            self._dps.clear()
        self._dps[key] = out = self._build_dp(t)
        return out

    def _build_dp(self, t: Mapping[str, Any]) -> LocalDP | None:
        plan = self._plans.get(arch_key(t)) or self._plan(t)
        if any(math.prod(len(c) for _, c in dims) > MAX_SLOT_CONFIGS for _, dims in plan):
            return None
        base = dict(t)
        for present, dims in plan:
            if present is not None:
                base[present] = True
            for p, choices in dims:
                base[p] = choices[0]
        base = dict(sorted(base.items()))
        ctxs = self.cost.block_contexts(base)
        slot_of = {}
        for slot_key, paths in self.local.items():
            for p in paths:
                slot_of[p] = slot_key
        # the metric whose band is narrowest against the trunk's spread goes to the DP
        _, var, _, _, _ = self._moments(t)
        metric, lo, hi = min(((m, lo, hi) for m, lo, hi, _ in self.ends),
                             key=lambda e: ((e[2] if e[2] is not None else math.inf) -
                                            (e[1] if e[1] is not None else -math.inf)) / max(math.sqrt(var[e[0]]), 1))
        idx = 0 if metric == "params" else 1
        total = getattr(self.cost(base), metric)
        slots, lo_sum, hi_sum, in_base = [], 0, 0, 0
        for present, dims in plan:
            paths = [p for p, _ in dims] + ([present] if present else [])
            slot_key = slot_of[paths[0]]
            slot = self.cost.block_slot[slot_key]
            ctx = ctxs[slot_key]
            env = dict(base)
            in_base += self.cost.layer_cost(slot, ctx, env)[idx]
            configs = list(itertools.product(*[c for _, c in dims]))
            opts = []
            share = 1.0 / len(configs) / (2 if present else 1)
            for vals in configs:
                cfg = dict(zip([p for p, _ in dims], vals))
                env.update(cfg)
                if present:
                    cfg[present] = True
                opts.append((share, self.cost.layer_cost(slot, ctx, env)[idx], cfg))
            if present:
                absent = {present: False}
                opts.append((0.5, 0, absent))
            vals_ = [v for _, v, _ in opts]
            lo_sum += min(vals_)
            hi_sum += max(vals_)
            slots.append(opts)
        return LocalDP(slots, total - in_base, lo, hi, (lo_sum, hi_sum))

    def sample(self, rng: random.Random, candidates: int = 32) -> dict | None:
        """A trunk drawn in proportion to its weight (sampling-importance-resampling over
        ``candidates`` uniform draws when the trunks are too many to enumerate)."""
        if self.enumerated:
            if not self._trunks:
                return None
            x = rng.random() * self._cum[-1]
            lo, hi = 0, len(self._cum) - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if self._cum[mid] < x:
                    lo = mid + 1
                else:
                    hi = mid
            return dict(self._trunks[lo])
        cands, ws = [], []
        for _ in range(candidates):
            t = self._canonical(self.space.sample(rng))
            w = self.weight(t) / self.prior(t)  # drawn from the prior: importance weight is P(band | t)
            if w > 0:
                cands.append(t)
                ws.append(w)
        if not cands:
            return None
        return dict(rng.choices(cands, weights=ws)[0])


class LocalDP:
    """Exact sampling of a trunk's locals conditioned on one metric's band, by dynamic programming.

    Given the trunk, the metric is ``fixed + Σ_slot v_slot(config)``.  Each slot's value is
    quantised to a grid of width ``w`` (so the quantised sum is off by at most ``k·w/2`` for
    ``k`` slots); a forward pass convolves the slots' weighted quantised values, and a backward
    pass draws one configuration per slot with probability proportional to its uniform-sampler
    weight among the combinations whose quantised sum lies in the band widened by ``k·w/2``.
    The caller then checks the exact cost and redraws when it falls outside the band: the archs
    it keeps follow the uniform sampler's law *exactly*, conditioned on the trunk and the band.
    """

    MAX_BINS = 4000

    def __init__(self, slots: list, fixed: int, lo: int | None, hi: int | None, spread: tuple[int, int]):
        # slots: [[(weight, value, config dict)]]; spread: (min, max) of Σ values over the trunk
        k = max(len(slots), 1)
        a = lo - fixed if lo is not None else spread[0]
        b = hi - fixed if hi is not None else spread[1]
        width = max(b - a, 1)
        w = max(width / (4 * k), (spread[1] - spread[0]) / self.MAX_BINS, 1e-9)
        self.w = w
        self.slots = []
        for opts in slots:
            merged: dict[int, list] = {}
            for weight, value, cfg in opts:
                q = round(value / w)
                e = merged.setdefault(q, [0.0, []])
                e[0] += weight
                e[1].append((weight, cfg))
            self.slots.append(merged)
        self.q_lo = math.ceil(a / w - k / 2)
        self.q_hi = math.floor(b / w + k / 2)
        # forward pass: dense arrays over [base_s, base_s + len) of prefix sums, rescaled per step
        self.tables = []
        base, arr = 0, [1.0]
        for merged in self.slots:
            self.tables.append((base, arr))
            qs = sorted(merged)
            nbase = base + qs[0]
            new = [0.0] * (len(arr) + qs[-1] - qs[0])
            n = len(arr)
            for q in qs:
                wq = merged[q][0]
                off = q - qs[0]
                new[off:off + n] = [y + wq * x for y, x in zip(new[off:off + n], arr)]
            top = max(new) or 1.0
            base, arr = nbase, [x / top for x in new]
        self.final = (base, arr)
        lo_i = max(self.q_lo - base, 0)
        hi_i = min(self.q_hi - base, len(arr) - 1)
        self._targets = list(range(lo_i, hi_i + 1)) if lo_i <= hi_i else []
        self._target_w = [arr[i] for i in self._targets]
        self.mass = sum(self._target_w)

    def draw(self, rng: random.Random) -> dict | None:
        """One configuration per slot (merged into a dict), or None when the band has no mass."""
        if not self.mass:
            return None
        base, _ = self.final
        q = base + rng.choices(self._targets, weights=self._target_w)[0]
        out: dict = {}
        for merged, (pbase, parr) in zip(reversed(self.slots), reversed(self.tables)):
            cands, ws = [], []
            for qv, (wq, _) in merged.items():
                i = q - qv - pbase
                if 0 <= i < len(parr) and parr[i]:
                    cands.append(qv)
                    ws.append(wq * parr[i])
            qv = rng.choices(cands, weights=ws)[0]
            opts = merged[qv][1]
            cfg = rng.choices([c for _, c in opts], weights=[x for x, _ in opts])[0]
            out.update(cfg)
            q -= qv
        return out


__all__ = ["TrunkModel", "LocalDP"]
