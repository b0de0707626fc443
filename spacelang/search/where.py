"""Resource bands: ``--where`` expressions and a space's ``constraint``s as intervals per metric.

A band is the intersection of bounds on the metrics of :class:`spacelang.cost.Cost`
(``params``, ``flops``) and, given a device profile, ``latency`` (milliseconds; see
:mod:`spacelang.latency`).  ``--where`` takes small comparison expressions, parsed here by hand
(never ``eval``)::

    params<=23M        flops < 1.5G        18M <= params <= 23M        23M >= params > 18M
    params<=23M, flops<=5G                 params >= 18M and params <= 23M
    latency<=20ms      latency < 1.5s      800us <= latency <= 20ms

Quantities are decimal numbers with an optional exponent and an optional K/M/G suffix
(``23M`` = 23,000,000; ``1.5G``; ``18e6``); they are kept exact (``fractions.Fraction``), so
``22.9M`` is exactly 22,900,000 and strict bounds compare exactly against integer costs.
Latency bounds are times with their unit (``ms``, ``us``, ``s``), kept in milliseconds.
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Iterable, Mapping

import attrs

from ..errors import InfeasibleError, WhereError
from ..util.quantity import TIME_METRICS, human, parse_bound

METRICS = ("params", "flops", "latency")
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|us|µs|s|[KkMG])?)(?![\w.])"
                    r"|(?P<name>[A-Za-z_]\w*)|(?P<op><=|>=|<|>|=)|(?P<sep>,))")


def format_quantity(v, digits: int = 7) -> str:
    """23000000 -> 23M, 22900000 -> 22.9M, 1500000000 -> 1.5G (``digits`` significant digits)."""
    return human(Fraction(v), digits)


def format_bound(metric: str, v, digits: int = 7) -> str:
    """A value of ``metric`` as a bound is written: ``23M`` for counts, ``20ms`` for latency."""
    if metric in TIME_METRICS:
        return f"{float(v):.{digits}g}ms"
    return format_quantity(v, digits)


@attrs.frozen
class Interval:
    """``lo (<|<=) x (<|<=) hi`` with either end open (None)."""

    lo: Fraction | None = None
    hi: Fraction | None = None
    lo_strict: bool = False
    hi_strict: bool = False

    def contains(self, v) -> bool:
        if self.lo is not None and (v < self.lo or (self.lo_strict and v == self.lo)):
            return False
        if self.hi is not None and (v > self.hi or (self.hi_strict and v == self.hi)):
            return False
        return True

    def intersect(self, other: "Interval") -> "Interval":
        lo, ls = self.lo, self.lo_strict
        if other.lo is not None and (lo is None or other.lo > lo or (other.lo == lo and other.lo_strict)):
            lo, ls = other.lo, other.lo_strict
        hi, hs = self.hi, self.hi_strict
        if other.hi is not None and (hi is None or other.hi < hi or (other.hi == hi and other.hi_strict)):
            hi, hs = other.hi, other.hi_strict
        return Interval(lo, hi, ls, hs)

    def empty(self) -> bool:
        if self.lo is None or self.hi is None:
            return False
        return self.lo > self.hi or (self.lo == self.hi and (self.lo_strict or self.hi_strict))

    def overlaps(self, lo, hi) -> bool:
        """Whether the closed range [lo, hi] has a point in this interval."""
        return not self.intersect(Interval(Fraction(lo), Fraction(hi))).empty()

    def closed_int(self) -> tuple[int | None, int | None]:
        """The same interval over the integers as closed ends (costs are integers): fast to test."""
        import math
        lo = hi = None
        if self.lo is not None:
            lo = math.floor(self.lo) + 1 if self.lo_strict else math.ceil(self.lo)
        if self.hi is not None:
            hi = math.ceil(self.hi) - 1 if self.hi_strict else math.floor(self.hi)
        return lo, hi

    def describe(self, metric: str) -> str:
        lo = f"{format_bound(metric, self.lo)} {'<' if self.lo_strict else '<='} " if self.lo is not None else ""
        hi = f" {'<' if self.hi_strict else '<='} {format_bound(metric, self.hi)}" if self.hi is not None else ""
        return f"{lo}{metric}{hi}" if (lo or hi) else f"any {metric}"


@attrs.frozen
class Bounds:
    """Intervals per metric; an arch is in the band when its cost lies in every interval."""

    intervals: Mapping[str, Interval] = attrs.field(factory=dict, converter=lambda d: dict(sorted(d.items())))

    def __bool__(self) -> bool:
        return bool(self.intervals)

    def __and__(self, other: "Bounds") -> "Bounds":
        out = dict(self.intervals)
        for m, iv in other.intervals.items():
            out[m] = out[m].intersect(iv) if m in out else iv
        return Bounds(out)

    def contains(self, cost) -> bool:
        return all(iv.contains(getattr(cost, m)) for m, iv in self.intervals.items())

    def empty_metric(self) -> str | None:
        """A metric whose interval is empty by itself (e.g. ``params>30M, params<20M``), or None."""
        return next((m for m, iv in self.intervals.items() if iv.empty()), None)

    def __str__(self) -> str:
        return ", ".join(iv.describe(m) for m, iv in self.intervals.items()) or "no bounds"

    @classmethod
    def from_space(cls, space) -> "Bounds":
        """The space's ``constraint`` declarations as a band."""
        out = cls()
        for c in space.constraints:
            out = out & cls({c.metric: _interval(c.op, Fraction(c.bound))})
        return out

    @classmethod
    def parse(cls, exprs: str | Iterable[str]) -> "Bounds":
        """Parse one ``--where`` string or several (all must hold)."""
        if isinstance(exprs, str):
            exprs = [exprs]
        out = cls()
        for text in exprs:
            for m, iv in _parse(text):
                out = out & cls({m: iv})
        return out


