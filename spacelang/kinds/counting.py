"""Shared arithmetic of the kinds' analytic cost functions (see docs/counting.md).

The reference convention is fvcore's ``FlopCountAnalysis`` on a model in eval mode, batch 1:
one fused multiply-add is one FLOP; convolutions, linear layers and matrix products (including
the attention products) count their multiply-adds, biases are free; LayerNorm counts 5 per
input element and eval-mode BatchNorm 2 (both affine); element-wise ops, activations, softmax,
``mean`` pooling, gathers and position-embedding additions count nothing.

Each cost function splits its FLOPs into ``macs`` (conv, linear, matmul) and ``extra`` (norms),
so that the ``macs`` convention — the multiply-accumulate count papers such as ViT-ResNAS
report — is the same arithmetic with the norms left out.
"""
from __future__ import annotations

#: names accepted by ``convention=``
CONVENTIONS = ("fvcore", "macs")

#: fvcore's ``norm_flop_counter``: 5 FLOPs per element for an affine LayerNorm
LAYER_NORM = 5
#: fvcore's ``batchnorm_flop_jit`` in eval mode with affine parameters: 2 FLOPs per element
BATCH_NORM = 2


def finish(params: int, macs: int, extra: int, convention: str) -> tuple[int, int]:
    """``(params, flops)`` of one layer under ``convention``."""
    if convention == "fvcore":
        return params, macs + extra
    if convention == "macs":
        return params, macs
    raise ValueError(f"unknown counting convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
