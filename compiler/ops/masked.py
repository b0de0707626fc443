"""Tensor helpers for the masked multi-architecture forward (ViT-ResNAS §2.3, Fig. 6).

One forward of a *union* network runs N_a subnets at once: sample ``s`` of the batch belongs
to arch ``assign[s]`` and every activation of ``s`` is kept zero beyond ``s``'s own widths
(prefix channel masks).  :class:`StepMasks` builds those masks once per step on the device
(``arange(n) < widths[:, None]``, no Python loop over samples) and caches them per distinct
(per-arch widths, n); :class:`Width` is one such mask with the per-sample channel counts.

:func:`masked_layer_norm` is the paper's masked LayerNorm: per-sample statistics over the kept
channels only, so a sub-batch is normalised exactly as its subnet alone normalises it.

:func:`group_batch_norm` is BatchNorm for the convolutional stem: training-mode BatchNorm couples
the samples of a batch, so in multiarch mode each arch's group of samples is normalised by its
own statistics (sums over ``assign`` with ``index_add``), exactly as its sub-batch alone would be.
Running statistics: one update per step, with the usual momentum, towards the mean over the
step's non-empty groups of each group's batch mean and unbiased batch variance (per channel,
over the groups whose width covers the channel).  A subnet trained alone moves them towards its
own sub-batch's statistics; the mean over groups is the same update averaged over the N_a
subnets, so the running statistics track the mixture the step trained on.  (Evaluations
recalibrate BatchNorm per arch anyway: ``compiler/evaluate.recalibrate_bn``.)
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .elastic import lead


class Width:
    """One prefix width per sample: ``mask`` ``(B, n)`` (1 for kept channels; ``None`` when every
    sample keeps all ``n``), ``count`` ``(B,)`` the kept channels (float), ``arch_mask`` ``(N_a, n)``;
    ``tokens`` and ``counts`` are ``mask`` and ``count`` shaped ``(B, 1, n)`` and ``(B, 1, 1)``.
    """

    def __init__(self, n: int, mask: torch.Tensor | None = None, count: torch.Tensor | None = None,
                 arch_mask: torch.Tensor | None = None):
        self.n, self.mask, self.count, self.arch_mask = n, mask, count, arch_mask
        self.tokens = mask[:, None, :] if mask is not None else None
        self.counts = count[:, None, None] if count is not None else None

    @property
    def full(self) -> bool:
        return self.mask is None

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Zero the channels beyond each sample's width in ``(B·r, …, n)`` tokens (``r`` windows per
        sample, sample-major, as window partitioning lays them out)."""
        if self.mask is None:
            return x
        b = self.mask.shape[0]
        if x.dim() == 3 and x.shape[0] == b:
            return x * self.tokens
        return (x.reshape(b, -1, self.n) * self.tokens).reshape(x.shape)

    def apply_map(self, x: torch.Tensor) -> torch.Tensor:
        """The same for ``(B, n, H, W)`` feature maps."""
        return x if self.mask is None else x * self.mask[:, :, None, None]


