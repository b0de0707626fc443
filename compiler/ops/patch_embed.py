"""``patch_embed``: strided convolution to tokens (elastic output width), optional LayerNorm (Swin),
class token and absolute position embedding (ViT/DeiT/AutoFormer)."""
from __future__ import annotations

import torch
import torch.nn as nn

from . import functional as Fn
from .elastic import ElasticConv2d, ElasticLayerNorm
from .embed import ElasticTokens, TokenHead, add_tokens
from .registry import register


def _check(f, op) -> None:
    if (f["kernel"], f["stride"], f["padding"]) != (op.proj.kernel, op.proj.stride, op.proj.padding):
        raise NotImplementedError(
            f"patch_embed: an elastic kernel/stride/padding is not compiled (supernet "
            f"{op.proj.kernel}/{op.proj.stride}/{op.proj.padding}, arch {f['kernel']}/{f['stride']}/{f['padding']})")


@register("patch_embed")
class PatchEmbedOp(ElasticTokens, nn.Module):
    """Patchify conv at the largest width; as a transition it re-tokenises the incoming map."""

    def __init__(self, layer, drop_path: float = 0.0):
        super().__init__()
        f = layer.fields
        self.max_size, self.cls = f["size"], f["cls"]
        self.proj = ElasticConv2d(f["in_dim"], f["dim"], f["kernel"], f["stride"], f["padding"])
        self.norm = ElasticLayerNorm(f["dim"]) if f["norm"] else None
        self._init_tokens(f)

    def forward(self, x: torch.Tensor, layer) -> torch.Tensor:
        f = layer.fields
        _check(f, self)
        if x.dim() == 3:  # a transition: tokens back to a map (a class token cannot be re-tokenised)
            x = Fn.tokens_to_map(x, f["in_size"])
        x = Fn.map_to_tokens(self.proj(x, f["dim"]))
        if f["norm"]:
            x = self.norm(x, f["dim"])
        return add_tokens(x, *self._tokens(f))

    def extract(self, layer) -> "PatchEmbed":
        f = layer.fields
        _check(f, self)
        return PatchEmbed(self.proj.extract(f["in_dim"], f["dim"]),
                          self.norm.extract(f["dim"]) if f["norm"] else None,
                          TokenHead(*self._tokens(f)), f["in_size"])


class PatchEmbed(nn.Module):
    """Standalone patch embedding: ``nn.Conv2d``, optional ``nn.LayerNorm``, class token, position embedding."""

    def __init__(self, proj: nn.Conv2d, norm: nn.LayerNorm | None, tokens: TokenHead, in_size: int):
        super().__init__()
        self.proj, self.norm, self.tokens, self.in_size = proj, norm, tokens, in_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = Fn.tokens_to_map(x, self.in_size)
        x = Fn.map_to_tokens(self.proj(x))
        if self.norm is not None:
            x = self.norm(x)
        return self.tokens(x)
