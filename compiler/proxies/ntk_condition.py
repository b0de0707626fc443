"""κ_Θ, the condition number of the neural tangent kernel at initialisation (As-ViT §3.3, from TE-NAS).

For a batch of ``batch`` inputs x_i the empirical NTK is ``Θ_ij = ⟨∂θ g(x_i), ∂θ g(x_j)⟩`` over
all trainable parameters θ, where ``g(x)`` is the sum of the pooled features of ``x`` (TE-NAS's
choice: one gradient per sample, of the summed output).  The per-sample gradients come from one
ordinary batched forward and backward pass with layer hooks (:mod:`.sample_grads`: attention
keeps its fused kernel) when the network is made of linear, convolution and LayerNorm layers, and
from ``torch.func`` (``vmap`` of ``grad`` over ``functional_call``, explicit attention) otherwise;
both are one batched pass, not a loop, and agree to float rounding (tested).
κ = λmax / λmin of Θ (eigenvalues in float64); lower means better conditioned, more trainable.
A Θ that is singular to float precision (λmin ≤ λmax·1e-12) gets κ = 1e12, not infinity, so
range normalisation in a search stays finite.
"""
from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap

from spacelang.errors import OptionError

from ..ops.functional import explicit_attention
from .registry import register
from .sample_grads import hooked_per_sample_gradients

BATCH = 16          # As-ViT's released code: the NTK of 16 images
MAX_CONDITION = 1e12


PARAMS = ("all", "weights")


def _selected(name: str, which: str) -> bool:
    # "weights": As-ViT's released code keeps the parameters whose name contains "weight" (no biases)
    return which == "all" or "weight" in name.rsplit(".", 1)[-1]


def _per_sample(f, x: torch.Tensor, params: str) -> dict[str, torch.Tensor]:
    if params not in PARAMS:
        raise OptionError(f"params must be one of {PARAMS}, got {params!r}")
    trainable = {k: p for k, p in f.named_parameters() if p.requires_grad}
    hooked = hooked_per_sample_gradients(f, x, {k: p for k, p in trainable.items() if _selected(k, params)})
    return hooked if hooked is not None else _vmap_per_sample_gradients(f, x, params)


def per_sample_gradients(f, x: torch.Tensor, params: str = "all") -> torch.Tensor:
    """``(B, P)``: the gradient of each sample's summed output with respect to every trainable
    parameter (``params="all"``) or only the weights (``"weights"``: no biases)."""
    return torch.cat([g.reshape(x.shape[0], -1) for g in _per_sample(f, x, params).values()], dim=1)


def ntk_gram(f, x: torch.Tensor, params: str = "all") -> torch.Tensor:
    """Θ = J Jᵀ ``(B, B)`` in float64, summed parameter by parameter (J = :func:`per_sample_gradients`,
    never concatenated)."""
    gram = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64)
    for g in _per_sample(f, x, params).values():
        g = g.reshape(x.shape[0], -1)
        gram += (g @ g.T).double()
    return gram


def _vmap_per_sample_gradients(f, x: torch.Tensor, params: str) -> dict[str, torch.Tensor]:
    named = {k: p.detach() for k, p in f.named_parameters() if p.requires_grad}
    params_ = {k: p for k, p in named.items() if _selected(k, params)}
    frozen = {k: p for k, p in named.items() if k not in params_}
    buffers = {k: b.detach() for k, b in f.named_buffers()}

    def summed(p, xi):
        return functional_call(f, (p, frozen, buffers), (xi.unsqueeze(0),)).sum()

    with explicit_attention():  # per-sample gradients through vmap: the explicit attention path
        return vmap(grad(summed), in_dims=(None, 0))(params_, x)


def condition_number(gram: torch.Tensor) -> float:
    """λmax / λmin of a symmetric positive semi-definite matrix (capped at :data:`MAX_CONDITION`)."""
    eig = torch.linalg.eigvalsh(gram.double())
    hi, lo = float(eig[-1]), float(eig[0])
    if hi <= 0 or lo <= hi / MAX_CONDITION:
        return MAX_CONDITION
    return hi / lo


@register("ntk_condition", alias="ntk", higher_is_better=False)
def ntk_condition(f, input_shape, generator: torch.Generator, batch: int = BATCH, inputs=None,
                  params: str = "all") -> float:
    """Condition number κ = λmax/λmin of the NTK of pooled features over a batch (lower: more trainable).

    ``params="weights"`` restricts Θ to the weights, as As-ViT's released code (an ablation option)."""
    x = inputs if inputs is not None else torch.randn(batch, *input_shape, generator=generator)
    return condition_number(ntk_gram(f, x, params))
