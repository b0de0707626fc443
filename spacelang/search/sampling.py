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
  ``constraint``s intersected with ``--where`` bounds).  It first runs *rejection sampling*,
  which yields exactly the uniform sampler's distribution conditioned on the band.  It measures
  the acceptance rate over the first ``probe`` draws; when it is below ``min_rate`` it switches to
  *repair and mix*: draw a uniform arch, walk it into the band one dimension at a time (a move
  that lowers the distance to the band is kept; a move that leaves it unchanged is kept half the
  time), then take ``mix`` Metropolis steps inside the band (re-draw one active dimension; keep
  the move iff the arch stays in the band).  The Metropolis chain's stationary distribution is
  close to uniform over the in-band archs, but a short chain started at the band's edge keeps a
  bias towards the edge the walk came from, and depth/presence moves make the proposal
  asymmetric: the repaired distribution is **not** exactly the uniform-conditional one.
  Every arch returned is in the band, and every call terminates: an infeasible band is refused
  up front from the exact cost range (:class:`InfeasibleError`), and a band that no repair can
  reach within a bounded number of restarts is refused too.
"""
from __future__ import annotations

import random
from typing import Any, Iterator, Mapping

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


# ---------------------------------------------------------------------------------- arch editing
def gate_paths(space) -> list[str]:
    """Dimensions that switch blocks on and off: stage depths, then optional blocks' presence."""
    depth = [d.path for d in space.dims if d.path in space._depth_paths]
    present = [d.path for d in space.dims if d.origin == "present"]
    return depth + present


def complete(space, partial: Mapping[str, Any], rng: random.Random) -> dict:
    """The canonical arch that keeps ``partial``'s values where they are active and draws every
    newly active dimension uniformly (a grown stage's new blocks, a block switched on).

    Gates (depths, presence) are read from ``partial`` when given and drawn otherwise; values of
    dimensions that become inactive are dropped.
    """
    gates = {}
    for p in gate_paths(space):
        if p in partial:
            gates[p] = partial[p]
        else:
            d = space.dim(p)
            gates[p] = d.choices[rng.randrange(d.size)]
    out = {}
    for p in space.active_paths(gates):
        if p in partial:
            out[p] = partial[p]
        elif p in gates:
            out[p] = gates[p]
        else:
            d = space.dim(p)
            out[p] = d.choices[rng.randrange(d.size)]
    return dict(sorted(out.items()))


def with_value(space, arch: Mapping[str, Any], path: str, value, rng: random.Random, gates: frozenset) -> dict:
    """``arch`` with one dimension set to ``value`` (re-completed when it is a gate)."""
    out = dict(arch)
    out[path] = value
    if path in gates:
        return complete(space, out, rng)
    return out


