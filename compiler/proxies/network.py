"""Randomly initialised networks of one arch, as proxies see them.

:func:`build_network` compiles the arch's own concrete network (``space.resolve(arch)``), op
by op, each at exactly the arch's sizes, and extracts it (the op protocol's ``extract``) into a
standalone :class:`~spacelang.compiler.supernet.Subnet` — the network a from-scratch training of
that arch would start from.  Building it from the arch rather than slicing a supernet means
elastic kernels (As-ViT's K1 ∈ {4..8}) compile too, and each topology is initialised as a network
of its own size (the ops initialise with fixed standard deviations, so the two agree in law).

:func:`features` turns it into the map proxies measure: images → the head's pooled features
(after the head's norm and pooling, before the classifier).  ``norms="identity"`` replaces every
normalisation layer with the identity, as As-ViT's released code does when it measures L_E.
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
    """``net`` as images → pooled features (classifier removed), in eval mode, gradients on."""
    if norms not in NORMS:
        raise ValueError(f"norms must be one of {NORMS}, got {norms!r}")
    if not isinstance(getattr(net.head, "fc", None), nn.Linear):
        raise CompileError(f"proxies need a head with a linear classifier `fc`, not {type(net.head).__name__}")
    net.head.fc = nn.Identity()
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
