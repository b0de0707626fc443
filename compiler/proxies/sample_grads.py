"""Per-sample parameter gradients from one ordinary batched backward pass (module hooks).

For a network whose parameters all sit in ``nn.Linear``, ``nn.Conv2d`` (ungrouped) and
``nn.LayerNorm`` layers, and whose samples never interact (eval mode: no batch statistics), the
gradient of ``Σ_outputs f(x_i)`` with respect to a layer's weight is a contraction of that
layer's input for sample i with the gradient at its output for sample i — the layer's own
weight-gradient formula, kept per sample instead of summed over the batch (as Opacus and
BackPACK do).  A layer may see a batch that folds several rows per sample into its leading
dimension (attention windows: ``B·nW``); the ops keep the sample index outermost, so the rows of
sample i are the i-th block of ``B'/B`` rows.  So one forward pass records each layer's input, one backward pass of the batch's
summed output gives every output gradient, and the per-sample gradients follow by batched
matmuls.  Unlike ``vmap(grad(...))`` the backward is the ordinary one, so attention runs its fused
kernel (which has a backward but no batching rule) instead of explicit matmuls.

:func:`hooked_per_sample_gradients` returns ``None`` when a network falls outside this (a
parameter of another module type, a grouped convolution, a layer that never ran): the caller
then uses the general ``torch.func`` path.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


def _linear(m: nn.Linear, a: torch.Tensor, d: torch.Tensor, b: int) -> dict[str, torch.Tensor]:
    a, d = a.reshape(b, -1, a.shape[-1]), d.reshape(b, -1, d.shape[-1])
    return {"weight": torch.bmm(d.transpose(1, 2), a), "bias": d.sum(1)}


def _conv(m: nn.Conv2d, a: torch.Tensor, d: torch.Tensor, b: int) -> dict[str, torch.Tensor]:
    cols = F.unfold(a, m.kernel_size, m.dilation, m.padding, m.stride)  # (B', in·kh·kw, L)
    d = d.flatten(2)                                                      # (B', out, L)
    w = torch.bmm(d, cols.transpose(1, 2))
    return {"weight": w.reshape(b, -1, *w.shape[1:]).sum(1), "bias": d.reshape(b, -1, d.shape[1], d.shape[2]).sum((1, 3))}


def _layer_norm(m: nn.LayerNorm, a: torch.Tensor, d: torch.Tensor, b: int) -> dict[str, torch.Tensor]:
    shape = tuple(m.normalized_shape)
    xhat = F.layer_norm(a, shape, None, None, m.eps)
    return {"weight": (d * xhat).reshape(b, -1, *shape).sum(1), "bias": d.reshape(b, -1, *shape).sum(1)}


def _supported(m: nn.Module) -> Callable | None:
    if type(m) is nn.Linear:
        return _linear
    if type(m) is nn.Conv2d and m.groups == 1 and m.padding_mode == "zeros" and not isinstance(m.padding, str):
        return _conv
    if type(m) is nn.LayerNorm and m.elementwise_affine:
        return _layer_norm
    return None


def hooked_per_sample_gradients(f: nn.Module, x: torch.Tensor, selected: dict[str, torch.Tensor]
                                ) -> dict[str, torch.Tensor] | None:
    """``{name: (B, *shape)}`` for the parameters in ``selected`` (name → parameter of ``f``), or
    ``None`` when ``f`` is not made of supported layers only."""
    wanted = {id(p) for p in selected.values()}
    layers = {}
    for m in f.modules():
        own = [p for p in m.parameters(recurse=False) if id(p) in wanted]
        if not own:
            continue
        rule = _supported(m)
        if rule is None:
            return None
        layers[m] = rule
    calls: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []

    def record(m, inputs, output):
        calls.append((m, inputs[0].detach(), output))

    b = x.shape[0]

    handles = [m.register_forward_hook(record) for m in layers]
    try:
        with torch.enable_grad():
            out = f(x)
            if {m for m, _, _ in calls} != set(layers) or any(a.shape[0] % b for _, a, _ in calls):
                return None  # a layer whose parameters are used outside its own forward (or not at all)
            deltas = torch.autograd.grad(out.sum(), [o for _, _, o in calls], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    grads: dict[int, torch.Tensor] = {}
    for (m, a, _), d in zip(calls, deltas):
        if d is None:
            continue
        with torch.no_grad():
            for pname, g in layers[m](m, a, d, b).items():
                p = getattr(m, pname, None)
                if p is None or id(p) not in wanted:
                    continue
                g = g.reshape(x.shape[0], *p.shape)
                grads[id(p)] = grads[id(p)] + g if id(p) in grads else g
    return {name: grads.get(id(p), torch.zeros(x.shape[0], *p.shape, dtype=p.dtype, device=p.device))
            for name, p in selected.items()}


__all__ = ["hooked_per_sample_gradients"]
