"""``multiarch`` (ViT-ResNAS §2.3, Fig. 5–6; Appendix C): N_a subnets in one forward/backward pass.

Each step draws ``N_a`` archs (``--na``, default 16) from ``(seed, step)``; sample ``i`` of the
step's *global* batch trains arch ``i mod N_a`` (a process adds its slice's offset), so the
sub-batches — and the weights — of a 2-process run are those of a 1-process run with twice the
batch.  One masked forward pass of the largest network (``net.forward_multi``: channel masks,
masked LayerNorm, per-sample skipping; ``compiler/multiarch.py``) computes every sample's logits
under its own subnet, and one backward pass of the mean loss over the global batch trains them.

``--warmup-sampling E``: for the first ``E`` epochs the sampled range widens from the largest
subnet alone to the whole space (``warmup.py``; the paper: 25% of the epochs).

``--token-label``: token labelling with patch-wise CutMix/Mixup switching (§2.4,
``compiler/tokenlabel.py``): the rule mixes the batch itself (the loop's mixup is bypassed; the
run's ``--mixup``/``--cutmix`` alphas and label smoothing apply) and adds the token loss — the
cross-entropy of the head's token classifier against the token labels, averaged over the last
stage's tokens — to the image loss, unscaled.  The space's head needs ``token_label true``.
"""
from __future__ import annotations

import torch

from spacelang.errors import CompileError, OptionError

from .. import tokenlabel as tl
from ..evaluate import fit_input
from ..multiarch import check_multiarch
from ..precision import autocast
from . import register
from .base import Rule, step_rng
from .warmup import sample_warm, warmup_progress

#: how the fix for a head without a token classifier reads
TOKEN_HEAD_FIX = "write `head linear { token_label true }` in the space"


@register
class MultiArch(Rule):
    name = "multiarch"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.warmup_steps = 0

    @property
    def mixes_inputs(self) -> bool:
        return bool(self.cfg.token_label)

    @classmethod
    def check(cls, cfg) -> None:
        if isinstance(cfg.na, bool) or not isinstance(cfg.na, int) or cfg.na < 1:
            raise OptionError(f"multiarch needs N_a >= 1 subnets a step, got --na {cfg.na!r}")
        if not cfg.warmup_sampling >= 0:
            raise OptionError(f"--warmup-sampling must be a non-negative number of epochs, got {cfg.warmup_sampling!r}")

    def check_space(self, space) -> None:
        check_multiarch(space)
        if self.cfg.token_label:
            fields = space.resolve(space.max_arch()).head.fields
            if not getattr(fields, "token_label", False):
                raise CompileError(f"--token-label needs a token-labelling classifier in the head of space "
                                   f"{space.name}", hint=TOKEN_HEAD_FIX)
            grids = {space.resolve(a).head.fields.in_size for a in (space.max_arch(), space.min_arch())}
            if len(grids) > 1:
                raise CompileError(f"--token-label needs one token grid in the last stage of space {space.name}; "
                                   f"its subnets end on {' or '.join(f'{g}×{g}' for g in sorted(grids))}")

    def setup(self, steps_per_epoch, total_steps):
        self.warmup_steps = round(self.cfg.warmup_sampling * steps_per_epoch)

    def archs(self, space, seed, step, draw):
        rng = step_rng(seed, step)
        t = warmup_progress(step, self.warmup_steps)
        if t >= 1.0:
            return [draw(rng) for _ in range(self.cfg.na)]
        return [sample_warm(space, rng, t) for _ in range(self.cfg.na)]

    def describe(self) -> str:
        c = self.cfg
        parts = [f"multiarch ({c.na} subnets a step in one masked forward/backward pass"]
        if c.warmup_sampling:
            parts.append(f"sampling warm-up over {c.warmup_sampling:g} epochs")
        if c.token_label:
            how = {(True, True): "CutMix/Mixup switching", (True, False): "Mixup",
                   (False, True): "patch-wise CutMix", (False, False): "no mixing"}[(c.mixup > 0, c.cutmix > 0)]
            parts.append(f"token labelling with {how}")
        return ", ".join(parts) + ")"

    def step(self, ctx, archs):
        if ctx.empty:
            ctx.dist.reduce_gradients(ctx.params)
            return 0.0
        net, n, na = ctx.net, len(ctx.x), len(archs)
        assign = (torch.arange(ctx.offset, ctx.offset + n) % na).to(ctx.x.device)
        x = fit_input(ctx.x, net.input_shape(archs[0]))
        tokens = bool(self.cfg.token_label)
        if tokens:
            grid = net.resolve(archs[0]).head.fields.in_size
            draw = tl.draw_mix(tl.mix_rng(self.cfg.seed, ctx.step), grid, self.cfg.mixup, self.cfg.cutmix)
            x, target, token_target = tl.mix_batch(x, ctx.labels, draw, grid, net.space.classes,
                                                   self.cfg.label_smoothing, ctx.offset)
        with autocast(ctx.device, ctx.amp):
            out = net.forward_multi(x, archs, assign, tokens=tokens)
            if tokens:
                logits, token_logits = out
                per_sample = (tl.soft_cross_entropy(logits, target)
                              + tl.soft_cross_entropy(token_logits, token_target).mean(1))
                loss = per_sample.mean()
            else:
                logits = out
                loss = ctx.criterion(logits, ctx.target)
        ctx.backward(loss)
        ctx.dist.reduce_gradients(ctx.params)
        with torch.no_grad():
            groups = torch.unique(assign).tolist()  # the archs with samples in this slice
            if tokens:
                means = [float(per_sample[assign == g].mean()) for g in groups]
            else:
                means = [float(ctx.criterion(logits[assign == g].detach(), ctx.target[assign == g]))
                         for g in groups]
        # the loop logs this over N_a: the mean over the archs of each one's sub-batch loss
        return na * sum(means) / len(means)

