"""S3 space evolution: linear trends of E-T error and the shift of each subspace (Eq. 7, 8).

For each subspace (see :mod:`.et_error`) a line ``y = w·x + b`` is fitted by least squares to
its choices' E-T errors, and every choice moves by ``-[w/τ]·γ``:

* ``y`` is the E-T error in percent;
* ``x`` is the choice min-max normalised over the subspace's set, ``x = (v - min)/(max - min)``,
  so ``w`` is the fitted error difference, in percentage points, between the largest and the
  smallest choice (for an evenly spaced set this is the choice index over ``n - 1``);
* ``[·]`` rounds toward zero by default, so τ is a threshold in both directions: a subspace moves
  one step γ for every τ (0.4) points of error its line gains or loses across the set, and not at
  all when ``|w| < τ``.  S3 writes a floor, which moves every subspace with any negative slope,
  however small, up by a step; ``rounding="floor"`` gives that reading.

docs/s3-evolve.md works through the magnitudes and an example.  New choices that are no longer
valid — not positive, not an integer for an integer field, or rejected by the checker (a window
that no longer fits its feature map) — are dropped; a set never becomes empty: when every
shifted choice is invalid, the valid value nearest to where the trend points is kept.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import attrs

from .. import syntax as S
from ..diagnostics import SpaceError
from .et_error import (DEFAULT_TOP_K, ChoiceET, RowFilter, Subspace, et_errors, feasible, space_et,
                       subspaces)
from .rewrite import Edit, rewrite, value_nodes

DEFAULT_TAU = 0.4

#: S3 §4.1's steps γ: block number 1, embed dim 64, MLP ratio 0.5, Q-K-V dim 64, window 7; and
#: 1 for heads (an integer count; S3 ties heads to the Q-K-V dim and gives it no step).
S3_STEPS: dict[str, int | float] = {"depth": 1, "dim": 64, "mlp_ratio": 0.5, "qkv_dim": 64, "window": 7, "heads": 1}

ROUNDINGS = ("trunc", "floor")


# --------------------------------------------------------------------------- steps and trends

def gamma_of(sub: Subspace, node: S.Choice | S.Range | None,
             defaults: Mapping[str, int | float] = S3_STEPS) -> tuple[int | float | None, str]:
    """The step γ of a subspace and where it came from.

    In order: the file's ``step`` (a choice set's annotation or a range's explicit step), the S3
    default for the field, a range's implicit spacing (1), the smallest gap of the set.
    """
    explicit = node.step.value if node is not None and node.step is not None else None
    if explicit is not None:
        return explicit, "file"
    if sub.field in defaults and sub.first.origin in ("field", "dim", "depth"):
        return defaults[sub.field], "default"
    if isinstance(node, S.Range):
        return 1, "range"
    gaps = [b - a for a, b in zip(sub.choices, sub.choices[1:])]
    if gaps:
        return min(gaps), "gap"
    return None, "none"


@attrs.frozen
class Trend:
    """The least-squares line through (x, E-T) of the choices that have archs."""

    slope: float
    intercept: float
    xs: tuple
    ys: tuple


def normalised_x(choices: Sequence[float], v: float) -> float:
    lo, hi = min(choices), max(choices)
    return (v - lo) / (hi - lo)


def fit_trend(choices: Sequence[float], stats: Sequence[ChoiceET]) -> Trend | None:
    """Eq. 7 on the normalised choices; None when fewer than two choices have an E-T error."""
    if len(choices) < 2:
        return None
    pts = [(normalised_x(choices, s.value), s.et) for s in stats if s.et is not None]
    if len(pts) < 2:
        return None
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    w = sxy / sxx
    return Trend(w, my - w * mx, tuple(x for x, _ in pts), tuple(y for _, y in pts))


def steps_for(slope: float, tau: float, rounding: str = "trunc") -> int:
    """``[w/τ]``: how many steps γ the choices move *down* (negative: up)."""
    if tau <= 0:
        raise ValueError("τ must be positive")
    q = slope / tau
    # absorb float noise so that w = 0.8, τ = 0.4 is exactly 2 steps
    q = round(q, 9)
    if rounding == "trunc":
        return int(math.trunc(q))
    if rounding == "floor":
        return int(math.floor(q))
    raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}")


def shift(value: int | float, k: int, gamma: int | float, typ: str) -> tuple[int | float | None, str | None]:
    """``value - k·γ`` in the field's type, or (None, reason) when it is no longer a choice."""
    v = value - k * gamma
    if typ == "int":
        if not float(v).is_integer():
            return None, "not an integer"
        v = int(round(v))
    else:
        v = round(float(v), 10)
    if v <= 0:
        return None, "not positive"
    return v, None


