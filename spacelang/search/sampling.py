"""Samplers: uniform (AutoFormer), sandwich (S3 Alg. 2) and constrained (resource bands).

All samplers are pure Python and driven by a caller-owned, seeded ``random.Random``: the same
seed gives the same archs.  Archs are canonical (sorted keys, only active dimensions).

Distributions
-------------
* :class:`UniformSampler` — ``space.sample(rng)``: depths and presence gates first, then each
  active dimension, every choice equally likely (AutoFormer §3.3 "uniformly sample a subnet").
* :class:`SandwichSampler` — per training step the largest arch, the smallest arch and ``k``
  uniform archs (S3 Appendix A, Alg. 2, ``k = 2``).
* :class:`ConstrainedSampler` — archs whose exact cost lies in a band (the space's
  ``constraint``s intersected with ``--where`` bounds).  An infeasible band is refused up front
  from the exact cost range (:class:`InfeasibleError`).  The sampler starts with *rejection*,
  which yields exactly the uniform sampler's law conditioned on the band, and measures the
  acceptance rate over the first ``probe`` draws; below ``min_rate`` it switches to *trunk
  mode*: draw the trunk (widths, depths, shared choices) with weight prior × a normal
  approximation of its in-band mass, then the block-local choices exactly conditioned on the
  band (uniform draws, then a dynamic programme over the slots' quantised costs with a final
  exact check — :class:`spacelang.search.band.LocalDP`).  A ``latency`` bound (given a
  :class:`spacelang.latency.LatencyPredictor`) is checked on every draw like the others; the
  trunk model sees params and FLOPs only, so a latency-only band rejects, then repairs.  Because of the trunk weights, trunk
  mode is **not** exactly the uniform-conditional law (close to it: docs/search.md gives the
  measured differences).  Bounded fallbacks — a repair walk into the band followed by Metropolis
  steps inside it — keep every call terminating; every arch returned is in the band.
"""
from __future__ import annotations

import math
import random
from typing import Any, Iterator, Mapping

from .archops import gate_paths, with_value
from ..cost_range import CostRange
from ..errors import OptionError
from ..latency import CostWithLatency
from ..util.quantity import TIME_METRICS
from .band import TrunkModel
from .costcache import CostCache
from .where import Bounds, InfeasibleError, check_feasible, format_quantity


def _check_rng(rng) -> random.Random:
    if not isinstance(rng, random.Random):
        raise TypeError("samplers need a random.Random (seed it for reproducible archs)")
    return rng


class UniformSampler:
    """Uniform sampling over the space's dimensions (``space.sample``)."""

    def __init__(self, space, rng: random.Random):
        self.space = space
        self.rng = _check_rng(rng)

    def sample(self) -> dict:
        return self.space.sample(self.rng)

    def __iter__(self) -> Iterator[dict]:
        while True:
            yield self.sample()


class SandwichSampler:
    """S3's sandwich rule (Alg. 2): every step trains the largest, the smallest and ``k`` random archs.

    ``middle`` draws the random archs (default: uniform over the space; pass a
    :class:`ConstrainedSampler` to keep them in a band).  The largest and smallest archs are the
    space's own (``max_arch``/``min_arch``), as in Alg. 2, which trains without constraints.
    """

    def __init__(self, space, rng: random.Random, k: int = 2, middle=None):
        if k < 0:
            raise ValueError("sandwich k must be >= 0")
        self.space = space
        self.rng = _check_rng(rng)
        self.k = k
        self.middle = middle if middle is not None else UniformSampler(space, rng)
        self._max = space.max_arch()
        self._min = space.min_arch()

    def step(self) -> list[dict]:
        """``[largest, smallest, random_1 … random_k]`` for one training step."""
        return [dict(self._max), dict(self._min)] + [self.middle.sample() for _ in range(self.k)]

    def __iter__(self) -> Iterator[list[dict]]:
        while True:
            yield self.step()


