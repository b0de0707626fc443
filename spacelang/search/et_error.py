"""E-T error of a space's subspaces (S3, §2.3, Eq. 5 and 6).

A *subspace* is one choice set as written in the ``.space`` text.  In an S3-style space (the
block written out in every stage) that is exactly S3's decomposition "by search dimension and
stage" (Eq. 6): ``s1.dim``, ``s1.depth`` and ``s1.*.mlp_ratio`` (the per-block MLP ratio of
stage s1, one text shared by all of s1's block instances) are three subspaces; a space-level
dimension is one.  Grouping by text rather than by (stage, field) is what lets the rewriter move
each subspace by editing its one choice set.  A choice set shared by several stages (a template,
a space-level ``let``) is therefore one subspace: one text cannot move two ways.

For each choice v of a subspace, the archs "with that choice" are weighted: an arch counts for v
with weight = the fraction of its active instances of the subspace (its running blocks in that
stage) that take v.  For stage and space dimensions an arch has one instance, so the weight is 0
or 1 and this is S3's ``{α | α_i = v}`` exactly.  The fraction keeps every arch's total weight in
a subspace at 1, so deep archs do not outvote shallow ones (depth moves error far more than any
single block's choice, and counting blocks would confound the two).  Then

* Q_e(v) = weighted mean error of the archs satisfying the space's constraints (Eq. 5),
* Q_t(v) = weighted mean error of the best archs up to a weight mass of ``top_k`` (50 in S3; the
  weighted analogue of "top 50": archs in increasing error until their weights reach 50, the
  last one partly; all of them when their total weight is below 50),
* E-T(v) = (Q_e(v) + Q_t(v)) / 2.

Errors are in percent (results.jsonl, DESIGN.md §6): ``error``, else ``100 - accuracy``.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

import attrs

from ..diagnostics import ArchError
from ..errors import SearchError
from ..ir import Dim, Origin
from ..util.quantity import TIME_METRICS

NUMERIC = ("int", "float", "num")
DEFAULT_TOP_K = 50


@attrs.frozen
class Subspace:
    """One written choice set: the dimensions (block instances) that share its text."""

    name: str              # readable label: the path, or paths with differing parts as `*`
    dims: tuple            # of Dim, all with the same choices and source span
    stages: tuple          # stage names involved (empty for space-level dims)

    @property
    def first(self) -> Dim:
        return self.dims[0]

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(d.path for d in self.dims)

    @property
    def choices(self) -> tuple:
        return self.first.choices

    @property
    def span(self):
        return self.first.span

    @property
    def field(self) -> str:
        """``dim``/``depth`` for stage widths and depths, the field or ``let`` name otherwise."""
        d = self.first
        return d.origin if d.origin in ("dim", "depth", "resolution") else d.field

    @property
    def stage(self) -> str | None:
        return self.stages[0] if len(self.stages) == 1 else None

    @property
    def type(self) -> str:
        return self.first.type


def _label(space, dims: Sequence[Dim]) -> str:
    """``s1.dim``; ``s1.*.mlp_ratio`` for a block field covering every block slot of its stage(s)
    (stable as depth changes); ``s1.{0,2,4}.heads`` for one of several block statements."""
    if len(dims) == 1 and dims[0].block is None:
        return dims[0].path
    if all(d.block is not None and d.stage is not None for d in dims):
        stages = list(dict.fromkeys(d.stage for d in dims))
        slots = {(d.stage, d.block) for d in dims}
        every = slots >= {(st.name, b.index) for st in space.stages if st.name in stages for b in st.blocks}
        stage = stages[0] if len(stages) == 1 else "*"
        idx = "*" if every else "{" + ",".join(str(b) for b in sorted({d.block for d in dims})) + "}"
        return f"{stage}.{idx}.{dims[0].field}"
    paths = [d.path for d in dims]
    parts = [p.split(".") for p in paths]
    if len({len(p) for p in parts}) != 1:
        return "|".join(paths)
    return ".".join(col[0] if len(set(col)) == 1 else "*" for col in zip(*parts))


def subspaces(space) -> list[Subspace]:
    """The evolvable subspaces of ``space``, in the space's dimension order.

    Numeric dimensions only: booleans (optional-block presence) and symbols have no order for a
    linear trend to follow.
    """
    groups: dict[Any, list[Dim]] = {}
    for d in space.dims:
        if d.type not in NUMERIC or d.origin is Origin.PRESENT:
            continue
        key = (d.span.start, d.span.end) if d.span.end > d.span.start else ("path", d.path)
        groups.setdefault(key, []).append(d)
    out = []
    for dims in groups.values():
        stages = tuple(dict.fromkeys(d.stage for d in dims if d.stage is not None))
        out.append(Subspace(_label(space, dims), tuple(dims), stages))
    return out


# --------------------------------------------------------------------------- results rows

def read_results(path: str) -> list[dict]:
    """Rows of a results.jsonl file (blank lines skipped), each checked.

    A row must be a JSON object with an ``arch`` object and an ``error`` (else an ``accuracy``)
    that is a finite number of percent in [0, 100].  Every bad row is reported, by line number
    with its reason, in one :class:`~spacelang.errors.SearchError` (``filename`` = ``path``).
    """
    rows, bad = [], []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise SearchError(f"cannot read ({e.strerror})", filename=path) from None
    except UnicodeDecodeError:
        raise SearchError("not UTF-8 text", filename=path) from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            bad.append(f"line {n}: not JSON ({e.msg})")
            continue
        why = row_problem(row)
        if why:
            bad.append(f"line {n}: {why}")
        else:
            rows.append(row)
    if bad:
        shown = "; ".join(bad[:8]) + (f"; … ({len(bad) - 8} more)" if len(bad) > 8 else "")
        raise SearchError(f"{len(bad)} bad row{'s' if len(bad) > 1 else ''}: {shown}", filename=path,
                          hint="each line is a JSON object with an `arch` object and an `error` or `accuracy` "
                               "in percent (DESIGN.md §6)")
    return rows


def row_problem(row: Any) -> str | None:
    """Why ``row`` is not a usable results row, or None."""
    if not isinstance(row, dict):
        return f"not a JSON object (a {type(row).__name__})"
    if not isinstance(row.get("arch"), dict):
        return "no `arch` object"
    for key in ("error", "accuracy"):
        if row.get(key) is None:
            continue
        v = row[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"`{key}` is {json.dumps(v)[:40]}, not a number"
        if not math.isfinite(v):
            return f"`{key}` is {v}, not a finite number"
        if not 0 <= v <= 100:
            return f"`{key}` {v} is outside 0..100 (percent)"
        return None
    return "no `error` or `accuracy`"


def row_error(row: Mapping[str, Any]) -> float:
    """Top-1 error in percent: ``error``, else ``100 - accuracy``."""
    if row.get("error") is not None:
        return float(row["error"])
    if row.get("accuracy") is not None:
        return 100.0 - float(row["accuracy"])
    raise ValueError("a results row needs `error` or `accuracy` (percent)")


@attrs.frozen
class Evaluated:
    """An arch of the space with its error, kept for the E-T statistics."""

    arch: dict
    error: float


@attrs.frozen
class RowFilter:
    """What happened to the rows: used, not points of this space, over the constraints."""

    used: tuple   # of Evaluated
    total: int
    invalid: int
    infeasible: int
    reasons: tuple = ()   # first few messages of invalid rows


def feasible(space, rows: Iterable[Mapping[str, Any]]) -> RowFilter:
    """Keep rows whose arch is a point of ``space`` and satisfies its constraints.

    ``params``/``flops`` come from the row when present, else from the exact cost model.
    """
    used, reasons = [], []
    total = invalid = infeasible = 0
    for row in rows:
        total += 1
        try:
            arch = space.validate(row.get("arch"))
            err = row_error(row)
        except (ArchError, ValueError, TypeError, KeyError) as e:  # KeyError: validate() on a missing depth
            invalid += 1
            if len(reasons) < 5:
                reasons.append(str(e))
            continue
        if not math.isfinite(err):
            invalid += 1
            continue
        ok = True
        cost = None
        for c in space.constraints:
            v = row.get(c.metric)
            if v is None and c.metric in TIME_METRICS:
                raise SearchError(f"space {space.name} constrains {c.metric} ({c}), but a results row has no "
                                  f"{c.metric} figure", hint="search with --latency-profile so every row records it")
            if v is None:
                if cost is None:
                    from ..cost import cost as cost_of
                    cost = cost_of(space, arch)
                v = getattr(cost, c.metric)
            if not c.holds(v):
                ok = False
                break
        if not ok:
            infeasible += 1
            continue
        used.append(Evaluated(arch, err))
    return RowFilter(tuple(used), total, invalid, infeasible, tuple(reasons))


# --------------------------------------------------------------------------- E-T error

@attrs.frozen
class ChoiceET:
    """E-T statistics of one choice of a subspace (``et`` is None when no arch has it)."""

    value: Any
    n: int           # archs with a positive weight for this choice
    mass: float      # their total weight
    q_e: float | None
    q_t: float | None
    et: float | None

    def as_json(self) -> dict:
        return attrs.asdict(self)


def weights(sub: Subspace, arch: Mapping[str, Any]) -> dict:
    """Choice -> weight of ``arch`` for that choice: the fraction of its active instances."""
    vals = [arch[p] for p in sub.paths if p in arch]
    if not vals:
        return {}
    out: dict = defaultdict(float)
    for v in vals:
        out[v] += 1.0 / len(vals)
    return dict(out)


def top_mass_mean(members: Sequence[tuple[float, float]], k: float) -> float:
    """Weighted mean error of the best ``members`` (error, weight) up to a total weight ``k``."""
    total = sum(w for _, w in members)
    budget = min(float(k), total)
    acc = taken = 0.0
    for e, w in sorted(members, key=lambda m: m[0]):
        if taken >= budget - 1e-12:
            break
        part = min(w, budget - taken)
        acc += part * e
        taken += part
    return acc / taken


def et_errors(sub: Subspace, evaluated: Sequence[Evaluated], top_k: float = DEFAULT_TOP_K) -> list[ChoiceET]:
    """E-T error of every choice of ``sub`` over the (feasible) evaluated archs (Eq. 5)."""
    members: dict = {v: [] for v in sub.choices}
    for ev in evaluated:
        for v, w in weights(sub, ev.arch).items():
            if v in members and w > 0:
                members[v].append((ev.error, w))
    out = []
    for v in sub.choices:
        m = members[v]
        if not m:
            out.append(ChoiceET(v, 0, 0.0, None, None, None))
            continue
        mass = sum(w for _, w in m)
        q_e = sum(e * w for e, w in m) / mass
        q_t = top_mass_mean(m, top_k)
        out.append(ChoiceET(v, len(m), mass, q_e, q_t, (q_e + q_t) / 2))
    return out


def space_et(evaluated: Sequence[Evaluated], top_k: float = DEFAULT_TOP_K) -> dict:
    """Q_e, Q_t and E-T of the whole space (every feasible arch with weight 1)."""
    if not evaluated:
        return {"n": 0, "q_e": None, "q_t": None, "et": None}
    m = [(ev.error, 1.0) for ev in evaluated]
    q_e = sum(e for e, _ in m) / len(m)
    q_t = top_mass_mean(m, top_k)
    return {"n": len(m), "q_e": q_e, "q_t": q_t, "et": (q_e + q_t) / 2}


__all__ = ["Subspace", "subspaces", "read_results", "row_problem", "row_error", "Evaluated", "RowFilter", "feasible",
           "ChoiceET", "weights", "top_mass_mean", "et_errors", "space_et", "DEFAULT_TOP_K"]
