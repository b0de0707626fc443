"""Torch side of ``spacelang scale``: the proxies' scores of one fixed network, for the auto-scaler.

:func:`spacelang.search.autoscale.run_autoscale` hands each candidate over as a space of exactly
one arch; :func:`fixed_space_evaluator` scores that arch like :func:`score_arch` scores any arch
(the mean over ``inits`` random initialisations, the same seeds for every candidate, so the
ranking compares networks, not draws).
"""
from __future__ import annotations

from typing import Sequence

from .registry import Proxy
from .score import score_arch


def fixed_space_evaluator(proxies: Sequence[Proxy], seed: int = 0, inits: int = 5, norms: str = "identity"):
    """``evaluate(fixed_space) -> {proxy name: mean score}``."""

    def evaluate(space):
        r = score_arch(space, space.min_arch(), proxies, seed=seed, inits=inits, norms=norms)
        return {p.name: r[p.name] for p in proxies}
    return evaluate


__all__ = ["fixed_space_evaluator"]