# ---------------------------------------------------------------------------------- constrained
class ConstrainedSampler:
    """Archs whose exact cost lies in ``bounds`` (and, by default, the space's own constraints).

    See the module docstring for the distribution.  ``stats`` reports the mode (``rejection``
    or ``trunk``), the draws and the acceptances; ``cost`` is the exact, memoised cost function
    (with ``latency``, a :class:`spacelang.latency.LatencyPredictor`, it also predicts latency:
    ``cost(arch).latency`` in milliseconds).  A latency bound without a predictor is an
    :class:`OptionError`.

    Raises :class:`InfeasibleError` at construction when the band misses the space's exact cost
    range, and from :meth:`sample` when no in-band arch is found after ``restarts`` repairs
    (a band inside the range can still be empty when two metrics pull apart).
    """

    def __init__(self, space, rng: random.Random, bounds: Bounds | None = None, *,
                 include_space_constraints: bool = True, probe: int = 300, min_rate: float = 0.02,
                 local_tries: int = 8, dp_tries: int = 64, mix: int | None = None, restarts: int = 25,
                 cost: CostCache | None = None, mode: str = "auto", latency=None):
        if mode not in ("auto", "rejection", "trunk"):
            raise ValueError(f"mode must be auto, rejection or trunk, not {mode!r}")
        self.space = space
        self.rng = _check_rng(rng)
        bounds = bounds if bounds is not None else Bounds()
        own = Bounds.from_space(space) if include_space_constraints else Bounds()
        self.bounds = own & bounds
        #: how messages name the band: the --where bounds, then the space's own constraints
        self.band = " and ".join(x for x in (str(bounds) if bounds else "",
                                             f"the space's constraint {own}" if own else "") if x)
        base = cost if cost is not None else CostCache(space)
        # latency (given a spacelang.latency.LatencyPredictor) is predicted, not counted: the trunk
        # model and the cost range see params and FLOPs only, the band checks see all three
        cost_bounds = Bounds({m: iv for m, iv in self.bounds.intervals.items() if m not in TIME_METRICS})
        if cost_bounds != self.bounds and latency is None:
            raise OptionError(f"the band {self.band} bounds latency, which needs a latency profile",
                              hint="pass --latency-profile PROFILE.json (build one with `spacelang latency profile`)")
        self._base_cost = base
        self.cost = CostWithLatency(base, latency) if latency is not None else base
        self.latency = latency
        self.probe, self.min_rate, self.dp_tries = probe, min_rate, dp_tries
        self.local_tries = max(local_tries, 1)
        self.mix, self.restarts = mix, restarts
        self.mode = "trunk" if mode == "trunk" else "rejection"
        self._auto = mode == "auto"
        self.draws = self.accepted = 0
        self._found: list[dict] = []  # in-band archs seen: a chain restarts from one if repair fails
        self._excluded: list[dict] = []  # trunks the DP proved out of the band
        self._gates = frozenset(gate_paths(space))
        self._trunk_model: TrunkModel | None = None
        self._ends: list = []
        self._cost_ends: list = []
        self.range: CostRange | None = None
        self._latency_range: tuple[float, float] | None = None
        if cost_bounds:
            self.range = CostRange(space, base)
            if self.range.exact or cost_bounds.empty_metric():
                check_feasible(space, cost_bounds, self.range.lo, self.range.hi, self.band)
            # closed integer ends (costs are integers) and 1 / each metric's range width, so that
            # distances to the band add up across metrics
            self._cost_ends = [(m, *iv.closed_int(), 1.0 / max(self.range.hi[m] - self.range.lo[m], 1))
                               for m, iv in cost_bounds.intervals.items()]
            self._ends = list(self._cost_ends)
        self._directions = dict(self.range.directions) if self.range is not None else {}
        if "latency" in self.bounds.intervals:
            iv = self.bounds.intervals["latency"]
            # the predicted range, by the cost range's algorithm on the predictor (a measured
            # table need not grow with every width: refused from it only when exact)
            lat = CostRange(space, self.cost, metrics=("latency",))
            lo, hi = self._latency_range = lat.lo["latency"], lat.hi["latency"]
            self._directions.update(lat.directions)
            if lat.exact:
                check_feasible(space, Bounds({"latency": iv}), lat.lo, lat.hi, self.band)
            self._ends.append(("latency", *_float_ends(iv), 1.0 / max(hi - lo, 1e-9)))

    def _infeasible(self, reason: str) -> InfeasibleError:
        r = self.range
        ranges = "; ".join(f"{format_quantity(r.lo[m], 4)} – {format_quantity(r.hi[m], 4)} {m}"
                           if m != "latency" else "%.4g – %.4gms latency (predicted)" % self._latency_range
                           for m in self.bounds.intervals)
        return InfeasibleError(f"infeasible band {self.band}: {reason} (space {self.space.name} spans {ranges})")

    @property
    def stats(self) -> dict:
        rate = self.accepted / self.draws if self.draws else None
        return {"mode": self.mode, "draws": self.draws, "accepted": self.accepted, "acceptance": rate}

    def state(self) -> dict:
        """JSON-serialisable state that, with the RNG's, makes a resumed run draw the same archs."""
        return {"mode": self.mode, "draws": self.draws, "accepted": self.accepted,
                "found": list(self._found), "excluded": list(self._excluded)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.mode = state["mode"]
        self.draws, self.accepted = state["draws"], state["accepted"]
        self._found = [dict(a) for a in state["found"]]
        self._excluded = [dict(t) for t in state.get("excluded", [])]
        self._trunk_model = None  # rebuilt on demand, with these exclusions

    def in_band(self, arch: Mapping[str, Any]) -> bool:
        """Whether an arch's exact cost is in the band."""
        return self._contains(self.cost(arch))

    def _contains(self, cost) -> bool:
        for m, lo, hi, _ in self._ends:
            v = getattr(cost, m)
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                return False
        return True

    def _keep(self, arch: dict) -> dict:
        self.accepted += 1
        if len(self._found) < 64:
            self._found.append(arch)
        return arch

    def sample(self) -> dict:
        if not self.bounds:
            return self.space.sample(self.rng)
        if self.mode == "rejection":
            while True:
                arch = self.space.sample(self.rng)
                self.draws += 1
                if self._contains(self.cost(arch)):
                    return self._keep(arch)
                if self.draws >= self.probe and self.accepted < self.min_rate * self.draws:
                    if self._auto:
                        self.mode = "trunk"
                        break
                    if self.accepted == 0 and self.draws >= 100 * self.probe:
                        raise self._infeasible(f"no arch in it after {self.draws} uniform draws")
        return self._trunk_sample()

    def __iter__(self) -> Iterator[dict]:
        while True:
            yield self.sample()

    # -------------------------------------------------------------- trunk-first sampling
    def _trunks(self) -> TrunkModel:
        if self._trunk_model is None:
            self._trunk_model = TrunkModel(self.space, self._base_cost, self._cost_ends)
            for t in self._excluded:
                self._trunk_model.exclude(t)
            if not self._trunk_model.feasible and self.range.exact:
                raise self._infeasible("no combination of the space's widths, depths and shared choices reaches it")
        return self._trunk_model

    def _trunk_sample(self) -> dict:
        rng = self.rng
        if not self._cost_ends:  # a latency band alone: the trunk model knows params and FLOPs only
            return self._walk_sample()
        model = self._trunks()
        local = model.local_paths
        for _ in range(self.restarts):
            t = model.sample(rng)
            if t is None:
                break
            # exact within the trunk: uniform locals until in band, then the DP's proposals
            for _ in range(self.local_tries):
                arch = model.draw_locals(t, rng)
                self.draws += 1
                if self._contains(self.cost(arch)):
                    return self._keep(arch)
            dp = model.dp(t)
            if dp is not None:
                if not dp.mass:
                    # no combination of this trunk's locals reaches the band
                    model.exclude(t)
                    self._excluded.append(t)
                    if not model.feasible and self.range.exact:
                        raise self._infeasible("no arch reaches it")
                    continue
                for _ in range(self.dp_tries):
                    arch = dict(sorted({**t, **dp.draw(rng)}.items()))
                    self.draws += 1
                    if self._contains(self.cost(arch)):
                        return self._keep(arch)
            arch = self._repair(arch, local)
            if arch is not None:
                return self._keep(self._mix(arch, local))
        return self._walk_sample()

    def _walk_sample(self) -> dict:
        """Walk uniform archs into the band over every dimension (the trunk model found nothing)."""
        rng = self.rng
        for _ in range(self.restarts):
            arch = self._repair(self.space.sample(rng), None)
            if arch is not None:
                return self._keep(self._mix(arch, None))
        if not self._found:
            raise self._infeasible(f"no arch found after {2 * self.restarts} repairs; the bounds on "
                                   f"{' and '.join(self.bounds.intervals)} may exclude each other")
        return self._keep(self._mix(dict(self._found[rng.randrange(len(self._found))]), None))

    # -------------------------------------------------------------- repair and mix
    def _distance(self, cost) -> tuple[float, list[tuple[str, int]]]:
        """Distance to the band (summed over metrics in units of their ranges) and, per violated
        metric, ``(metric, direction)`` its cost must move in (+1 grow, -1 shrink)."""
        total = 0.0
        dirs = []
        for m, lo, hi, scale in self._ends:
            v = getattr(cost, m)
            if lo is not None and v < lo:
                total += (lo - v) * scale
                dirs.append((m, 1))
            elif hi is not None and v > hi:
                total += (v - hi) * scale
                dirs.append((m, -1))
        return total, dirs

    def _move(self, arch: dict, direction: int, movable, metric: str | None = None) -> dict | None:
        """One dimension moved one choice so that ``metric`` moves in ``direction`` (+1 grow), or
        re-drawn when ``direction`` is 0; ``movable`` limits the dimensions (None: all)."""
        rng = self.rng
        paths = [p for p in arch if movable is None or p in movable]
        if not paths:
            return None
        p = paths[rng.randrange(len(paths))]
        d = self.space.dim(p)
        if d.size < 2:
            return None
        i = d.choices.index(arch[p])
        if direction:
            # a dimension that lowers this metric when raised moves the other way
            sgn = self._directions.get(metric, {}).get(p, 1)
            direction *= -1 if sgn < 0 else 1
            j = i + direction
            if not 0 <= j < d.size:
                return None
        else:
            j = rng.randrange(d.size - 1)
            j += j >= i
        return with_value(self.space, arch, p, d.choices[j], rng, self._gates)

    def _repair(self, arch: dict, movable) -> dict | None:
        """Walk ``arch`` into the band: keep a move that lowers the distance, and one that leaves
        it unchanged half the time; give up after a long stall (None)."""
        rng = self.rng
        dist, dirs = self._distance(self.cost(arch))
        stall, limit = 0, 8 * max(len(arch), 1)
        while dirs and stall < limit:
            metric, direction = dirs[rng.randrange(len(dirs))]
            if rng.random() >= 0.8:
                direction = 0
            cand = self._move(arch, direction, movable, metric)
            if cand is None:
                stall += 1
                continue
            cdist, cdirs = self._distance(self.cost(cand))
            if cdist < dist or (cdist == dist and rng.random() < 0.5):
                stall = 0 if cdist < dist else stall + 1
                arch, dist, dirs = cand, cdist, cdirs
            else:
                stall += 1
        return None if dirs else arch

    def _mix(self, arch: dict, movable) -> dict:
        """Metropolis steps inside the band: re-draw one dimension, keep it iff still in band."""
        steps = self.mix if self.mix is not None else len(arch)
        for _ in range(steps):
            cand = self._move(arch, 0, movable)
            if cand is not None and self._contains(self.cost(cand)):
                arch = cand
        return arch


def _float_ends(iv) -> tuple[float | None, float | None]:
    """An interval's closed float ends (a strict end moves to the next float inside)."""
    lo = hi = None
    if iv.lo is not None:
        lo = math.nextafter(float(iv.lo), math.inf) if iv.lo_strict else float(iv.lo)
    if iv.hi is not None:
        hi = math.nextafter(float(iv.hi), -math.inf) if iv.hi_strict else float(iv.hi)
    return lo, hi


def sampler_for(space, rng: random.Random, bounds: Bounds | None = None, **kw):
    """The constrained sampler when the space or ``bounds`` constrain cost, else the uniform one."""
    if (bounds is not None and bounds) or space.constraints:
        return ConstrainedSampler(space, rng, bounds, **kw)
    return UniformSampler(space, rng)


__all__ = ["UniformSampler", "SandwichSampler", "ConstrainedSampler", "InfeasibleError", "sampler_for"]