def constraint_interval(c) -> "Interval":
    """A space's ``constraint`` as an interval (its bound is exact: parsed by the same
    :func:`~spacelang.util.quantity.parse_quantity` as ``--where``)."""
    return _interval(c.op, Fraction(c.bound))


def _interval(op: str, v: Fraction) -> Interval:
    """``metric OP v`` as an interval."""
    if op in ("<=", "<"):
        return Interval(hi=v, hi_strict=op == "<")
    if op in (">=", ">"):
        return Interval(lo=v, lo_strict=op == ">")
    return Interval(lo=v, hi=v)  # "="


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "="}


def _tokens(text: str):
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise WhereError(f"--where {text!r}: cannot read {text[pos:].strip()!r} "
                             f"(expected a metric ({', '.join(METRICS)}), a comparison or a quantity like 23M)")
        if m.group("num") is not None:  # parsed once its metric is known (a count or a time)
            yield "num", m.group("num"), m.start("num")
        elif m.group("name") is not None:
            name = m.group("name")
            if name == "and":
                yield "sep", name, m.start("name")
            elif name in METRICS:
                yield "metric", name, m.start("name")
            else:
                raise WhereError(f"--where {text!r}: unknown metric {name!r} (expected {' or '.join(METRICS)})")
        elif m.group("op") is not None:
            yield "op", m.group("op"), m.start("op")
        else:
            yield "sep", ",", m.start("sep")
        pos = m.end()


def _parse(text: str) -> list[tuple[str, Interval]]:
    if not text.strip():
        raise WhereError("--where needs an expression like 'params<=23M'")
    groups: list[list] = [[]]
    for tok in _tokens(text):
        if tok[0] == "sep":
            groups.append([])
        else:
            groups[-1].append(tok)
    out = []
    for g in groups:
        out.append(_comparison(text, g))
    return out


def _comparison(text: str, g: list) -> tuple[str, Interval]:
    kinds = [t[0] for t in g]
    bad = WhereError(f"--where {text!r}: expected 'METRIC OP Q', 'Q OP METRIC' or 'Q OP METRIC OP Q' "
                     f"with METRIC one of {', '.join(METRICS)} and Q a quantity like 23M")
    metric = next((t[1] for t in g if t[0] == "metric"), None)
    if metric is not None:
        try:
            g = [(k, parse_bound(metric, v) if k == "num" else v, at) for k, v, at in g]
        except WhereError as e:
            raise WhereError(f"--where {text!r}: {e.message}") from None
    if kinds == ["metric", "op", "num"]:
        return g[0][1], _interval(g[1][1], g[2][1])
    if kinds == ["num", "op", "metric"]:
        return g[2][1], _interval(_FLIP[g[1][1]], g[0][1])
    if kinds == ["num", "op", "metric", "op", "num"]:
        a, op1, m, op2, b = (t[1] for t in g)
        up, down = {"<", "<="}, {">", ">="}
        if not ((op1 in up and op2 in up) or (op1 in down and op2 in down)):
            raise WhereError(f"--where {text!r}: a chained comparison must point one way (a <= {m} <= b)")
        return m, _interval(_FLIP[op1], a).intersect(_interval(op2, b))
    raise bad


def check_feasible(space, bounds: Bounds, lo_cost, hi_cost, band: str | None = None) -> None:
    """Raise :class:`InfeasibleError` when the band misses the space's cost range.

    ``lo_cost``/``hi_cost`` bound every arch's cost: ``Cost``s (``space.cost_range()``) or
    mappings from metric to value (:class:`spacelang.search.band.CostRange`'s ``lo``/``hi``).
    ``band`` is how to name the band in the message (default: ``str(bounds)``).
    """
    band = band or str(bounds)
    for m, iv in bounds.intervals.items():
        lo, hi = _metric(lo_cost, m), _metric(hi_cost, m)
        lo, hi = min(lo, hi), max(lo, hi)
        if iv.empty():
            raise InfeasibleError(f"infeasible band {band}: the bounds on {m} exclude each other "
                                  f"(space {space.name} spans {format_bound(m, lo, 4)} – {format_bound(m, hi, 4)} {m})")
        if not iv.overlaps(lo, hi):
            raise InfeasibleError(
                f"infeasible band {band}: space {space.name} spans {format_bound(m, lo, 4)} – "
                f"{format_bound(m, hi, 4)} {m} (smallest – largest subnet)")


def _metric(c, m: str):
    return c[m] if isinstance(c, Mapping) else getattr(c, m)


__all__ = ["Bounds", "Interval", "WhereError", "InfeasibleError", "METRICS", "check_feasible", "constraint_interval",
           "format_quantity", "format_bound"]
