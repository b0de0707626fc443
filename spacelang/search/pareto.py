"""Pareto fronts of evaluated archs: highest accuracy for the least params or FLOPs."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")


def _score(x) -> float:
    return -math.inf if x is None or (isinstance(x, float) and math.isnan(x)) else x


def pareto_front(items: Iterable[T], cost: Callable[[T], float], score: Callable[[T], float]) -> list[T]:
    """The items no other item beats on both counts (lower-or-equal ``cost`` and higher-or-equal
    ``score``, one of them strictly), sorted by increasing cost.  Among exact ties the first
    item is kept.  NaN scores count as the worst score."""
    indexed = sorted(enumerate(items), key=lambda iv: (cost(iv[1]), -_score(score(iv[1])), iv[0]))
    front: list[T] = []
    best = -math.inf
    for _, it in indexed:
        s = _score(score(it))
        if s > best:
            front.append(it)
            best = s
    return front


def dominates(a: Sequence[float], b: Sequence[float], maximize: Sequence[bool]) -> bool:
    """Whether ``a`` is at least as good as ``b`` in every objective and better in one."""
    better = False
    for x, y, up in zip(a, b, maximize):
        if not up:
            x, y = -x, -y
        if x < y:
            return False
        if x > y:
            better = True
    return better


def pareto_front_n(items: Sequence[T], objectives: Callable[[T], Sequence[float]],
                   maximize: Sequence[bool]) -> list[T]:
    """Non-dominated items for any number of objectives (O(n²); fine for search histories)."""
    vals = [tuple(objectives(it)) for it in items]
    out = []
    for i, it in enumerate(items):
        if not any(dominates(vals[j], vals[i], maximize) for j in range(len(items)) if j != i):
            out.append(it)
    return out


def front_of_records(records: Iterable[dict[str, Any]], metric: str = "params") -> list[dict[str, Any]]:
    """The Pareto front of search records (``{"arch", "score", "params", "flops"}``) over
    accuracy (``score``, higher is better) and ``metric`` (lower is better)."""
    return pareto_front(list(records), cost=lambda r: r[metric], score=lambda r: r["score"])


__all__ = ["pareto_front", "pareto_front_n", "dominates", "front_of_records"]
