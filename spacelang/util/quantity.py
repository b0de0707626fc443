"""Quantities like ``23M`` and ``1.5G`` and times like ``20ms``: exact parsers, one human formatter.

Both the ``.space`` parser (``constraint params <= 8.2M``, ``constraint latency <= 20ms``) and
``--where`` bands read quantities and times here (:func:`parse_bound`), exactly
(``fractions.Fraction``: ``8.2M`` is 8,200,000, not 8199999.999…), so the checker, the samplers
and the S3 row filter agree on every bound.  Times are kept in milliseconds.
"""
from __future__ import annotations

import re
from fractions import Fraction

from ..errors import WhereError

SCALE = {"": 1, "K": 10**3, "k": 10**3, "M": 10**6, "G": 10**9}
#: a decimal number with an optional exponent and an optional K/M/G suffix
PATTERN = r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[KkMG]?"
_QUANTITY = re.compile(r"\s*(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)([KkMG]?)\s*")
#: the largest bound we accept: far beyond any network, far below float overflow
MAX_QUANTITY = 10**18


def parse_quantity(text: str) -> Fraction:
    """``"23M"`` → ``Fraction(23000000)``, exactly; :class:`WhereError` for anything else."""
    m = _QUANTITY.fullmatch(text)
    if not m:
        raise WhereError(f"{text.strip()!r} is not a quantity (a number with an optional K, M or G: 23M, 1.5G, 18e6)")
    num = m.group(1)
    if "e" in num.lower() and abs(int(num.lower().split("e")[1])) > 30:
        raise WhereError(f"quantity {text.strip()!r} is out of range (at most {MAX_QUANTITY:.0e})")
    v = Fraction(num) * SCALE[m.group(2)]
    if v > MAX_QUANTITY:
        raise WhereError(f"quantity {text.strip()!r} is out of range (at most {MAX_QUANTITY:.0e})")
    return v


#: time units of latency bounds, in milliseconds (the unit latency is reported in)
TIME_UNITS = {"ms": Fraction(1), "us": Fraction(1, 1000), "µs": Fraction(1, 1000), "s": Fraction(1000)}
#: a decimal number with a time unit (``20ms``, ``1.5s``, ``800us``)
TIME_PATTERN = r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|us|µs|s)"
_TIME = re.compile(r"\s*(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(ms|us|µs|s)\s*")
#: metrics whose bounds are times (in milliseconds); every other metric counts (params, FLOPs)
TIME_METRICS = frozenset({"latency"})


def parse_time(text: str) -> Fraction:
    """``"20ms"`` → ``Fraction(20)`` milliseconds, exactly (``1.5s`` → 1500, ``800us`` → 4/5);
    :class:`WhereError` for anything else (a time needs its unit)."""
    m = _TIME.fullmatch(text)
    if not m:
        raise WhereError(f"{text.strip()!r} is not a time (a number with a unit ms, us or s: 20ms, 1.5s, 800us)")
    num = m.group(1)
    if "e" in num.lower() and abs(int(num.lower().split("e")[1])) > 30:
        raise WhereError(f"time {text.strip()!r} is out of range")
    v = Fraction(num) * TIME_UNITS[m.group(2)]
    if v > MAX_QUANTITY:
        raise WhereError(f"time {text.strip()!r} is out of range")
    return v


def parse_bound(metric: str, text: str) -> Fraction:
    """The bound ``text`` of ``metric``: a time in milliseconds for a time metric (``latency``),
    a quantity (``9M``) otherwise; a unit that does not fit the metric is a :class:`WhereError`."""
    if metric in TIME_METRICS:
        if _QUANTITY.fullmatch(text):
            raise WhereError(f"{text.strip()!r} is not a time: a {metric} bound needs its unit (20ms, 1.5s, 800us)")
        return parse_time(text)
    if _TIME.fullmatch(text):
        raise WhereError(f"{text.strip()!r} is a time: a {metric} bound is a count like 9M or 1.5G")
    return parse_quantity(text)


def exact_number(v: Fraction) -> int | Fraction:
    """An integral Fraction as an ``int`` (costs are integers), any other one unchanged."""
    return int(v) if v.denominator == 1 else v


def human(n, digits: int = 3) -> str:
    """``1234567`` → ``1.23M``; ``250000`` → ``250K``; ``1.5e9`` → ``1.5G`` (``digits`` significant)."""
    v = float(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.{digits}g}{unit}"
    return f"{v:.{digits}g}" if v != int(v) else str(int(v))


__all__ = ["parse_quantity", "parse_time", "parse_bound", "exact_number", "human", "PATTERN", "SCALE",
           "MAX_QUANTITY", "TIME_UNITS", "TIME_PATTERN", "TIME_METRICS"]
