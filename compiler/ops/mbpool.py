"""``mbpool``: MobileNetV3's efficient last stage (NASViT's head), elastic in every width.

1×1 conv (to ``expanded`` channels, or to ``width`` without ``expand``) → BatchNorm → activation,
global average pooling, with ``expand`` a bias-free linear to ``width`` → activation (the
feature-mix layer), then the classifier.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .conv import ElasticKernelConv2d, act, activation
from .elastic import ElasticBatchNorm2d, ElasticLinear
from .registry import register


@register("mbpool")
class MBPoolOp(nn.Module):
    """The head at its largest widths."""

    carries_maps = True

    def __init__(self, layer):
        super().__init__()
        f = layer.fields
        conv = f.expanded or f.width
        self.conv = ElasticKernelConv2d(f.in_dim, conv, 1)
        self.bn = ElasticBatchNorm2d(conv)
        self.mix = ElasticLinear(f.expanded, f.width, bias=False) if f.expanded else None
        self.fc = ElasticLinear(f.width, f.classes)

    def forward(self, x: torch.Tensor, layer) -> torch.Tensor:
        f = layer.fields
        y = act(self.bn(self.conv(x, f.expanded or f.width)), f.act).mean((2, 3))
        if f.expanded:
            y = act(self.mix(y, f.expanded, f.width), f.act)
        return self.fc(y, f.width, f.classes)

    def extract(self, layer) -> "MBPool":
        f = layer.fields
        conv = f.expanded or f.width
        return MBPool(nn.Sequential(self.conv.extract(f.in_dim, conv, 1), self.bn.extract(conv), activation(f.act)),
                      nn.Sequential(self.mix.extract(f.expanded, f.width, bias=False), activation(f.act))
                      if f.expanded else None,
                      self.fc.extract(f.width, f.classes))


class MBPool(nn.Module):
    """Standalone MBPool head: conv-BN-act, mean pooling, feature mix (optional), classifier."""

    def __init__(self, conv: nn.Sequential, mix: nn.Sequential | None, fc: nn.Linear):
        super().__init__()
        self.conv, self.mix, self.fc = conv, mix, fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).mean((2, 3))
        if self.mix is not None:
            y = self.mix(y)
        return self.fc(y)
