"""Elastic primitives: each holds its largest weight once and runs a leading slice of it.

Weight entanglement (AutoFormer, Eq. 6): every smaller choice uses the leading part of the largest
weight, so the weights of any two choices are nested.  The slices are views (``w[:out, :in]``) —
never copies — so gradients of every subnet land in the one shared tensor.  A slice that covers the
whole tensor returns the tensor itself (no slicing node in the autograd graph at all).

``extract(...)`` copies the active slice into an ordinary ``nn.Linear``/``nn.LayerNorm``/
``nn.Conv2d``/``nn.BatchNorm2d``.  These primitives deliberately do not subclass the ``nn`` layers:
tools that treat every ``nn.Linear`` the same (initialisers, FLOP counters) must not mistake a
supernet weight for a standalone layer.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

from .functional import split_qkv


def lead(t: torch.Tensor, *sizes: int) -> torch.Tensor:
    """The leading ``sizes`` block of ``t`` (a view; ``t`` itself when the block is all of it)."""
    if all(s == n for s, n in zip(sizes, t.shape)):
        return t
    for s, n in zip(sizes, t.shape):
        if s > n:
            raise ValueError(f"width {s} exceeds the supernet's largest width {n} for this weight")
    return t[tuple(slice(0, s) for s in sizes)]


def _copy(param: torch.Tensor | None, value: torch.Tensor | None) -> None:
    if param is not None:
        with torch.no_grad():
            param.copy_(value)


class ElasticLinear(nn.Module):
    """``nn.Linear`` at its largest size; ``forward(x, in_features, out_features)`` runs the leading slice."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        trunc_normal_(self.weight, std=0.02)  # timm's ViT/Swin init

    def forward(self, x: torch.Tensor, in_features: int | None = None, out_features: int | None = None,
                bias: bool = True) -> torch.Tensor:
        i = in_features or self.in_features
        o = out_features or self.out_features
        b = lead(self.bias, o) if bias and self.bias is not None else None
        return F.linear(x, lead(self.weight, o, i), b)

    def extract(self, in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
        bias = bias and self.bias is not None
        m = nn.Linear(in_features, out_features, bias=bias, device=self.weight.device, dtype=self.weight.dtype)
        _copy(m.weight, lead(self.weight, out_features, in_features))
        if bias:
            _copy(m.bias, lead(self.bias, out_features))
        return m

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ElasticQKV(nn.Module):
    """The q, k, v projections at their largest width, stored as one ``(3·Q, D)`` weight in timm's
    layout (the q rows, then the k rows, then the v rows).

    A subnet with ``q`` channels of each uses the leading ``q`` rows of each third: three linears
    on views.  At the full width it is one linear on the whole weight, exactly timm's.
    """

    def __init__(self, in_features: int, qkv_dim: int, bias: bool = True):
        super().__init__()
        self.in_features, self.qkv_dim = in_features, qkv_dim
        self.weight = nn.Parameter(torch.empty(3 * qkv_dim, in_features))
        self.bias = nn.Parameter(torch.zeros(3 * qkv_dim)) if bias else None
        trunc_normal_(self.weight, std=0.02)

    def _part(self, t: torch.Tensor, j: int) -> torch.Tensor:
        return t[j * self.qkv_dim:(j + 1) * self.qkv_dim]

    def forward(self, x: torch.Tensor, heads: int, head_dim: int, bias: bool = True):
        """q, k, v as ``(B, heads, N, head_dim)`` from ``(B, N, C)`` tokens."""
        b, n, c = x.shape
        q = heads * head_dim
        bias = bias and self.bias is not None
        if q == self.qkv_dim and c == self.in_features and (bias or self.bias is None):
            return split_qkv(F.linear(x, self.weight, self.bias), heads, head_dim)
        return tuple(F.linear(x, lead(self._part(self.weight, j), q, c),
                              lead(self._part(self.bias, j), q) if bias else None)
                     .view(b, n, heads, head_dim).transpose(1, 2) for j in range(3))

    def packed(self, x: torch.Tensor, q: int, bias: bool = True) -> torch.Tensor:
        """``(…, 3·q)``: the leading ``q`` channels of each of q, k and v in one linear (timm's
        packed layout, the input at its own width)."""
        c = x.shape[-1]
        w, b = self.weight, self.bias if bias else None
        if q != self.qkv_dim or c != self.in_features:
            w = w.view(3, self.qkv_dim, -1)[:, :q, :c].reshape(3 * q, c)
            b = b.view(3, self.qkv_dim)[:, :q].reshape(-1) if b is not None else None
        return F.linear(x, w, b)

    def extract(self, in_features: int, qkv_dim: int, bias: bool = True) -> nn.Linear:
        """``nn.Linear(in, 3·qkv_dim)`` in timm's layout."""
        bias = bias and self.bias is not None
        m = nn.Linear(in_features, 3 * qkv_dim, bias=bias, device=self.weight.device, dtype=self.weight.dtype)
        _copy(m.weight, torch.cat([lead(self._part(self.weight, j), qkv_dim, in_features) for j in range(3)]))
        if bias:
            _copy(m.bias, torch.cat([lead(self._part(self.bias, j), qkv_dim) for j in range(3)]))
        return m

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, qkv_dim={self.qkv_dim}, bias={self.bias is not None}"


class ElasticLayerNorm(nn.Module):
    """``nn.LayerNorm`` over the leading ``dim`` channels, statistics taken over the active channels only."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
        d = dim or self.dim
        return F.layer_norm(x, (d,), lead(self.weight, d), lead(self.bias, d), self.eps)

    def extract(self, dim: int) -> nn.LayerNorm:
        m = nn.LayerNorm(dim, eps=self.eps, device=self.weight.device, dtype=self.weight.dtype)
        _copy(m.weight, lead(self.weight, dim))
        _copy(m.bias, lead(self.bias, dim))
        return m

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


class ElasticConv2d(nn.Module):
    """``nn.Conv2d`` with elastic input and output channels (kernel, stride and padding fixed)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, padding: int = 0,
                 bias: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        # PyTorch's own Conv2d init (timm keeps it for patch embeddings), at the largest fan-in
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(in_channels * kernel * kernel)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, out_channels: int | None = None) -> torch.Tensor:
        o = out_channels or self.out_channels
        w = lead(self.weight, o, x.shape[1])
        b = lead(self.bias, o) if self.bias is not None else None
        return F.conv2d(x, w, b, self.stride, self.padding)

    def extract(self, in_channels: int, out_channels: int) -> nn.Conv2d:
        m = nn.Conv2d(in_channels, out_channels, self.kernel, self.stride, self.padding,
                      bias=self.bias is not None, device=self.weight.device, dtype=self.weight.dtype)
        _copy(m.weight, lead(self.weight, out_channels, in_channels))
        if self.bias is not None:
            _copy(m.bias, lead(self.bias, out_channels))
        return m

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}")