class StepMasks:
    """Masks of one multiarch step: ``assign`` ``(B,)`` gives each sample's arch in ``[0, n_archs)``."""

    def __init__(self, assign: torch.Tensor, n_archs: int, dtype: torch.dtype, host: torch.Tensor | None = None,
                 arch_tables: dict | None = None):
        self.assign, self.n_archs, self.dtype = assign, n_archs, dtype
        self.device = assign.device
        self._cache: dict = {}
        self._arch = {} if arch_tables is None else arch_tables  # per-arch tables, shared with subsets
        self._counts: torch.Tensor | None = None
        self._host = host  # ``assign`` on the CPU, when the caller has it

    def cached(self, key, build):
        """``build()`` once per step per ``key`` (masks reused by every layer that needs them)."""
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = build()
        return hit

    def per_sample(self, per_arch: Sequence[float], dtype: torch.dtype | None = None) -> torch.Tensor:
        """``(B,)`` tensor of each sample's arch's value."""
        per_arch = tuple(per_arch)
        dtype = dtype or self.dtype
        return self.cached(("per_sample", per_arch, dtype),
                           lambda: torch.tensor(per_arch, dtype=dtype, device=self.device)[self.assign])

    def width(self, per_arch: Sequence[int], n: int) -> Width:
        """The prefix mask of width ``per_arch[assign[s]]`` over ``n`` channels."""
        per_arch = tuple(int(w) for w in per_arch)
        return self.cached(("width", per_arch, n), lambda: self._width(per_arch, n))

    def _width(self, per_arch: tuple[int, ...], n: int) -> Width:
        if all(w >= n for w in per_arch):
            return Width(n)
        key = (per_arch, n)
        if key not in self._arch:
            widths = torch.tensor(per_arch, device=self.device)
            arch_mask = (torch.arange(n, device=self.device) < widths[:, None]).to(self.dtype)
            self._arch[key] = arch_mask, arch_mask.sum(1)
        arch_mask, arch_count = self._arch[key]
        return Width(n, arch_mask[self.assign], arch_count[self.assign], arch_mask)

    def rows(self, present: Sequence[bool]) -> torch.Tensor:
        """Indices of the samples whose arch runs a slot that the archs ``present`` run (ascending)."""
        present = tuple(bool(p) for p in present)
        return self.cached(("rows", present), lambda: self._rows(present))

    def _rows(self, present: tuple[bool, ...]) -> torch.Tensor:
        if self._host is None:  # one device-to-host copy per step, not one per slot
            self._host = self.assign.cpu()
        return torch.nonzero(torch.tensor(present)[self._host]).flatten().to(self.device)

    def subset(self, rows: torch.Tensor) -> "StepMasks":
        """The masks of the samples ``rows`` only (the same archs)."""
        return self.cached(("subset", id(rows)),
                           lambda: StepMasks(self.assign[rows], self.n_archs, self.dtype, arch_tables=self._arch))

    def group_counts(self) -> torch.Tensor:
        """``(N_a,)`` samples per arch (float)."""
        if self._counts is None:
            self._counts = torch.bincount(self.assign, minlength=self.n_archs).to(self.dtype)
        return self._counts


class SlotMasks:
    """The masks of one layer slot in one multiarch step.

    ``values[field]`` holds each arch's value of a width field of the slot's normalised layer
    (``dim``, ``heads``, ``hidden``, …; an arch without the slot holds the union's value there:
    its samples skip the slot); ``present`` says which archs run the slot.
    """

    def __init__(self, step: StepMasks, values: dict[str, tuple[int, ...]], present: tuple[bool, ...]):
        self.step, self._values, self.present = step, values, present

    def values(self, field: str) -> tuple[int, ...]:
        """Each arch's value of ``field``."""
        return self._values[field]

    def uniform(self, field: str) -> bool:
        """Whether every arch running the slot has the same ``field``."""
        return len({v for v, p in zip(self._values[field], self.present) if p}) <= 1

    def width(self, field: str, n: int, factor: int = 1) -> Width:
        """Each sample's leading ``factor × field`` channels out of ``n``."""
        return self.step.width([v * factor for v in self._values[field]], n)

    def out_width(self, n: int) -> Width:
        """Each sample's leading ``dim`` channels out of ``n``, none for the samples whose arch
        skips the slot (a residual branch masked by it adds nothing for them)."""
        return self.step.width([d if p else 0 for d, p in zip(self._values["dim"], self.present)], n)


def head_layout(m: SlotMasks, heads: int, head_dim: int, rows: int):
    """Per-sample re-layout for a step whose archs differ in ``head_dim`` at this slot.

    An arch with ``h`` heads of ``d`` channels uses the leading ``h·d`` channels of each of q, k,
    v, head ``i`` owning channels ``i·d … i·d + d``; the union lays heads out ``heads × head_dim``.
    Returns ``(to_heads, to_flat, scale)``: ``(B, heads·head_dim)`` indices into the ``rows``
    flat channels plus a zero column (index ``rows``), ``(B, rows)`` indices back from the
    union layout plus a zero column, and each sample's ``d^-1/2`` ``(B,)``.
    """
    key = ("head_layout", m.values("heads"), m.values("head_dim"), heads, head_dim, rows)
    return m.step.cached(key, lambda: _head_layout(m, heads, head_dim, rows))