# --------------------------------------------------------------------------- results

@attrs.define
class SubspaceUpdate:
    """The evolution of one subspace: statistics, trend, and old → new choices."""

    sub: Subspace
    gamma: int | float | None
    gamma_source: str
    stats: list
    trend: Trend | None
    k: int
    proposed: tuple            # the shifted choices before validity checks
    new: tuple
    dropped: list = attrs.Factory(list)   # (value, reason)
    note: str = ""

    @property
    def old(self) -> tuple:
        return self.sub.choices

    @property
    def changed(self) -> bool:
        return tuple(self.new) != tuple(self.old)

    def as_json(self) -> dict:
        return {
            "subspace": self.sub.name, "paths": list(self.sub.paths), "stages": list(self.sub.stages),
            "field": self.sub.field, "type": self.sub.type, "gamma": self.gamma, "gamma_source": self.gamma_source,
            "choices": list(self.old), "et": [s.as_json() for s in self.stats],
            "slope": None if self.trend is None else self.trend.slope,
            "intercept": None if self.trend is None else self.trend.intercept,
            "steps": self.k, "proposed": list(self.proposed), "new": list(self.new),
            "dropped": [{"value": v, "reason": r} for v, r in self.dropped],
            "changed": self.changed, "note": self.note,
            "line": self.sub.span.line,
        }


@attrs.frozen
class Evolution:
    """One S3 evolution step: the old space, the rewritten text and space, and every update."""

    space: Any
    text: str
    new_space: Any
    updates: tuple
    rows: RowFilter
    tau: float
    top_k: float
    rounding: str
    overall: dict   # Q_e, Q_t, E-T of the whole space

    @property
    def changed(self) -> list[SubspaceUpdate]:
        return [u for u in self.updates if u.changed]

    def as_json(self) -> dict:
        return {
            "space": self.space.name, "file": self.space.filename, "tau": self.tau, "top_k": self.top_k,
            "rounding": self.rounding,
            "rows": {"total": self.rows.total, "used": len(self.rows.used), "invalid": self.rows.invalid,
                     "infeasible": self.rows.infeasible, "invalid_examples": list(self.rows.reasons)},
            "space_et": self.overall,
            "size": {"old": self.space.size(), "new": self.new_space.size()},
            "subspaces": [u.as_json() for u in self.updates],
        }


# --------------------------------------------------------------------------- the step

class _Builder:
    """Builds candidate texts from per-subspace value lists and checks them with ``sl.loads``."""

    def __init__(self, space, defaults):
        self.space = space
        self.nodes = value_nodes(space.syntax)
        self.defaults = defaults
        self.loads_calls = 0

    def text(self, updates: Sequence[SubspaceUpdate], values: Mapping[str, Sequence]) -> str:
        edits = []
        for u in updates:
            vals = tuple(values.get(u.sub.name, u.old))
            if vals != tuple(u.old):
                known = u.sub.first.origin in ("field", "dim", "depth")
                edits.append(Edit((u.sub.span.start, u.sub.span.end), vals, u.gamma,
                                  self.defaults.get(u.sub.field) if known else None))
        return rewrite(self.space.source, self.space.syntax, edits)

    def check(self, text: str):
        """(space, None) when the text passes the checker, else (None, first error message)."""
        from ..space import loads
        self.loads_calls += 1
        try:
            return loads(text, self.space.filename), None
        except SpaceError as e:
            errs = [d for d in e.diagnostics if d.severity == "error"]
            return None, errs[0].message if errs else str(e)