class ElasticBatchNorm2d(nn.Module):
    """``nn.BatchNorm2d`` over the leading channels; running statistics are updated in place on the slice."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.channels, self.eps, self.momentum = channels, eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if self.training:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, lead(self.running_mean, c), lead(self.running_var, c), lead(self.weight, c),
                            lead(self.bias, c), self.training, self.momentum, self.eps)

    def extract(self, channels: int) -> nn.BatchNorm2d:
        m = nn.BatchNorm2d(channels, eps=self.eps, momentum=self.momentum, device=self.weight.device,
                           dtype=self.weight.dtype)
        _copy(m.weight, lead(self.weight, channels))
        _copy(m.bias, lead(self.bias, channels))
        _copy(m.running_mean, lead(self.running_mean, channels))
        _copy(m.running_var, lead(self.running_var, channels))
        _copy(m.num_batches_tracked, self.num_batches_tracked)
        return m

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}, momentum={self.momentum}"


def new_param(*shape: int, std: float = 0.02) -> nn.Parameter:
    """A parameter drawn like timm's position embeddings and class tokens (truncated normal, std 0.02)."""
    p = nn.Parameter(torch.empty(*shape))
    trunc_normal_(p, std=std)
    return p


def copy_param(t: torch.Tensor) -> nn.Parameter:
    """A standalone parameter holding a copy of ``t`` (for extracted modules)."""
    return nn.Parameter(t.detach().clone())
