"""Class token and absolute position embedding, shared by the stems and RSR transitions.

Position embeddings are allocated for the supernet's feature map; an arch at another input
resolution (``input.resolution`` as a dimension) gets them resampled (timm's bicubic
``resample_abs_pos_embed``), and an extracted subnet stores the resampled copy.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import resample_abs_pos_embed

from .elastic import lead


def pos_embed_for(pos: torch.Tensor, dim: int, size: int, max_size: int, prefix: int) -> torch.Tensor:
    """The leading ``dim`` channels of a ``(1, prefix + max_size², D)`` embedding, at ``size``×``size``."""
    p = lead(pos, 1, pos.shape[1], dim)
    if size != max_size:
        p = resample_abs_pos_embed(p, [size, size], [max_size, max_size], num_prefix_tokens=prefix)
    return p


def add_tokens(x: torch.Tensor, cls_token: torch.Tensor | None, pos: torch.Tensor | None) -> torch.Tensor:
    """Prepend the class token ``(1, 1, C)`` (if any), then add the position embedding (if any)."""
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
