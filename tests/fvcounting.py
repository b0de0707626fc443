"""fvcore FLOP counting and parameter counting shared by the cost and registry tests.

fvcore does not count ``aten::scaled_dot_product_attention`` by default; the convention counts
the attention products (docs/counting.md), so :func:`fvcore_flops` registers a handle that counts
it as its two matmuls.  The compiler's attention is fused by default; :func:`fvcore_flops` traces
it inside ``explicit_attention()`` so fvcore sees its explicit matmuls (the convention's terms).
"""
from __future__ import annotations

from math import prod


def _sdpa_flops(inputs, outputs):
    """``q @ kᵀ`` and ``attn @ v`` of ``scaled_dot_product_attention``, as fvcore counts matmuls."""
    q, k, v = (i.type().sizes() for i in inputs[:3])
    return prod(q) * k[-2] + prod(q[:-1]) * k[-2] * v[-1]


def fvcore_flops(model, x, sdpa: bool = True) -> int:
    """FLOPs of ``model(x)`` by fvcore's ``FlopCountAnalysis`` (the compiler's attention explicit; timm's
    fused attention counted by the handle)."""
    from fvcore.nn import FlopCountAnalysis

    from spacelang.compiler.ops.functional import explicit_attention

    fa = FlopCountAnalysis(model, x)
    if sdpa:
        fa.set_op_handle("aten::scaled_dot_product_attention", _sdpa_flops)
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    with explicit_attention():  # fvcore traces here, on the first total()
        return int(fa.total())


def numel(model) -> int:
    """Parameters of ``model``: ``sum(p.numel())``."""
    return sum(p.numel() for p in model.parameters())
