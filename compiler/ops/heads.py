"""``linear`` head: final LayerNorm (optional), pooling (class token or mean of the patch tokens),
linear classifier."""
from __future__ import annotations

import torch
import torch.nn as nn

from .elastic import ElasticLayerNorm, ElasticLinear
from .registry import register


def pool(x: torch.Tensor, how: str, cls: bool) -> torch.Tensor:
    """``cls``: the class token; ``avg``: the mean over patch tokens (the class token, if any, excluded)."""
    if how == "cls":
        return x[:, 0]
    return (x[:, 1:] if cls else x).mean(dim=1)


@register("linear")
class LinearHeadOp(nn.Module):
    """The head at the largest input width."""

    def __init__(self, layer, drop_path: float = 0.0):
        super().__init__()
        f = layer.fields
        self.norm = ElasticLayerNorm(f["in_dim"]) if f["norm"] else None
        self.fc = ElasticLinear(f["in_dim"], f["classes"])

    def forward(self, x: torch.Tensor, layer, cls: bool = False) -> torch.Tensor:
        f = layer.fields
        c = f["in_dim"]
        if f["norm"]:
            x = self.norm(x, c)
        return self.fc(pool(x, f["pool"], cls), c, f["classes"])

    def extract(self, layer, cls: bool = False) -> "LinearHead":
        f = layer.fields
        c = f["in_dim"]
        return LinearHead(self.norm.extract(c) if f["norm"] else None, self.fc.extract(c, f["classes"]),
                          f["pool"], cls)


class LinearHead(nn.Module):
    """Standalone head: ``nn.LayerNorm``, pooling, ``nn.Linear``."""

    def __init__(self, norm: nn.LayerNorm | None, fc: nn.Linear, how: str, cls: bool):
        super().__init__()
        self.norm, self.fc, self.how, self.cls = norm, fc, how, cls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            x = self.norm(x)
        return self.fc(pool(x, self.how, self.cls))
