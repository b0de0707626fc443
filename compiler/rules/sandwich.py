"""``sandwich`` (S3 Appendix A, Alg. 2; from BigNAS): the largest, the smallest and ``k`` random
subnets a step, all trained with the labels; their gradients are accumulated (summed) and applied
in one update.  No in-place distillation (S3 reports it collapses transformer training).

The largest subnet's gradient is copied aside after its backward pass (the accumulation itself is
untouched), so the epoch's gradient-conflict ratio between it and the others' sum is logged.
"""
from __future__ import annotations

import torch

from . import register
from .base import Rule, step_rng
from .gradients import Segments, conflicts, flatten


def sandwich_archs(space, seed: int, step: int, k: int, draw) -> list[dict]:
    """``[largest, smallest, k random]`` of ``step`` (the nasvit rule trains the same archs)."""
    rng = step_rng(seed, step)
    return [space.max_arch(), space.min_arch()] + [draw(rng) for _ in range(k)]


@register
class Sandwich(Rule):
    name = "sandwich"
    measures_conflict = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self._segments: Segments | None = None

    def archs(self, space, seed, step, draw):
        return sandwich_archs(space, seed, step, self.cfg.sandwich_k, draw)

    def describe(self) -> str:
        return f"sandwich (largest, smallest and {self.cfg.sandwich_k} random subnets a step)"

    def step(self, ctx, archs):
        total, sup = 0.0, None
        for i, a in enumerate(archs):
            if ctx.empty:
                continue
            _, loss = ctx.run(a)
            ctx.backward(loss)  # gradients of the sandwich's subnets accumulate (Alg. 2, line 5)
            total += float(loss.detach())
            if i == 0 and len(archs) > 1:
                sup = flatten([p.grad for p in ctx.params], ctx.params)  # a copy: .grad keeps accumulating
        ctx.dist.reduce_gradients(ctx.params)
        if len(archs) > 1:
            self._measure(ctx, sup)
        return total

    def _measure(self, ctx, sup) -> None:
        """The conflict ratio of the reduced gradients: ∇sup and (sum − ∇sup)."""
        params = ctx.params
        if sup is None:  # an empty slice on this rank still takes part in the reduction
            sup = torch.zeros(sum(p.numel() for p in params), device=params[0].device)
        ctx.dist.all_reduce_sum(sup)
        if self._segments is None:
            self._segments = Segments(params)
        total = flatten([p.grad for p in params], params)
        pair = conflicts(sup, total - sup, self._segments)
        self.meter.add(pair, pair)
