"""Sampling warm-up (ViT-ResNAS Appendix C; filter warm-up / progressive shrinking).

"At the beginning, we only sample and train the largest sub-network in a search space.  As the
super-network training proceeds, we gradually sample and train sub-networks with smaller widths
and depths.  After 25% of total training epochs, sub-networks with any width and depth can be
sampled and trained."

The paper does not say how "gradually" widens; here it is linear in the training progress
``t = step / warmup_steps``: every dimension (widths, heads, hidden sizes, depths, optional
blocks' presence) samples uniformly from its largest ``ceil(t · n)`` choices (at least one) of
its ``n``.  At ``t = 0`` that is the largest subnet alone (every optional block present); an
optional block may be skipped once ``t > 1/2``; at ``t ≥ 1`` every choice is open.  Archs are
built by :meth:`Space.complete` (gates first, then the dimensions they make active), so every
arch is a point of the space; with every choice open the draws are exactly ``space.sample``'s.
A function of the step alone: resumed and multi-process runs sample the same archs.
"""
from __future__ import annotations

import math
import random


def warmup_progress(step: int, warmup_steps: int) -> float:
    """``t`` in [0, 1]: how far the sampled range has widened at ``step`` (1 without a warm-up)."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)


def open_choices(size: int, t: float) -> int:
    """How many of a dimension's ``size`` choices (its largest) are sampled at progress ``t``."""
    # the tolerance keeps t = k/n from opening one choice more through float rounding
    return min(size, max(1, math.ceil(t * size - 1e-9)))


def sample_warm(space, rng: random.Random, t: float) -> dict:
    """An arch drawn at warm-up progress ``t``: each dimension uniform over its open choices."""
    def pick(d):
        m = open_choices(d.size, t)
        return d.choices[d.size - m + rng.randrange(m)]
    return space.complete(pick, pick)


def sampled_ranges(space, t: float) -> dict[str, tuple]:
    """Every dimension's sampled choices at progress ``t`` (for the log and the tests)."""
    return {d.path: d.choices[d.size - open_choices(d.size, t):] for d in space.dims}


__all__ = ["warmup_progress", "open_choices", "sample_warm", "sampled_ranges"]