def evolve_space(space, rows, tau: float = DEFAULT_TAU, top_k: float = DEFAULT_TOP_K, rounding: str = "trunc",
           steps: Mapping[str, int | float] | None = None, max_steps: int | None = None) -> Evolution:
    """One S3 evolution step of ``space`` from evaluated archs (results.jsonl rows).

    ``steps``: γ per field name for fields without a ``step`` in the file (over S3's defaults).
    ``max_steps``: cap on |[w/τ]| (not in S3; useful when few, noisy archs give steep slopes).
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}")
    defaults = {**S3_STEPS, **(steps or {})}
    rf = feasible(space, rows)
    b = _Builder(space, defaults)
    updates: list[SubspaceUpdate] = []
    for sub in subspaces(space):
        node = b.nodes.get((sub.span.start, sub.span.end))
        gamma, gsrc = gamma_of(sub, node, defaults)
        stats = et_errors(sub, rf.used, top_k)
        trend = fit_trend(sub.choices, stats)
        u = SubspaceUpdate(sub, gamma, gsrc, stats, trend, 0, sub.choices, sub.choices)
        if node is None:
            u.note = "not written as a choice set or range; left as is"
        elif len(sub.choices) < 2:
            u.note = "a single choice: no trend to fit"
        elif trend is None:
            u.note = "fewer than two choices have feasible archs: no trend"
        elif gamma is None:
            u.note = "no step γ"
        else:
            u.k = steps_for(trend.slope, tau, rounding)
            if max_steps is not None and abs(u.k) > max_steps:
                u.note = f"{abs(u.k)} steps capped at {max_steps}"
                u.k = max_steps if u.k > 0 else -max_steps
            if u.k:
                shifted = [shift(v, u.k, gamma, sub.type) for v in sub.choices]
                keep = []
                for old, (v, why) in zip(sub.choices, shifted):
                    if v is None:
                        u.dropped.append((_num(old - u.k * gamma), why))
                    else:
                        keep.append(v)
                u.new = tuple(sorted(set(keep)))
                u.proposed = tuple(_num(v - u.k * gamma) for v in sub.choices)
        updates.append(u)

    _enforce_validity(b, updates, tau)
    values = {u.sub.name: u.new for u in updates}
    text = b.text(updates, values)
    new_space, err = b.check(text)
    if new_space is None:  # pragma: no cover - _enforce_validity guarantees a valid text
        raise RuntimeError(f"evolved space does not check: {err}")
    return Evolution(space, text, new_space, tuple(updates), rf, tau, top_k, rounding, space_et(rf.used, top_k))


def _num(v):
    return round(v, 10) if isinstance(v, float) else v


def _enforce_validity(b: _Builder, updates: list[SubspaceUpdate], tau: float) -> None:
    """Drop checker-rejected choices, refill empty sets, and resolve cross-subspace conflicts."""
    moving = [u for u in updates if u.k and u.gamma is not None]
    if not moving:
        return
    values = {u.sub.name: u.new for u in updates}
    if all(u.new for u in moving) and b.check(b.text(updates, values))[0] is not None:
        return  # the common case: one load
    # each moving subspace alone (others at their old choices): which choices does the checker take?
    for u in moving:
        if u.new:
            _, err = b.check(b.text(updates, {u.sub.name: u.new}))
            if err is not None:
                good = []
                for v in u.new:
                    _, e = b.check(b.text(updates, {u.sub.name: (v,)}))
                    if e is None:
                        good.append(v)
                    else:
                        u.dropped.append((v, e))
                u.new = tuple(good)
        if not u.new:
            u.new = _nearest_valid(b, updates, u)
            u.note = (u.note + "; " if u.note else "") + \
                f"every shifted choice was invalid; kept {u.new[0]!r}, the valid value nearest to the trend"
    # all together: a conflict between subspaces reverts the later one (rare: the checker's rules
    # are per layer, so choices valid alone are almost always valid together)
    accepted: dict[str, tuple] = {}
    for u in moving:
        if not u.changed:
            continue
        trial = {**accepted, u.sub.name: u.new}
        _, err = b.check(b.text(updates, trial))
        if err is None:
            accepted = trial
        else:
            u.note = (u.note + "; " if u.note else "") + f"reverted: conflicts with other moves ({err})"
            u.new = u.old


def _nearest_valid(b: _Builder, updates, u: SubspaceUpdate) -> tuple:
    """The single valid value nearest to where the trend points, walking back toward the old set."""
    sign = 1 if u.k > 0 else -1
    for j in range(u.k, 0, -sign):
        cands = []
        for old in u.old:
            v, why = shift(old, j, u.gamma, u.sub.type)
            if v is not None and b.check(b.text(updates, {u.sub.name: (v,)}))[1] is None:
                cands.append(v)
        if cands:
            return (min(cands),) if u.k > 0 else (max(cands),)
    # no shifted value at all is valid: the old extreme in the trend's direction
    return (min(u.old),) if u.k > 0 else (max(u.old),)


__all__ = ["evolve_space", "Evolution", "SubspaceUpdate", "Trend", "fit_trend", "steps_for", "shift", "gamma_of",
           "normalised_x", "S3_STEPS", "DEFAULT_TAU", "ROUNDINGS"]
