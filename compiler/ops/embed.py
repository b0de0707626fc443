"""Class token and absolute position embedding, shared by the stems and RSR transitions.

Position embeddings are allocated for the supernet's feature map; an arch at another input
resolution (``input.resolution`` as a dimension) gets them resampled (timm's bicubic
``resample_abs_pos_embed``), and an extracted subnet stores the resampled copy.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import resample_abs_pos_embed

from .elastic import lead, new_param


def pos_embed_for(pos: torch.Tensor, dim: int, size: int, max_size: int, prefix: int) -> torch.Tensor:
    """The leading ``dim`` channels of a ``(1, prefix + max_size², D)`` embedding, at ``size``×``size``."""
    p = lead(pos, 1, pos.shape[1], dim)
    if size != max_size:
        p = resample_abs_pos_embed(p, [size, size], [max_size, max_size], num_prefix_tokens=prefix)
    return p


def add_tokens(x: torch.Tensor, cls_token: torch.Tensor | None, pos: torch.Tensor | None) -> torch.Tensor:
    """Prepend the class token ``(1, 1, C)`` (if any) and add the position embedding (if any).

    A position embedding with a row for every token (the class token's first) is added after the
    class token is prepended (ViT/DeiT); one with rows for the patch tokens only (``pos patches``,
    timm's ``no_embed_class``) is added to the patch tokens before."""
    if pos is not None and pos.shape[1] == x.shape[1]:
        x, pos = x + pos, None
    if cls_token is not None:
        x = torch.cat([cls_token.expand(x.shape[0], -1, -1), x], dim=1)
    if pos is not None:
        x = x + pos
    return x


class TokenHead(nn.Module):
    """Standalone class token + position embedding of an extracted stem or transition."""

    def __init__(self, cls_token: torch.Tensor | None, pos_embed: torch.Tensor | None):
        super().__init__()
        self.cls_token = nn.Parameter(cls_token.detach().clone()) if cls_token is not None else None
        self.pos_embed = nn.Parameter(pos_embed.detach().clone()) if pos_embed is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return add_tokens(x, self.cls_token, self.pos_embed)


class ElasticTokens:
    """Mixin for elastic stems: a class token and an absolute position embedding at the largest
    width and map, and the leading slices (resampled to the arch's map) that an arch uses."""

    def _init_tokens(self, f) -> None:
        self.max_size = f.size
        self.cls_token = new_param(1, 1, f.dim) if f.cls else None
        rows = {"abs": f.size ** 2 + int(f.cls), "patches": f.size ** 2}.get(f.pos)
        self.pos_embed = new_param(1, rows, f.dim) if rows else None

    def _tokens(self, f):
        dim = f.dim
        cls = lead(self.cls_token, 1, 1, dim) if f.cls else None
        pos = None
        if f.pos == "abs":
            table = self.pos_embed
            if self.cls_token is not None and not f.cls:  # an elastic head pooling (`pool {cls, avg}`)
                table = table[:, 1:]  # the arch has no class token: drop its row
            pos = pos_embed_for(table, dim, f.size, self.max_size, int(f.cls))
        elif f.pos == "patches":  # no row for the class token
            pos = pos_embed_for(self.pos_embed, dim, f.size, self.max_size, 0)
        return cls, pos