# ---------------------------------------------------------------------------------- constrained
class ConstrainedSampler:
    """Archs whose exact cost lies in ``bounds`` (and the space's own constraints).

    See the module docstring for the distribution.  ``stats`` reports draws, acceptances and the
    mode (``rejection`` or ``repair``); ``cost`` is the exact (memoised) cost function used.

    Raises :class:`InfeasibleError` at construction when the band misses the space's exact cost
    range, and from :meth:`sample` when no in-band arch is found after ``restarts`` repairs
    (a band that passes the range check can still be empty when two metrics pull apart).
    """

    def __init__(self, space, rng: random.Random, bounds: Bounds | None = None, *,
                 include_space_constraints: bool = True, probe: int = 300, min_rate: float = 0.02,
                 mix: int | None = None, restarts: int = 25, cost: CostCache | None = None,
                 mode: str = "auto"):
        if mode not in ("auto", "rejection", "repair"):
            raise ValueError(f"mode must be auto, rejection or repair, not {mode!r}")
        self.space = space
        self.rng = _check_rng(rng)
        bounds = bounds if bounds is not None else Bounds()
        self.bounds = (Bounds.from_space(space) & bounds) if include_space_constraints else bounds
        self.cost = cost if cost is not None else CostCache(space)
        self.probe = probe
        self.min_rate = min_rate
        self.mix = mix
        self.restarts = restarts
        self.mode = "rejection" if mode in ("auto", "rejection") else "repair"
        self._auto = mode == "auto"
        self.draws = 0
        self.accepted = 0
        self._found: list[dict] = []  # in-band archs seen, to restart a chain from when repair fails
        self._gates = frozenset(gate_paths(space))
        if self.bounds:
            lo, hi = space.cost_range()
            check_feasible(space, self.bounds, lo, hi)
            self._range = (lo, hi)
        # closed integer ends and, for distances summed over metrics, each metric's range width
        self._ends = [(m, *iv.closed_int(), 1.0 / max(abs(getattr(hi, m) - getattr(lo, m)), 1))
                      for m, iv in self.bounds.intervals.items()] if self.bounds else []

    @property
    def stats(self) -> dict:
        rate = self.accepted / self.draws if self.draws else None
        return {"mode": self.mode, "draws": self.draws, "accepted": self.accepted, "acceptance": rate}

    def in_band(self, arch: Mapping[str, Any]) -> bool:
        return self._contains(self.cost(arch))

    def _contains(self, cost) -> bool:
        for m, lo, hi, _ in self._ends:
            v = getattr(cost, m)
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                return False
        return True

    def sample(self) -> dict:
        if not self.bounds:
            return self.space.sample(self.rng)
        if self.mode == "rejection":
            while True:
                arch = self.space.sample(self.rng)
                self.draws += 1
                if self._contains(self.cost(arch)):
                    self.accepted += 1
                    if len(self._found) < 64:
                        self._found.append(arch)
                    return arch
                if self.draws >= self.probe and self.accepted < self.min_rate * self.draws:
                    if not self._auto:
                        if self.accepted == 0 and self.draws >= self.probe * 100:
                            raise InfeasibleError(f"no arch in band {self.bounds} after {self.draws} draws")
                        continue
                    self.mode = "repair"
                    break
        return self._repair()

    def __iter__(self) -> Iterator[dict]:
        while True:
            yield self.sample()

    # -------------------------------------------------------------- repair and mix
    def _distance(self, cost) -> tuple[float, list[int]]:
        """Distance to the band (summed over metrics in units of their ranges) and, per violated
        metric, the direction its cost must move (+1 grow, -1 shrink)."""
        total = 0.0
        dirs = []
        for m, lo, hi, scale in self._ends:
            v = getattr(cost, m)
            if lo is not None and v < lo:
                total += (lo - v) * scale
                dirs.append(1)
            elif hi is not None and v > hi:
                total += (v - hi) * scale
                dirs.append(-1)
        return total, dirs

    def _move(self, arch: dict, direction: int) -> dict | None:
        """One dimension moved one choice in ``direction`` (+1 grows cost), or re-drawn when 0."""
        rng = self.rng
        paths = list(arch)
        p = paths[rng.randrange(len(paths))]
        d = self.space.dim(p)
        if d.size < 2:
            return None
        i = d.choices.index(arch[p])
        if direction:
            j = i + direction
            if not 0 <= j < d.size:
                return None
        else:
            j = rng.randrange(d.size - 1)
            j += j >= i
        return with_value(self.space, arch, p, d.choices[j], rng, self._gates)

    def _repair(self) -> dict:
        rng = self.rng
        n_dims = max(len(self.space.dims), 1)
        for _ in range(self.restarts):
            arch = self.space.sample(rng)
            self.draws += 1
            dist, dirs = self._distance(self.cost(arch))
            stall = 0
            while dirs and stall < 8 * n_dims:
                # mostly directed one-step moves; some free re-draws to leave plateaus
                direction = dirs[rng.randrange(len(dirs))] if rng.random() < 0.8 else 0
                cand = self._move(arch, direction)
                if cand is None:
                    stall += 1
                    continue
                cdist, cdirs = self._distance(self.cost(cand))
                if cdist < dist or (cdist == dist and rng.random() < 0.5):
                    stall = 0 if cdist < dist else stall + 1
                    arch, dist, dirs = cand, cdist, cdirs
                else:
                    stall += 1
            if not dirs:
                break
        else:
            if not self._found:
                lo, hi = self._range
                ranges = "; ".join(f"{m} {format_quantity(getattr(lo, m))} – {format_quantity(getattr(hi, m))}"
                                   for m in self.bounds.intervals)
                raise InfeasibleError(f"no arch of space {self.space.name} found in band {self.bounds} after "
                                      f"{self.restarts} repairs (the space spans {ranges}); the metrics' bounds "
                                      f"may exclude each other")
            arch = dict(self._found[rng.randrange(len(self._found))])
        arch = self._mix(arch)
        self.accepted += 1
        if len(self._found) < 64:
            self._found.append(arch)
        return arch

    def _mix(self, arch: dict) -> dict:
        steps = self.mix if self.mix is not None else len(arch)
        for _ in range(steps):
            cand = self._move(arch, 0)
            if cand is not None and self._contains(self.cost(cand)):
                arch = cand
        return arch


def sampler_for(space, rng: random.Random, bounds: Bounds | None = None, **kw):
    """The constrained sampler when the space or ``bounds`` constrain cost, else the uniform one."""
    if (bounds is not None and bounds) or space.constraints:
        return ConstrainedSampler(space, rng, bounds, **kw)
    return UniformSampler(space, rng)


__all__ = ["UniformSampler", "SandwichSampler", "ConstrainedSampler", "InfeasibleError", "sampler_for",
           "complete", "with_value", "gate_paths"]
