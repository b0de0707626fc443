"""``mbconv``: the inverted residual of NASViT's convolutional stages (AlphaNet/AttentiveNAS's layer).

Elastic: input and output widths, ``expand`` (the hidden width), the depth-wise ``kernel`` (the
centre of the slot's largest kernel, a view), the SE bottleneck (leading channels of its convs).
Every BatchNorm slices its leading channels.  The skip connection follows the layer's fields:
identity, or average-pooled (``stride``) and projected (bias-free 1×1 conv) when the shape changes.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from spacelang.kinds.mbconv import se_width

from .conv import ElasticKernelConv2d, act, activation
from .elastic import ElasticBatchNorm2d, ElasticConv2d
from .registry import register


def skip_pool(x: torch.Tensor, stride: int) -> torch.Tensor:
    """The skip path's average pooling: ``stride``×``stride`` windows, ceil mode (the output has
    the strided conv's ``ceil(size / stride)`` side; windows cut by the border average what they cover)."""
    return F.avg_pool2d(x, stride, stride, ceil_mode=True, count_include_pad=False)


def squeeze_excite(x: torch.Tensor, reduce, expand) -> torch.Tensor:
    """``x · hsigmoid(expand(relu(reduce(mean(x)))))`` (AttentiveNAS/NASViT's SE; the mean is uncounted)."""
    s = x.mean((2, 3), keepdim=True)
    return x * F.hardsigmoid(expand(F.relu(reduce(s))))


@register("mbconv")
class MBConvOp(nn.Module):
    """The slot's largest inverted residual."""

    carries_maps = True

    def __init__(self, layer):
        super().__init__()
        f = layer.fields
        hid = f.hidden
        self.expand = ElasticKernelConv2d(f.in_dim, hid, 1) if hid != f.in_dim else None
        self.bn1 = ElasticBatchNorm2d(hid) if self.expand is not None else None
        self.dw = ElasticKernelConv2d(hid, hid, f.kernel, depthwise=True)
        self.bn2 = ElasticBatchNorm2d(hid)
        if f.se:
            r = se_width(hid)
            self.se_reduce, self.se_expand = ElasticConv2d(hid, r, 1), ElasticConv2d(r, hid, 1)
        self.proj = ElasticKernelConv2d(hid, f.dim, 1)
        self.bn3 = ElasticBatchNorm2d(f.dim)
        self.skip = ElasticKernelConv2d(f.in_dim, f.dim, 1) if f.project else None

    def forward(self, x: torch.Tensor, layer) -> torch.Tensor:
        f = layer.fields
        h = x
        if f.hidden != f.in_dim:
            h = act(self.bn1(self.expand(h, f.hidden)), f.act)
        h = act(self.bn2(self.dw(h, kernel=f.kernel, stride=f.stride)), f.act)
        if f.se:
            r = se_width(f.hidden)
            h = squeeze_excite(h, lambda s: self.se_reduce(s, r), lambda s: self.se_expand(s, f.hidden))
        h = self.bn3(self.proj(h, f.dim))
        if not f.residual:
            return h
        s = skip_pool(x, f.stride) if f.pool else x
        return h + (self.skip(s, f.dim) if f.project else s)

    def extract(self, layer) -> "MBConv":
        f = layer.fields
        hid = f.hidden
        expand = None
        if hid != f.in_dim:
            expand = nn.Sequential(self.expand.extract(f.in_dim, hid, 1), self.bn1.extract(hid), activation(f.act))
        dw = nn.Sequential(self.dw.extract(hid, hid, f.kernel, f.stride), self.bn2.extract(hid), activation(f.act))
        se = None
        if f.se:
            r = se_width(hid)
            se = SqueezeExcite(self.se_reduce.extract(hid, r), self.se_expand.extract(r, hid))
        proj = nn.Sequential(self.proj.extract(hid, f.dim, 1), self.bn3.extract(f.dim))
        skip = self.skip.extract(f.in_dim, f.dim, 1) if f.project else None
        return MBConv(expand, dw, se, proj, f.residual, f.stride if f.pool else 1, skip)


class SqueezeExcite(nn.Module):
    """Standalone SE: mean, 1×1 conv, ReLU, 1×1 conv, hard sigmoid, scale."""

    def __init__(self, reduce: nn.Conv2d, expand: nn.Conv2d):
        super().__init__()
        self.reduce, self.expand = reduce, expand

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return squeeze_excite(x, self.reduce, self.expand)


class MBConv(nn.Module):
    """Standalone inverted residual of an extracted subnet (``nn.Conv2d``/``nn.BatchNorm2d``)."""

    def __init__(self, expand: nn.Sequential | None, dw: nn.Sequential, se: SqueezeExcite | None,
                 proj: nn.Sequential, residual: bool, pool: int, skip: nn.Conv2d | None):
        super().__init__()
        self.expand, self.dw, self.se, self.proj, self.skip = expand, dw, se, proj, skip
        self.residual, self.pool = residual, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        h = self.dw(h)
        if self.se is not None:
            h = self.se(h)
        h = self.proj(h)
        if not self.residual:
            return h
        s = skip_pool(x, self.pool) if self.pool > 1 else x
        return h + (self.skip(s) if self.skip is not None else s)
