"""``patch_merging``: Swin's transition — each 2×2 neighbourhood concatenated (4·C channels),
LayerNorm, bias-free linear to the new width.  Channels are ordered channel-major so that an
elastic input width is a leading slice (see :func:`functional.merge_2x2`)."""
from __future__ import annotations

import torch
import torch.nn as nn

from . import functional as Fn
from . import masked as M
from .elastic import ElasticLayerNorm, ElasticLinear
from .registry import register


@register("patch_merging")
class PatchMergingOp(nn.Module):
    """Patch merging at the largest input and output widths."""

    masked = True  # multiarch support (:mod:`.masked`)
    maskable_fields = frozenset()
    masked_widths = ("in_dim", "dim")

    def __init__(self, layer):
        super().__init__()
        f = layer.fields
        self.norm = ElasticLayerNorm(4 * f.in_dim)
        self.reduction = ElasticLinear(4 * f.in_dim, f.dim, bias=False)

    def forward(self, x: torch.Tensor, layer) -> torch.Tensor:
        f = layer.fields
        c = 4 * f.in_dim
        return self.reduction(self.norm(Fn.merge_2x2(x, f.in_size), c), c, f.dim)

    def forward_masked(self, x: torch.Tensor, layer, m: M.SlotMasks) -> torch.Tensor:
        """Multiarch forward.  The channel-major gather puts a sample's ``4·c`` merged channels
        first (:func:`.functional.merge_2x2`), so its width is again a prefix: masked LayerNorm
        over ``4·c``, then the reduction masked to each output width."""
        f = layer.fields
        c = 4 * f.in_dim
        y = M.norm_masked(self.norm, Fn.merge_2x2(x, f.in_size), m.width("in_dim", c, factor=4))
        return m.width("dim", f.dim).apply(self.reduction(y, c, f.dim))

    def extract(self, layer) -> "PatchMerging":
        f = layer.fields
        c = 4 * f.in_dim
        return PatchMerging(self.norm.extract(c), self.reduction.extract(c, f.dim, bias=False), f.in_size)


class PatchMerging(nn.Module):
    """Standalone patch merging: 2×2 gather, ``nn.LayerNorm(4C)``, ``nn.Linear(4C, dim, bias=False)``."""

    def __init__(self, norm: nn.LayerNorm, reduction: nn.Linear, in_size: int):
        super().__init__()
        self.norm, self.reduction, self.in_size = norm, reduction, in_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.norm(Fn.merge_2x2(x, self.in_size)))
