"""``conv_stem``: ViT-ResNAS's convolutional tokenizer.

conv3×3/2 → BN → ReLU (a), conv3×3 → BN → ReLU, conv3×3 → BN → ReLU, plus the residual a; then a
``patch``×``patch`` conv with stride ``patch`` (bias) to the first stage's width, the class token
and the absolute position embedding.  The 3×3 convs have no bias (BatchNorm follows).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from spacelang.errors import CompileError

from . import functional as Fn
from . import masked as M
from .elastic import ElasticBatchNorm2d, ElasticConv2d
from .embed import ElasticTokens, TokenHead, add_tokens
from .registry import register


@register("conv_stem")
class ConvStemOp(ElasticTokens, nn.Module):
    """The tokenizer at its largest widths (``width`` of the 3×3 convs and the output ``dim``)."""

    masked = True  # multiarch support (:mod:`.masked`): BatchNorm per arch group
    maskable_fields = frozenset({"width"})
    masked_widths = ("in_dim", "dim", "width")

    def __init__(self, layer):
        super().__init__()
        f = layer.fields
        w = f.width
        self.max_size, self.patch = f.size, f.patch
        self.conv1 = ElasticConv2d(f.in_dim, w, 3, 2, 1, bias=False)
        self.bn1 = ElasticBatchNorm2d(w)
        self.conv2 = ElasticConv2d(w, w, 3, 1, 1, bias=False)
        self.bn2 = ElasticBatchNorm2d(w)
        self.conv3 = ElasticConv2d(w, w, 3, 1, 1, bias=False)
        self.bn3 = ElasticBatchNorm2d(w)
        self.proj = ElasticConv2d(w, f.dim, f.patch, f.patch, 0)
        self._init_tokens(f)

    def forward(self, x: torch.Tensor, layer) -> torch.Tensor:
        f = layer.fields
        if f.patch != self.patch:
            raise CompileError(f"conv_stem: an elastic patch is not compiled (supernet {self.patch}, arch {f.patch})")
        w = f.width
        a = torch.relu(self.bn1(self.conv1(x, w)))
        y = torch.relu(self.bn2(self.conv2(a, w)))
        y = torch.relu(self.bn3(self.conv3(y, w))) + a
        return add_tokens(Fn.map_to_tokens(self.proj(y, f.dim)), *self._tokens(f))

    def forward_masked(self, x: torch.Tensor, layer, m: M.SlotMasks) -> torch.Tensor:
        """Multiarch forward: each BatchNorm normalises every arch's samples by their own group's
        statistics (:func:`.masked.group_batch_norm`); maps masked to each sample's width, tokens
        to its dim."""
        f = layer.fields
        if f.patch != self.patch:
            raise CompileError(f"conv_stem: an elastic patch is not compiled (supernet {self.patch}, arch {f.patch})")
        w = f.width
        width = m.width("width", w)

        def bn(t, norm):
            return width.apply_map(torch.relu(M.group_batch_norm(t, norm, m.step, width)))

        a = bn(self.conv1(x, w), self.bn1)
        y = bn(self.conv3(bn(self.conv2(a, w), self.bn2), w), self.bn3) + a
        z = add_tokens(Fn.map_to_tokens(self.proj(y, f.dim)), *self._tokens(f))
        return m.width("dim", f.dim).apply(z)

    def extract(self, layer) -> "ConvStem":
        f = layer.fields
        w = f.width
        return ConvStem(
            nn.Sequential(self.conv1.extract(f.in_dim, w), self.bn1.extract(w), nn.ReLU()),
            nn.Sequential(self.conv2.extract(w, w), self.bn2.extract(w), nn.ReLU(),
                          self.conv3.extract(w, w), self.bn3.extract(w), nn.ReLU()),
            self.proj.extract(w, f.dim), TokenHead(*self._tokens(f)))


class ConvStem(nn.Module):
    """Standalone ViT-ResNAS tokenizer (``nn.Conv2d`` + ``nn.BatchNorm2d`` + ``nn.ReLU``)."""

    def __init__(self, conv1: nn.Sequential, convs: nn.Sequential, proj: nn.Conv2d, tokens: TokenHead):
        super().__init__()
        self.conv1, self.convs, self.proj, self.tokens = conv1, convs, proj, tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x)
        return self.tokens(Fn.map_to_tokens(self.proj(self.convs(a) + a)))
