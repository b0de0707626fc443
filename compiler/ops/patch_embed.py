"""``patch_embed``: strided convolution to tokens (elastic output width), optional LayerNorm (Swin),
class token and absolute position embedding (ViT/DeiT/AutoFormer); with ``norm_before`` As-ViT's
re-embedding (each unfolded patch normalised, then projected without bias).

Elastic kernel: the op holds the slot's largest kernel K once; an arch with kernel k < K uses the
k×k sub-window at offset ``(K − k) // 2`` in both axes (:func:`sub_window`) — the centre for an
even K − k, and for an odd one the centre shifted half a tap up and left.  Why that side: the
As-ViT spaces pad ``(kernel − stride + 1) // 2``, i.e. they extend the stride cell by
⌈(k − s)/2⌉ pixels before and ⌊(k − s)/2⌋ after.  For the largest kernels As-ViT uses (K1 = 8 at
stride 4, K = 4 at stride 2: K − s even) the sub-window at ``(K − k) // 2`` is exactly the set of
pixels a standalone k-kernel with its own padding covers (offset = padding(K) − padding(k) for every
k), so a smaller kernel shares the weights that see the same pixels.  The offset depends on the
kernels only, never on stride, padding or dilation, so re-tokenization (which changes those) keeps
every tap on its weight.

Stride, padding and dilation never change a weight's shape: the op reads them from the arch's
layer fields (they may be choices, and As-ViT §4's re-tokenization changes them during training).
Dilation spaces the taps (``F.conv2d``/``F.unfold`` dilation)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from spacelang.errors import CompileError

from . import functional as Fn
from . import masked as M
from .elastic import ElasticConv2d, ElasticLayerNorm, ElasticLinear, lead
from .embed import ElasticTokens, TokenHead, add_tokens
from .registry import register


def sub_window(t: torch.Tensor, kernel: int) -> torch.Tensor:
    """The ``kernel``×``kernel`` sub-window of the last two dims of ``t`` at offset
    ``(K − kernel) // 2`` (a view; ``t`` itself at the full kernel).  See the module docstring."""
    k_max = t.shape[-1]
    if kernel == k_max:
        return t
    if kernel > k_max:
        raise CompileError(f"patch_embed: kernel {kernel} exceeds the supernet's largest kernel {k_max}")
    o = (k_max - kernel) // 2
    return t[..., o:o + kernel, o:o + kernel]


