"""Exact analytic cost (parameters and FLOPs) of a network, from the IR alone — no torch.

``cost(space, arch)`` resolves the arch to a :class:`~spacelang.netspec.NetSpec` and sums the
per-layer costs that each kind computes from its normalised fields.  The default convention is
fvcore's (docs/counting.md): the tests hold it equal to ``fvcore.nn.FlopCountAnalysis`` and to
``sum(p.numel())`` on the compiler's extracted subnets and on timm's reference models.
"""
from __future__ import annotations

from typing import Any, Mapping

import attrs

from . import kinds
from .kinds.counting import CONVENTIONS
from .netspec import Layer, NetSpec


@attrs.frozen
class Cost:
    """Parameters and FLOPs (one fused multiply-add = 1) of a network or a layer, per image."""

    params: int = 0
    flops: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(self.params + other.params, self.flops + other.flops)

    def __radd__(self, other):
        # lets the builtin sum() start from 0
        if other == 0:
            return self
        return NotImplemented


@attrs.frozen
class LayerCost:
    """The cost of one layer, named by its position: ``stem``, ``STAGE.downsample``,
    ``STAGE.I`` (I is the block's supernet slot) or ``head``."""

    path: str
    kind: str
    params: int
    flops: int

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _layer_cost(layer: Layer, convention: str) -> tuple[int, int]:
    kind = kinds.get(layer.kind)
    if kind is None or kind.cost is None:
        raise ValueError(f"no cost model for layer kind {layer.kind!r}")
    return kind.cost(layer.fields, convention)


def netspec_cost(net: NetSpec, convention: str = "fvcore") -> Cost:
    """The cost of a concrete network under ``convention`` (``"fvcore"`` or ``"macs"``).

    ``"macs"`` counts only the multiply-accumulates of convolutions, linear layers and matrix
    products — the fvcore count without its LayerNorm/BatchNorm terms.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown counting convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
    params = flops = 0
    for layer in net.layers:
        p, f = _layer_cost(layer, convention)
        params += p
        flops += f
    return Cost(params, flops)


def cost(space, arch: Mapping[str, Any], convention: str = "fvcore", training: bool = True) -> Cost:
    """Exact cost of ``arch`` (a point of ``space``), computed from the IR alone.

    ``training=False`` leaves out the parameters only training uses (ViT-ResNAS's token-labelling
    head: :func:`spacelang.kinds.training_params`); their FLOPs are never counted (inference)."""
    net = space.resolve(arch)
    c = netspec_cost(net, convention)
    return c if training else Cost(c.params - kinds.training_params(net), c.flops)


def breakdown(net: NetSpec, convention: str = "fvcore") -> list[LayerCost]:
    """Per-layer costs in execution order (for ``count --json`` and the docs)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown counting convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
    return [LayerCost(path, layer.kind, *_layer_cost(layer, convention)) for path, layer in net.named_layers()]


def format_breakdown(rows: list[LayerCost]) -> str:
    """A plain-text table of :func:`breakdown` rows with a total line."""
    width = max([len(r.path) for r in rows] + [5])
    kw = max([len(r.kind) for r in rows] + [4])
    lines = [f"{'layer':<{width}}  {'kind':<{kw}}  {'params':>12}  {'flops':>15}"]
    for r in rows:
        lines.append(f"{r.path:<{width}}  {r.kind:<{kw}}  {r.params:>12,}  {r.flops:>15,}")
    total = sum((Cost(r.params, r.flops) for r in rows), Cost())
    lines.append(f"{'total':<{width}}  {'':<{kw}}  {total.params:>12,}  {total.flops:>15,}")
    return "\n".join(lines)


__all__ = ["Cost", "LayerCost", "cost", "netspec_cost", "breakdown", "format_breakdown", "CONVENTIONS"]
