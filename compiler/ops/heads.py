"""``linear`` head: final LayerNorm (optional), pooling (class token or mean of the patch tokens),
LayerNorm after pooling (``fc_norm``), pre-logits linear + tanh (``pre_logits``), linear
classifier.  The token-labelling classifier (``token_label``) is held and extracted (its
parameters count) but inference does not run it: :meth:`LinearHead.token_logits` does."""
from __future__ import annotations

import torch
import torch.nn as nn

from spacelang.errors import CompileError

from . import masked as M
from .elastic import ElasticLayerNorm, ElasticLinear
from .registry import register


def pool(x: torch.Tensor, how: str, cls: bool) -> torch.Tensor:
    """``cls``: the class token; ``avg``: the mean over patch tokens (the class token, if any, excluded)."""
    if how == "cls":
        return x[:, 0]
    return (x[:, 1:] if cls else x).mean(dim=1)


def no_token_classifier() -> CompileError:
    """The error for token logits asked of a head without the token-labelling classifier."""
    return CompileError("this head has no token-labelling classifier", hint="write `token_label true`")


class PreLogits(nn.Module):
    """As-ViT's pre-logits layer: ``tanh(Linear(dim, dim))``."""

    def __init__(self, fc: nn.Linear):
        super().__init__()
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(x))


@register("linear")
class LinearHeadOp(nn.Module):
    """The head at the largest input width."""

    masked = True  # multiarch support (:mod:`.masked`)
    maskable_fields = frozenset()
    masked_widths = ("in_dim", "dim")

    def __init__(self, layer):
        super().__init__()
        f = layer.fields
        self.norm = ElasticLayerNorm(f.in_dim) if f.norm else None
        self.fc_norm = ElasticLayerNorm(f.in_dim) if f.fc_norm else None
        self.pre_logits = ElasticLinear(f.in_dim, f.in_dim) if f.pre_logits else None
        self.fc = ElasticLinear(f.in_dim, f.classes)
        self.token_fc = ElasticLinear(f.in_dim, f.classes) if f.token_label else None

    def forward(self, x: torch.Tensor, layer) -> torch.Tensor:
        f = layer.fields
        c = f.in_dim
        if f.norm:
            x = self.norm(x, c)
        x = pool(x, f.pool, f.cls)
        if f.fc_norm:
            x = self.fc_norm(x, c)
        if f.pre_logits:
            x = torch.tanh(self.pre_logits(x, c, c))
        return self.fc(x, c, f.classes)

    def _need_token_fc(self, f) -> None:
        if self.token_fc is None or not f.token_label:
            raise no_token_classifier()

    def token_logits(self, x: torch.Tensor, layer) -> torch.Tensor:
        """The token-labelling classifier's logits ``(B, N_patches, classes)`` (training only)."""
        f = layer.fields
        self._need_token_fc(f)
        if f.norm:
            x = self.norm(x, f.in_dim)
        return self.token_fc(x[:, 1:] if f.cls else x, f.in_dim, f.classes)

    def forward_masked(self, x: torch.Tensor, layer, m: M.SlotMasks, tokens: bool = False):
        """Multiarch forward: masked LayerNorms; with ``tokens`` also the token logits."""
        f = layer.fields
        c = f.in_dim
        width = m.width("in_dim", c)
        if tokens:
            self._need_token_fc(f)
        if f.norm:
            x = M.norm_masked(self.norm, x, width)
        y = pool(x, f.pool, f.cls)
        if f.fc_norm:
            y = M.norm_masked(self.fc_norm, y[:, None], width)[:, 0]
        if f.pre_logits:
            y = width.apply(torch.tanh(self.pre_logits(y, c, c))[:, None])[:, 0]
        logits = self.fc(y, c, f.classes)
        if not tokens:
            return logits
        return logits, self.token_fc(x[:, 1:] if f.cls else x, c, f.classes)

    def extract(self, layer) -> "LinearHead":
        f = layer.fields
        c = f.in_dim
        return LinearHead(self.norm.extract(c) if f.norm else None, self.fc.extract(c, f.classes),
                          f.pool, f.cls,
                          fc_norm=self.fc_norm.extract(c) if f.fc_norm else None,
                          pre_logits=PreLogits(self.pre_logits.extract(c, c)) if f.pre_logits else None,
                          token_fc=self.token_fc.extract(c, f.classes) if f.token_label else None)


class LinearHead(nn.Module):
    """Standalone head: ``nn.LayerNorm``, pooling, ``nn.LayerNorm`` (fc_norm), pre-logits,
    ``nn.Linear``; ``token_fc``: the training-only token-labelling classifier."""

    def __init__(self, norm: nn.LayerNorm | None, fc: nn.Linear, how: str, cls: bool, *,
                 fc_norm: nn.LayerNorm | None = None, pre_logits: PreLogits | None = None,
                 token_fc: nn.Linear | None = None):
        super().__init__()
        self.norm, self.fc, self.how, self.cls = norm, fc, how, cls
        self.fc_norm, self.pre_logits, self.token_fc = fc_norm, pre_logits, token_fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            x = self.norm(x)
        x = pool(x, self.how, self.cls)
        if self.fc_norm is not None:
            x = self.fc_norm(x)
        if self.pre_logits is not None:
            x = self.pre_logits(x)
        return self.fc(x)

    def token_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The token-labelling classifier's logits ``(B, N, classes)`` for the patch tokens of ``x``
        (the head's input tokens, normalised like the pooled path)."""
        if self.token_fc is None:
            raise no_token_classifier()
        if self.norm is not None:
            x = self.norm(x)
        return self.token_fc(x[:, 1:] if self.cls else x)
