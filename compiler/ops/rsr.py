"""``rsr``: ViT-ResNAS residual spatial reduction.

One LayerNorm over every token (class token included, as the released code does).  Patch
tokens: main path 3×3 stride-2 convolution (padding 1, bias) to the new width plus a new absolute
position embedding; skip path 2×2 average pooling with the channels zero-padded.  Class token:
linear (bias) to the new width plus its zero-padded identity.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import functional as Fn
from . import masked as M
from .elastic import ElasticConv2d, ElasticLayerNorm, ElasticLinear, new_param
from .embed import TokenHead, pos_embed_for
from .registry import register


def _reduce(x, size: int, cls: bool, out: int, norm, conv, pos, token_linear) -> torch.Tensor:
    """RSR on ``(B, [1 +] size², C)`` tokens; ``norm``/``conv``/``token_linear`` are callables."""
    c = x.shape[-1]
    pad = (0, out - c)
    y = norm(x)
    patches, patches_y = (x[:, 1:], y[:, 1:]) if cls else (x, y)
    main = Fn.map_to_tokens(conv(Fn.tokens_to_map(patches_y, size))) + pos
    z = main + F.pad(Fn.avg_pool_tokens(patches, size), pad)
    if cls:
        z = torch.cat([token_linear(y[:, :1]) + F.pad(x[:, :1], pad), z], dim=1)
    return z


@register("rsr")
class RSROp(nn.Module):
    """Residual spatial reduction at the largest input and output widths."""

    masked = True  # multiarch support (:mod:`.masked`)
    maskable_fields = frozenset()
    masked_widths = ("in_dim", "dim")

    def __init__(self, layer):
        super().__init__()
        f = layer.fields
        self.max_size = f.size
        self.norm = ElasticLayerNorm(f.in_dim)
        self.conv = ElasticConv2d(f.in_dim, f.dim, 3, 2, 1)
        self.pos_embed = new_param(1, f.size ** 2, f.dim)
        self.token_linear = ElasticLinear(f.in_dim, f.dim) if f.cls else None

    def _pos(self, f) -> torch.Tensor:
        return pos_embed_for(self.pos_embed, f.dim, f.size, self.max_size, 0)

    def forward(self, x: torch.Tensor, layer) -> torch.Tensor:
        f = layer.fields
        c, out = f.in_dim, f.dim
        return _reduce(x, f.in_size, f.cls, out, lambda t: self.norm(t, c), lambda t: self.conv(t, out),
                       self._pos(f), lambda t: self.token_linear(t, c, out))

    def forward_masked(self, x: torch.Tensor, layer, m: M.SlotMasks) -> torch.Tensor:
        """Multiarch forward: masked LayerNorm over each sample's input width; the conv, position
        embedding, padded skip and class-token linear at the union width, masked to each output width."""
        f = layer.fields
        c, out = f.in_dim, f.dim
        width = m.width("in_dim", c)
        z = _reduce(x, f.in_size, f.cls, out, lambda t: M.norm_masked(self.norm, t, width),
                    lambda t: self.conv(t, out), self._pos(f), lambda t: self.token_linear(t, c, out))
        return m.width("dim", out).apply(z)

    def extract(self, layer) -> "RSR":
        f = layer.fields
        c, out = f.in_dim, f.dim
        return RSR(self.norm.extract(c), self.conv.extract(c, out), TokenHead(None, self._pos(f)),
                   self.token_linear.extract(c, out) if f.cls else None, f.in_size, out)


class RSR(nn.Module):
    """Standalone residual spatial reduction (``nn.LayerNorm``, ``nn.Conv2d``, ``nn.Linear``)."""

    def __init__(self, norm: nn.LayerNorm, conv: nn.Conv2d, pos: TokenHead, token_linear: nn.Linear | None,
                 in_size: int, dim: int):
        super().__init__()
        self.norm, self.conv, self.pos, self.token_linear = norm, conv, pos, token_linear
        self.in_size, self.dim = in_size, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _reduce(x, self.in_size, self.token_linear is not None, self.dim, self.norm, self.conv,
                       self.pos.pos_embed, self.token_linear)
