"""``conv``: convolution + BatchNorm + activation, and the convolutional pieces NASViT's ops share.

NASViT's ops (``conv``, ``mbconv``, ``mbpool``, ``nasvit_transformer``) carry ``(B, C, H, W)``
feature maps from layer to layer (``carries_maps``: the supernet refuses to mix them with ops
that carry tokens).

:class:`ElasticKernelConv2d` holds the slot's largest kernel once; a smaller kernel is its centre
(``w[..., s:e, s:e]``, a view, as AlphaNet/AttentiveNAS slice it), and elastic channels are
leading slices.  Depth-wise convolutions (``depthwise=True``) slice channels alone.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .elastic import ElasticBatchNorm2d, lead
from .registry import register

ACTIVATIONS = {"swish": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "none": nn.Identity}
_ACT_FN = {"swish": F.silu, "relu": F.relu, "gelu": F.gelu, "none": lambda x: x}


def activation(name: str) -> nn.Module:
    """The standalone activation module named ``name`` (``swish`` is ``nn.SiLU``)."""
    return ACTIVATIONS[name]()


def act(x: torch.Tensor, name: str) -> torch.Tensor:
    """Apply the activation named ``name`` (the same function :func:`activation`'s module runs)."""
    return _ACT_FN[name](x)


def centre(t: torch.Tensor, kernel: int) -> torch.Tensor:
    """The centred ``kernel``×``kernel`` block of the last two dims of ``t`` (a view)."""
    k = t.shape[-1]
    if kernel == k:
        return t
    if kernel > k or (k - kernel) % 2:
        raise ValueError(f"kernel {kernel} is not a centred sub-kernel of the supernet's {k}")
    s = (k - kernel) // 2
    return t[..., s:s + kernel, s:s + kernel]


class ElasticKernelConv2d(nn.Module):
    """A bias-free ``nn.Conv2d`` at its largest channels and kernel, "same" padding.

    ``depthwise``: one filter per channel (``groups`` = channels).  ``forward(x, out, kernel,
    stride)`` runs the leading channels and the centred kernel; ``extract`` copies them."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, depthwise: bool = False):
        super().__init__()
        self.depthwise = depthwise
        self.in_channels, self.out_channels, self.kernel = in_channels, out_channels, kernel
        fan_in = 1 if depthwise else in_channels
        self.weight = nn.Parameter(torch.empty(out_channels, fan_in, kernel, kernel))
        # MobileNet/EfficientNet's init (timm): normal with std sqrt(2 / fan_out)
        nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / (kernel * kernel * (1 if depthwise else out_channels))))

    def _weight(self, c_in: int, c_out: int, kernel: int) -> torch.Tensor:
        w = lead(self.weight, c_out) if self.depthwise else lead(self.weight, c_out, c_in)
        return centre(w, kernel)

    def forward(self, x: torch.Tensor, out_channels: int | None = None, kernel: int | None = None,
                stride: int = 1) -> torch.Tensor:
        c = x.shape[1]
        o = c if self.depthwise else (out_channels or self.out_channels)
        k = kernel or self.kernel
        return F.conv2d(x, self._weight(c, o, k), None, stride, k // 2, 1, c if self.depthwise else 1)

    def extract(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Conv2d:
        groups = in_channels if self.depthwise else 1
        m = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False,
                      device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            m.weight.copy_(self._weight(in_channels, out_channels, kernel))
        return m

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel}, "
                f"depthwise={self.depthwise}")


@register("conv")
class ConvOp(nn.Module):
    """conv (elastic width and kernel) → BatchNorm → activation, on maps."""

    carries_maps = True

    def __init__(self, layer):
        super().__init__()
        f = layer.fields
        self.conv = ElasticKernelConv2d(f.in_dim, f.dim, f.kernel)
        self.bn = ElasticBatchNorm2d(f.dim)

    def forward(self, x: torch.Tensor, layer) -> torch.Tensor:
        f = layer.fields
        return act(self.bn(self.conv(x, f.dim, f.kernel, f.stride)), f.act)

    def extract(self, layer) -> nn.Sequential:
        f = layer.fields
        return nn.Sequential(self.conv.extract(f.in_dim, f.dim, f.kernel, f.stride), self.bn.extract(f.dim),
                             activation(f.act))