def _head_layout(m: SlotMasks, heads: int, head_dim: int, rows: int):
    dev = m.step.device
    i = torch.arange(heads, device=dev)[:, None]
    c = torch.arange(head_dim, device=dev)[None, :]
    t = torch.arange(rows, device=dev)
    to_heads, to_flat = [], []
    for h, d in zip(m.values("heads"), m.values("head_dim")):  # per arch (N_a of them), not per sample
        to_heads.append(torch.where((i < h) & (c < d), i * d + c, rows).flatten())
        to_flat.append(torch.where(t < h * d, (t // d) * head_dim + t % d, heads * head_dim))
    assign = m.step.assign
    scale = m.step.per_sample([d ** -0.5 for d in m.values("head_dim")])
    return torch.stack(to_heads)[assign], torch.stack(to_flat)[assign], scale


def gather_channels(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(B·r, N, C)`` tokens → ``(B·r, N, K)``: channel ``k`` of sample ``s`` is ``x[…, index[s, k]]``,
    where index ``C`` reads zero."""
    b, k = index.shape
    shape = x.shape
    x = torch.nn.functional.pad(x, (0, 1)).reshape(b, -1, shape[-1] + 1)
    out = torch.gather(x, -1, index[:, None, :].expand(b, x.shape[1], k))
    return out.reshape(*shape[:-1], k)


def masked_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
                      width: Width) -> torch.Tensor:
    """LayerNorm of ``(B·r, …, n)`` tokens over each sample's leading ``width`` channels (Fig. 6d).

    ``weight``/``bias`` are the norm's (largest) parameters; their leading ``n`` entries are used.
    The input must be zero beyond each sample's width; so is the output.  With every sample at
    the full width it is ``F.layer_norm`` itself.
    """
    n = width.n
    w, b = lead(weight, n), lead(bias, n)
    if width.full:
        return F.layer_norm(x, (n,), w, b, eps)
    # in the parameters' precision, as autocast runs layer_norm (float32 statistics under AMP)
    if x.dtype != w.dtype:
        x = x.to(torch.promote_types(x.dtype, w.dtype))
    bsz = width.mask.shape[0]
    y = _MaskedLayerNorm.apply(x.reshape(bsz, -1, n), w, b, width.tokens, width.counts, eps)
    return y.reshape(x.shape)


class _MaskedLayerNorm(torch.autograd.Function):
    """Masked LayerNorm on ``(B, N, n)`` with ``mask`` ``(B, 1, n)`` and ``count`` ``(B, 1, 1)``.

    Written out forward and backward (the textbook LayerNorm gradient restricted to the kept
    channels) because composing it from autograd's element-wise ops takes several times the
    passes over the activations that ``F.layer_norm``'s fused kernel takes.  No double backward.
    """

    @staticmethod
    def forward(ctx, x, w, b, mask, count, eps):
        mean = x.sum(-1, keepdim=True).div_(count)
        xhat = (x - mean).mul_(mask)
        var = (xhat * xhat).sum(-1, keepdim=True).div_(count)
        rstd = var.add_(eps).rsqrt_()
        xhat.mul_(rstd)
        ctx.save_for_backward(xhat, rstd, w, mask, count)
        return torch.addcmul(b * mask, xhat, w)

    @staticmethod
    def backward(ctx, dy):
        xhat, rstd, w, mask, count = ctx.saved_tensors
        dx = dw = db = None
        if ctx.needs_input_grad[1]:
            dw = (dy * xhat).flatten(0, -2).sum(0)
        if ctx.needs_input_grad[2]:
            db = (dy.sum(-2, keepdim=True) * mask).flatten(0, -2).sum(0)
        if ctx.needs_input_grad[0]:
            g = dy * (w * mask)
            a = g.sum(-1, keepdim=True).div_(count)
            c = (g * xhat).sum(-1, keepdim=True).div_(count)
            dx = g.sub_(a).addcmul_(xhat, c, value=-1).mul_(rstd).mul_(mask)
        return dx, dw, db, None, None, None


def linear_masked(linear, x: torch.Tensor, in_features: int, width: Width) -> torch.Tensor:
    """An ``ElasticLinear`` (``in_features`` → ``width.n``) with each sample's output masked to its
    width; the bias goes in with the mask (``mask·(xWᵀ) + mask·b``, one pass over the output)."""
    n = width.n
    w = lead(linear.weight, n, in_features)
    b = lead(linear.bias, n) if linear.bias is not None else None
    if width.full:
        return F.linear(x, w, b)
    y = F.linear(x, w)
    bsz = width.mask.shape[0]
    mask = width.tokens
    out = y.reshape(bsz, -1, n)
    out = torch.addcmul(b * mask, out, mask) if b is not None else out * mask
    return out.reshape(y.shape)


def norm_masked(norm, x: torch.Tensor, width: Width) -> torch.Tensor:
    """:func:`masked_layer_norm` with an ``ElasticLayerNorm``'s parameters."""
    return masked_layer_norm(x, norm.weight, norm.bias, norm.eps, width)


def group_batch_norm(x: torch.Tensor, bn, step: StepMasks, width: Width) -> torch.Tensor:
    """BatchNorm of ``(B, C, H, W)`` maps with each arch's samples normalised by their own statistics.

    ``bn`` is an ``ElasticBatchNorm2d`` (its leading ``C`` channels are used).  In eval mode the
    running statistics are batch-independent and used as they are.  In training mode the batch
    statistics are taken per group (the samples with the same ``assign``), and the running
    statistics move once towards the mean of the groups' statistics (module docstring).
    """
    c = x.shape[1]
    weight, bias = lead(bn.weight, c), lead(bn.bias, c)
    rm, rv = bn.running_mean[:c], bn.running_var[:c]  # plain views: updated in place
    if not bn.training:
        return F.batch_norm(x, rm, rv, weight, bias, False, 0.0, bn.eps)
    if x.dtype != weight.dtype:  # statistics in float32 under AMP, as batch_norm
        x = x.to(torch.promote_types(x.dtype, weight.dtype))
    g, assign = step.n_archs, step.assign
    spatial = x.shape[2] * x.shape[3]
    groups = step.group_counts()
    cnt = (groups * spatial).clamp(min=1.0)[:, None]  # (G, 1); empty groups are never read
    mean = x.new_zeros(g, c).index_add(0, assign, x.sum((2, 3))) / cnt
    xc = x - mean[assign][:, :, None, None]
    var = x.new_zeros(g, c).index_add(0, assign, (xc * xc).sum((2, 3))) / cnt
    y = xc * torch.rsqrt(var + bn.eps)[assign][:, :, None, None] * weight[:, None, None] + bias[:, None, None]
    with torch.no_grad():
        _update_running(bn, rm, rv, mean, var, groups, spatial, width)
    return y


def _update_running(bn, rm, rv, mean, var, groups, spatial: int, width: Width) -> None:
    bn.num_batches_tracked.add_(1)
    momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
    n = groups * spatial
    unbiased = var * (n / (n - 1).clamp(min=1.0))[:, None]
    weight = (groups > 0).to(mean.dtype)[:, None]  # (G, 1): the non-empty groups
    if width.arch_mask is not None:
        weight = weight * width.arch_mask[:, : mean.shape[1]]
    total = weight.sum(0)
    covered = total > 0
    total = total.clamp(min=1.0)
    new_mean = (mean * weight).sum(0) / total
    new_var = (unbiased * weight).sum(0) / total
    rm.copy_(torch.where(covered, rm * (1 - momentum) + new_mean * momentum, rm))
    rv.copy_(torch.where(covered, rv * (1 - momentum) + new_var * momentum, rv))


__all__ = ["Width", "StepMasks", "SlotMasks", "head_layout", "gather_channels", "masked_layer_norm", "norm_masked",
           "linear_masked",
           "group_batch_norm"]
