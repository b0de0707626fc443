"""``patch_embed``: strided convolution to tokens (elastic output width), optional LayerNorm (Swin),
class token and absolute position embedding (ViT/DeiT/AutoFormer); with ``norm_before`` As-ViT's
re-embedding (each unfolded patch normalised, then projected without bias)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from spacelang.errors import CompileError

from . import functional as Fn
from .elastic import ElasticConv2d, ElasticLayerNorm, ElasticLinear
from .embed import ElasticTokens, TokenHead, add_tokens
from .registry import register


def _check(f, op) -> None:
    if (f.kernel, f.stride, f.padding) != (op.kernel, op.stride, op.padding):
        raise CompileError(
            f"patch_embed: an elastic kernel/stride/padding is not compiled (supernet "
            f"{op.kernel}/{op.stride}/{op.padding}, arch {f.kernel}/{f.stride}/{f.padding})")


class UnfoldProjection(nn.Module):
    """As-ViT's re-embedding at the largest widths: unfold ``kernel``×``kernel`` patches
    (channel-major, so a narrower input is a leading slice of the patch vector), LayerNorm over
    each patch, bias-free linear projection."""

    def __init__(self, in_dim: int, dim: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.norm = ElasticLayerNorm(in_dim * kernel ** 2)
        self.reduction = ElasticLinear(in_dim * kernel ** 2, dim, bias=False)

    def forward(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        p = F.unfold(x, self.kernel, padding=self.padding, stride=self.stride).transpose(1, 2)
        width = p.shape[-1]
        return self.reduction(self.norm(p, width), width, dim)

    def extract(self, in_dim: int, dim: int) -> "UnfoldEmbed":
        width = in_dim * self.kernel ** 2
        return UnfoldEmbed(nn.Unfold(self.kernel, padding=self.padding, stride=self.stride),
                           self.norm.extract(width), self.reduction.extract(width, dim))


class UnfoldEmbed(nn.Module):
    """Standalone As-ViT re-embedding: ``nn.Unfold``, ``nn.LayerNorm``, bias-free ``nn.Linear``;
    maps ``(B, C, H, W)`` to tokens."""

    def __init__(self, unfold: nn.Unfold, norm: nn.LayerNorm, reduction: nn.Linear):
        super().__init__()
        self.unfold, self.norm, self.reduction = unfold, norm, reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.norm(self.unfold(x).transpose(1, 2)))


@register("patch_embed")
class PatchEmbedOp(ElasticTokens, nn.Module):
    """Patchify conv at the largest width; as a transition it re-tokenises the incoming map."""

    def __init__(self, layer):
        super().__init__()
        f = layer.fields
        self.max_size, self.cls = f.size, f.cls
        self.kernel, self.stride, self.padding = f.kernel, f.stride, f.padding
        if f.norm_before:
            self.proj = UnfoldProjection(f.in_dim, f.dim, f.kernel, f.stride, f.padding)
        else:
            self.proj = ElasticConv2d(f.in_dim, f.dim, f.kernel, f.stride, f.padding)
        self.norm_before = f.norm_before
        self.norm = ElasticLayerNorm(f.dim) if f.norm else None
        self._init_tokens(f)

    def _check(self, f) -> None:
        _check(f, self)
        if f.norm_before != self.norm_before:
            raise CompileError("patch_embed: an elastic norm_before is not compiled",
                               hint="write `norm_before true` or `false`, not a choice")

    def forward(self, x: torch.Tensor, layer) -> torch.Tensor:
        f = layer.fields
        self._check(f)
        if x.dim() == 3:  # a transition: tokens back to a map (a class token cannot be re-tokenised)
            x = Fn.tokens_to_map(x, f.in_size)
        x = self.proj(x, f.dim) if f.norm_before else Fn.map_to_tokens(self.proj(x, f.dim))
        if f.norm:
            x = self.norm(x, f.dim)
        return add_tokens(x, *self._tokens(f))

    def extract(self, layer) -> "PatchEmbed":
        f = layer.fields
        self._check(f)
        return PatchEmbed(self.proj.extract(f.in_dim, f.dim),
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
