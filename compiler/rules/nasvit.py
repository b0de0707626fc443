"""``nasvit`` (NASViT §2–§3, Appendix C.1 Alg. 1): gradient-conflict-aware sandwich training.

A step trains the sandwich of §2 — "four sub-networks: the smallest sub-network, the supernet
(the largest sub-network), and two random sub-networks" — with ``k`` (``--sandwich-k``, default
2) random subnets:

- the largest subnet with the labels (the run's criterion: label smoothing, mixup as configured);
- the smallest and the ``k`` random subnets with in-place distillation from the largest subnet's
  output on the same images, detached (Alg. 1's θ_detach): KL or AlphaNet's α-divergence (``--kd``);
- the two gradient groups — ∇sup (the largest) and ∇sub (the sum of the others) — are kept apart,
  summed over the ranks (one all-reduce of both), and combined by Eq. 1 (``--prioritize sub``:
  ∇sup projected on the normal plane of ∇sub when they conflict; ``sup``: the other way round;
  ``none``: plain sum) over the whole parameter vector or per tensor (``--projection``);
- the epoch's conflict ratio (Table 4) is logged before (``conflict_raw``) and after
  (``conflict``) the projection.

Switchable scaling layers (§3) are part of the network (``nasvit_transformer``'s ``scale_init``),
the weak recipe of Table 5 is ``--recipe nasvit``; neither is this rule's business.
"""
from __future__ import annotations

import torch

from spacelang.errors import OptionError

from . import register
from .base import Rule
from .gradients import PRIORITIES, SCOPES, Segments, combine, conflicts, flatten, present, take_grads
from .kd import DIVERGENCES
from .sandwich import sandwich_archs


@register
class NASViT(Rule):
    name = "nasvit"
    measures_conflict = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self.divergence = DIVERGENCES[cfg.kd]
        self._segments: Segments | None = None

    @classmethod
    def check(cls, cfg) -> None:
        if cfg.kd not in DIVERGENCES:
            raise OptionError(f"kd must be one of {', '.join(DIVERGENCES)}, got {cfg.kd!r}")
        if cfg.prioritize not in PRIORITIES:
            raise OptionError(f"prioritize must be one of {', '.join(PRIORITIES)}, got {cfg.prioritize!r}")
        if cfg.projection not in SCOPES:
            raise OptionError(f"projection must be one of {', '.join(SCOPES)}, got {cfg.projection!r}")

    def archs(self, space, seed, step, draw):
        return sandwich_archs(space, seed, step, self.cfg.sandwich_k, draw)

    def describe(self) -> str:
        c = self.cfg
        how = "plain sum" if c.prioritize == "none" else f"prioritise {c.prioritize}, {c.projection} projection"
        return (f"nasvit (largest with labels; smallest and {c.sandwich_k} random with in-place {c.kd} KD; "
                f"gradients: {how})")

    def step(self, ctx, archs):
        params = ctx.params
        total, teacher = 0.0, None
        if not ctx.empty:
            out, loss = ctx.run(archs[0])
            ctx.backward(loss)
            total += float(loss.detach())
            teacher = out.detach()
        sup_grads = take_grads(params)
        for a in archs[1:]:
            if ctx.empty:
                continue
            _, kd = ctx.run(a, lambda o: self.divergence(o, teacher))
            ctx.backward(kd)
            total += float(kd.detach())
        sub_grads = take_grads(params)

        # both groups and "which parameters have a gradient" summed over the ranks in one call
        n = sum(p.numel() for p in params)
        device = params[0].device
        flat = ctx.dist.all_reduce_sum(torch.cat([flatten(sup_grads, params), flatten(sub_grads, params),
                                                  present(sup_grads, device) + present(sub_grads, device)]))
        sup, sub, has = flat[:n], flat[n:2 * n], flat[2 * n:]
        if self._segments is None:
            self._segments = Segments(params)
        seg = self._segments
        raw = conflicts(sup, sub, seg)
        sup, sub = combine(sup, sub, self.cfg.prioritize, self.cfg.projection, seg)
        self.meter.add(conflicts(sup, sub, seg) if self.cfg.prioritize != "none" else raw, raw)
        update = sup + sub
        offset = 0
        for p, got in zip(params, has.tolist()):
            k = p.numel()
            if got > 0:  # a parameter no subnet used keeps no gradient (AdamW then leaves it alone)
                p.grad = update[offset:offset + k].view_as(p).to(p.dtype)
            offset += k
        return total
