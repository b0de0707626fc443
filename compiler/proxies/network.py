"""Randomly initialised networks of one arch, as proxies see them.

:func:`build_network` compiles the arch's own concrete network (``space.resolve(arch)``), op
by op, each at exactly the arch's sizes, and extracts it (the op protocol's ``extract``) into a
standalone :class:`~spacelang.compiler.supernet.Subnet` — the network a from-scratch training of
that arch would start from.  Building it from the arch rather than slicing a supernet means
elastic kernels (As-ViT's K1 ∈ {4..8}) compile too, and each topology is initialised as a network
of its own size (the ops initialise with fixed standard deviations, so the two agree in law).

:func:`features` turns it into the map proxies measure: images → the last stage's tokens,
pooled as the head pools them, *before* the head's norm, pre-logits and classifier — the second
output of As-ViT's ``forward_features`` (``avgpool`` of the features before ``self.norm``), which
its released code differentiates for both L_E and the NTK.  (With the final LayerNorm kept, the
*sum* of its outputs is the constant Σβ, so the NTK's per-sample gradient of the summed output
would vanish before the norm.)  ``norms="identity"`` replaces every normalisation layer with the
identity, as As-ViT's released code does when it measures L_E; ``"keep"`` keeps them (its NTK).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn

from spacelang.errors import CompileError

from ..ops import get_op
from ..supernet import Subnet

NORMS = ("identity", "keep")
_NORM_TYPES = (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)


def build_network(space, arch: Mapping[str, Any], seed: int) -> Subnet:
    """The standalone network of ``arch``, its weights drawn from ``torch.manual_seed(seed)``-style
    generator state (the global torch RNG is saved and restored around it)."""
    spec = space.resolve(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        stem = get_op(spec.stem.kind)(spec.stem).extract(spec.stem)
        stages = []
        for st in spec.stages:
            mods = [get_op(st.transition.kind)(st.transition).extract(st.transition)] if st.transition is not None else []
            mods += [get_op(b.kind)(b).extract(b) for b in st.blocks]
            stages.append(nn.Sequential(*mods))
        head = get_op(spec.head.kind)(spec.head).extract(spec.head)
    return Subnet(stem, stages, head, (spec.channels, spec.resolution, spec.resolution),
                  [st.name for st in spec.stages])


def features(net: Subnet, norms: str = "identity") -> nn.Module:
    """``net`` as images → pooled features before the head's norm (norm, pre-logits and classifier
    removed), in eval mode, gradients on."""
    if norms not in NORMS:
        raise ValueError(f"norms must be one of {NORMS}, got {norms!r}")
    if not isinstance(getattr(net.head, "fc", None), nn.Linear):
        raise CompileError(f"proxies need a head with a linear classifier `fc`, not {type(net.head).__name__}")
    net.head.fc = nn.Identity()
    for part in ("norm", "fc_norm", "pre_logits"):  # As-ViT's forward_features()[1]: pooled, before the norm
        if getattr(net.head, part, None) is not None:
            setattr(net.head, part, None)
    if norms == "identity":
        _replace_norms(net)
    return net.eval()


def _replace_norms(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, _NORM_TYPES):
            setattr(module, name, nn.Identity())
        else:
            _replace_norms(child)


__all__ = ["build_network", "features", "NORMS"]
