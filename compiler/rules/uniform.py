"""``uniform`` (AutoFormer §3.3): one subnet sampled uniformly a step; its loss trains the shared weights."""
from __future__ import annotations

from . import register
from .base import Rule, step_rng


@register
class Uniform(Rule):
    name = "uniform"

    def archs(self, space, seed, step, draw):
        return [draw(step_rng(seed, step))]

    def describe(self) -> str:
        return "uniform (one random subnet a step)"
