"""The smallest and largest cost over a space, per metric, with the archs that reach them.

One algorithm, used by ``Space.cost_range()``, the checker's feasibility test and the samplers:

1. *Directions.*  Each ordered dimension is moved from its lowest to its highest choice on a few
   probe archs (the min, the max and a fixed-seed sample); per metric it is +1 when raising it
   never lowered the metric, -1 when it never raised it, 0 when it did both.
2. *Extremes.*  Blocks only add cost, so gates sit at their extremes; every other dimension
   starts at the end its direction points to and is then improved coordinate by coordinate
   until nothing changes.  Where cost grows with every choice (every transformer space) the
   result is the min and max arch exactly; where it does not (attention splits: more splits,
   fewer FLOPs) the search finds them from the right start.

``exact`` is True when every dimension moved one way only in every probe, so the extremes are
provably the space's; otherwise they are the best found and callers must not refuse a band
from them alone.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Mapping

from .ir import Origin

METRICS = ("params", "flops")
_PROBES = 4       # random archs (besides the min and the max) on which directions are probed
_ROUNDS = 4       # coordinate-improvement sweeps at most


def _ordered(d) -> bool:
    return d.type in ("int", "float", "num", "bool")


class CostRange:
    """Per-metric ``lo``/``hi`` cost, ``lo_arch``/``hi_arch``, ``directions`` and ``exact``."""

    def __init__(self, space, cost: Callable[[Mapping[str, Any]], Any] | None = None, metrics=METRICS):
        from .search.archops import complete
        from .search.costcache import CostCache
        self.space = space
        self.cost = cost or CostCache(space)
        rng = random.Random(0)
        probes = [space.min_arch(), space.max_arch()] + [space.sample(rng) for _ in range(_PROBES)]
        seen: dict[str, dict[str, int]] = {m: {} for m in metrics}
        mixed: dict[str, set] = {m: set() for m in metrics}
        for arch in probes:
            for p in arch:
                d = space.dim(p)
                if d.size < 2 or not _ordered(d):
                    continue
                lo, hi = dict(arch), dict(arch)
                lo[p], hi[p] = d.lo, d.hi
                if space.is_gate(p):
                    lo, hi = complete(space, lo, rng), complete(space, hi, rng)
                c_lo, c_hi = self.cost(lo), self.cost(hi)
                for m in metrics:
                    diff = getattr(c_hi, m) - getattr(c_lo, m)
                    s = (diff > 0) - (diff < 0)
                    if s:
                        if seen[m].get(p, s) != s:
                            mixed[m].add(p)
                        seen[m][p] = s
        self.directions: dict[str, dict[str, int]] = {
            m: {p: (0 if p in mixed[m] else s) for p, s in seen[m].items()} for m in metrics}
        self.exact = not any(mixed.values())
        self.lo: dict[str, int] = {}
        self.hi: dict[str, int] = {}
        self.lo_arch: dict[str, dict] = {}
        self.hi_arch: dict[str, dict] = {}
        for m in metrics:
            self.lo_arch[m], self.lo[m] = self._extreme(m, -1)
            self.hi_arch[m], self.hi[m] = self._extreme(m, +1)

    def extreme_arch(self, dirs: Mapping[str, int], low: bool, fixed: Mapping[str, Any] | None = None) -> dict:
        """The arch that minimises (``low``) or maximises a metric with these dimension
        directions, keeping ``fixed``'s values (a trunk)."""
        fixed = fixed or {}

        def pick(d):
            if d.path in fixed:
                return fixed[d.path]
            up = dirs.get(d.path, 1) >= 0
            return d.lo if up == low else d.hi
        return self.space.complete(pick, pick)

    def _extreme(self, metric: str, sign: int) -> tuple[dict, int]:
        sp = self.space
        arch = self.extreme_arch(self.directions[metric], low=sign < 0)
        best = getattr(self.cost(arch), metric)
        corner = sp.max_arch() if sign > 0 else sp.min_arch()
        v = getattr(self.cost(corner), metric)
        if v * sign > best * sign:
            arch, best = corner, v
        free = [d for d in sp.dims if d.origin is not Origin.PRESENT and not sp.is_gate(d.path) and d.path in arch]
        for _ in range(_ROUNDS):
            improved = False
            for d in free:
                for c in d.choices:
                    if c == arch[d.path]:
                        continue
                    trial = {**arch, d.path: c}
                    v = getattr(self.cost(trial), metric)
                    if v * sign > best * sign:
                        arch, best, improved = trial, v, True
            if not improved:
                break
        return arch, best


__all__ = ["CostRange", "METRICS"]