class ElasticPatchConv(ElasticConv2d):
    """:class:`ElasticConv2d` with an elastic kernel (a :func:`sub_window` of the largest) and the
    stride, padding and dilation given per call (the supernet's own when not given)."""

    def forward(self, x: torch.Tensor, out_channels: int | None = None, kernel: int | None = None,
                stride: int | None = None, padding: int | None = None, dilation: int = 1) -> torch.Tensor:
        o = out_channels or self.out_channels
        w = sub_window(lead(self.weight, o, x.shape[1]), kernel or self.kernel)
        b = lead(self.bias, o) if self.bias is not None else None
        return F.conv2d(x, w, b, stride or self.stride, self.padding if padding is None else padding, dilation)

    def extract(self, in_channels: int, out_channels: int, kernel: int | None = None, stride: int | None = None,
                padding: int | None = None, dilation: int = 1) -> nn.Conv2d:
        kernel = kernel or self.kernel
        m = nn.Conv2d(in_channels, out_channels, kernel, stride or self.stride,
                      self.padding if padding is None else padding, dilation,
                      bias=self.bias is not None, device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            m.weight.copy_(sub_window(lead(self.weight, out_channels, in_channels), kernel))
            if self.bias is not None:
                m.bias.copy_(lead(self.bias, out_channels))
        return m


class UnfoldProjection(nn.Module):
    """As-ViT's re-embedding at the largest widths: unfold ``kernel``×``kernel`` patches
    (channel-major: a patch vector is ``in × kernel × kernel``), LayerNorm over each patch, bias-free
    linear projection.  A narrower input or a smaller kernel uses the matching entries of the
    norm's and the projection's patch axis: the leading channels and each channel's
    :func:`sub_window` of taps; stride, padding and dilation are given per call."""

    def __init__(self, in_dim: int, dim: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.in_dim, self.kernel, self.stride, self.padding = in_dim, kernel, stride, padding
        self.norm = ElasticLayerNorm(in_dim * kernel ** 2)
        self.reduction = ElasticLinear(in_dim * kernel ** 2, dim, bias=False)

    def _taps(self, t: torch.Tensor, in_dim: int, kernel: int) -> torch.Tensor:
        """The entries of ``t``'s last (patch) axis that an ``in_dim``-channel ``kernel`` patch uses."""
        if kernel == self.kernel:
            return lead(t, *t.shape[:-1], in_dim * kernel ** 2)
        grid = t.unflatten(-1, (self.in_dim, self.kernel, self.kernel))[..., :in_dim, :, :]
        return sub_window(grid, kernel).flatten(-3)

    def _weights(self, in_dim: int, dim: int, kernel: int):
        n = self.norm
        return (self._taps(n.weight, in_dim, kernel), self._taps(n.bias, in_dim, kernel),
                self._taps(lead(self.reduction.weight, dim, self.reduction.in_features), in_dim, kernel))

    def forward(self, x: torch.Tensor, dim: int, kernel: int | None = None, stride: int | None = None,
                padding: int | None = None, dilation: int = 1) -> torch.Tensor:
        kernel = kernel or self.kernel
        p = F.unfold(x, kernel, dilation=dilation, padding=self.padding if padding is None else padding,
                     stride=stride or self.stride).transpose(1, 2)
        w, b, proj = self._weights(x.shape[1], dim, kernel)
        return F.linear(F.layer_norm(p, (p.shape[-1],), w, b, self.norm.eps), proj)

    def extract(self, in_dim: int, dim: int, kernel: int | None = None, stride: int | None = None,
                padding: int | None = None, dilation: int = 1) -> "UnfoldEmbed":
        kernel = kernel or self.kernel
        width = in_dim * kernel ** 2
        w, b, proj = self._weights(in_dim, dim, kernel)
        ref = self.reduction.weight
        norm = nn.LayerNorm(width, eps=self.norm.eps, device=ref.device, dtype=ref.dtype)
        reduction = nn.Linear(width, dim, bias=False, device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            norm.weight.copy_(w)
            norm.bias.copy_(b)
            reduction.weight.copy_(proj)
        unfold = nn.Unfold(kernel, dilation=dilation, padding=self.padding if padding is None else padding,
                           stride=stride or self.stride)
        return UnfoldEmbed(unfold, norm, reduction)


class UnfoldEmbed(nn.Module):
    """Standalone As-ViT re-embedding: ``nn.Unfold``, ``nn.LayerNorm``, bias-free ``nn.Linear``;
    maps ``(B, C, H, W)`` to tokens."""

    def __init__(self, unfold: nn.Unfold, norm: nn.LayerNorm, reduction: nn.Linear):
        super().__init__()
        self.unfold, self.norm, self.reduction = unfold, norm, reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.norm(self.unfold(x).transpose(1, 2)))


def _geometry(f) -> tuple[int, int, int, int]:
    """The layer's ``(kernel, stride, padding, dilation)``, as the projections take them."""
    return f.kernel, f.stride, f.padding, f.dilation


@register("patch_embed")
class PatchEmbedOp(ElasticTokens, nn.Module):
    """Patchify conv at the largest width; as a transition it re-tokenises the incoming map."""

    #: multiarch support (:mod:`.masked`): no syntax field may differ between the archs of one
    #: step; the masks follow the normalised widths
    masked = True
    maskable_fields = frozenset()
    masked_widths = ("in_dim", "dim")

    def __init__(self, layer):
        super().__init__()
        f = layer.fields
        self.max_size, self.cls = f.size, f.cls
        self.kernel = f.kernel  # the largest; stride, padding and dilation come with each arch's layer
        if f.norm_before:
            self.proj = UnfoldProjection(f.in_dim, f.dim, f.kernel, f.stride, f.padding)
        else:
            self.proj = ElasticPatchConv(f.in_dim, f.dim, f.kernel, f.stride, f.padding)
        self.norm_before = f.norm_before
        self.norm = ElasticLayerNorm(f.dim) if f.norm else None
        self._init_tokens(f)

    def _check(self, f) -> None:
        if f.kernel > self.kernel:
            raise CompileError(f"patch_embed: kernel {f.kernel} exceeds the supernet's largest kernel {self.kernel}")
        if f.norm_before != self.norm_before:
            raise CompileError("patch_embed: an elastic norm_before is not compiled",
                               hint="write `norm_before true` or `false`, not a choice")

    def _project(self, x: torch.Tensor, f) -> torch.Tensor:
        """Tokens of the projection at the layer's width and geometry (before norm and tokens)."""
        if x.dim() == 3:  # a transition: tokens back to a map (a class token cannot be re-tokenised)
            x = Fn.tokens_to_map(x, f.in_size)
        x = self.proj(x, f.dim, *_geometry(f))
        return x if f.norm_before else Fn.map_to_tokens(x)

    def forward(self, x: torch.Tensor, layer) -> torch.Tensor:
        f = layer.fields
        self._check(f)
        x = self._project(x, f)
        if f.norm:
            x = self.norm(x, f.dim)
        return add_tokens(x, *self._tokens(f))

    def forward_masked(self, x: torch.Tensor, layer, m: M.SlotMasks) -> torch.Tensor:
        """Multiarch forward: the projection at the union width, masked LayerNorm (``norm``), class
        token and position embedding, every sample's tokens masked to its ``dim``."""
        f = layer.fields
        self._check(f)
        if f.norm_before and not m.uniform("in_dim"):
            raise CompileError("patch_embed: a norm_before re-embedding with an elastic input width has no "
                               "masked (multi-architecture) forward")
        width = m.width("dim", f.dim)
        x = self._project(x, f)
        if f.norm:
            x = M.norm_masked(self.norm, width.apply(x), width)
        return width.apply(add_tokens(x, *self._tokens(f)))

    def extract(self, layer) -> "PatchEmbed":
        f = layer.fields
        self._check(f)
        return PatchEmbed(self.proj.extract(f.in_dim, f.dim, *_geometry(f)),
                          self.norm.extract(f.dim) if f.norm else None,
                          TokenHead(*self._tokens(f)), f.in_size)


class PatchEmbed(nn.Module):
    """Standalone patch embedding: ``nn.Conv2d`` (or :class:`UnfoldEmbed`), optional
    ``nn.LayerNorm``, class token, position embedding."""

    def __init__(self, proj: nn.Module, norm: nn.LayerNorm | None, tokens: TokenHead, in_size: int):
        super().__init__()
        self.proj, self.norm, self.tokens, self.in_size = proj, norm, tokens, in_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = Fn.tokens_to_map(x, self.in_size)
        x = self.proj(x) if isinstance(self.proj, UnfoldEmbed) else Fn.map_to_tokens(self.proj(x))
        if self.norm is not None:
            x = self.norm(x)
        return self.tokens(x)
