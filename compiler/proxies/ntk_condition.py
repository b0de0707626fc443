"""κ_Θ, the condition number of the neural tangent kernel at initialisation (As-ViT §3.3, from TE-NAS).

For a batch of ``batch`` inputs x_i the empirical NTK is ``Θ_ij = ⟨∂θ g(x_i), ∂θ g(x_j)⟩`` over
all trainable parameters θ, where ``g(x)`` is the sum of the pooled features of ``x`` (TE-NAS's
choice: one gradient per sample, of the summed output).  The per-sample gradients come from
``torch.func`` (``vmap`` of ``grad`` over ``functional_call``): one batched pass, not a loop.
κ = λmax / λmin of Θ (eigenvalues in float64); lower means better conditioned, more trainable.
A Θ that is singular to float precision (λmin ≤ λmax·1e-12) gets κ = 1e12, not infinity, so
range normalisation in a search stays finite.
"""
from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap

from ..ops.functional import explicit_attention
from .registry import register

BATCH = 16          # As-ViT's released code: the NTK of 16 images
MAX_CONDITION = 1e12


def per_sample_gradients(f, x: torch.Tensor) -> torch.Tensor:
    """``(B, P)``: the gradient of each sample's summed output with respect to every trainable parameter."""
    params = {k: p.detach() for k, p in f.named_parameters() if p.requires_grad}
    buffers = {k: b.detach() for k, b in f.named_buffers()}

    def summed(p, xi):
        return functional_call(f, (p, buffers), (xi.unsqueeze(0),)).sum()

    with explicit_attention():  # per-sample gradients through vmap: the explicit attention path
        grads = vmap(grad(summed), in_dims=(None, 0))(params, x)
    return torch.cat([g.reshape(x.shape[0], -1) for g in grads.values()], dim=1)


def condition_number(gram: torch.Tensor) -> float:
    """λmax / λmin of a symmetric positive semi-definite matrix (capped at :data:`MAX_CONDITION`)."""
    eig = torch.linalg.eigvalsh(gram.double())
    hi, lo = float(eig[-1]), float(eig[0])
    if hi <= 0 or lo <= hi / MAX_CONDITION:
        return MAX_CONDITION
    return hi / lo


@register("ntk_condition", alias="ntk", higher_is_better=False)
def ntk_condition(f, input_shape, generator: torch.Generator, batch: int = BATCH, inputs=None) -> float:
    """Condition number κ = λmax/λmin of the NTK of pooled features over a batch (lower: more trainable)."""
    x = inputs if inputs is not None else torch.randn(batch, *input_shape, generator=generator)
    j = per_sample_gradients(f, x)
    return condition_number(j @ j.T)
