"""Forward-mode derivative of scaled dot-product attention, for L_E's ``torch.func.jvp``.

PyTorch's fused ``scaled_dot_product_attention`` has no forward-mode derivative, and the explicit
matmul path differentiated by ``jvp`` materialises about eight attention-sized tensors (scores,
their tangents, the softmax's intermediates).  Within :func:`forward_mode_attention` every call of
``F.scaled_dot_product_attention`` (the ops' fused path) is routed through :class:`_Attention`,
whose forward is the fused kernel itself and whose tangent is written out:

    S = scale·q kᵀ + bias,  P = softmax(S),  O = P v
    dS = scale·(dq kᵀ + q dkᵀ) + dbias        (one matmul: [dq, q]·[k, dk]ᵀ)
    W = P ⊙ dS,  r = rowsum(W)
    dO = P dv + W v − r ⊙ O

— two attention-sized tensors (P, W) per chunk of the batch, computed in chunks that bound them
to :data:`CHUNK_BYTES`.  The same function as the explicit path, to float rounding (tested).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from spacelang.errors import CompileError

CHUNK_BYTES = 64 * 2 ** 20  # one attention-sized chunk of P or W at most


def attention_tangent(q, k, v, bias, out, dq, dk, dv, dbias, scale: float) -> torch.Tensor:
    """The tangent ``dO`` of ``O = softmax(scale·q kᵀ + bias) v`` (``out`` = O), any leading dims."""
    shape = out.shape
    n, m, d = q.shape[-2], k.shape[-2], q.shape[-1]
    lead = q.shape[:-2]
    flat = (-1, n, d)
    zeros = torch.zeros_like
    dq = zeros(q) if dq is None else dq
    dk = zeros(k) if dk is None else dk
    qq = torch.cat([dq, q], -1).reshape(-1, n, 2 * d) * scale  # [dq, q]
    kk = torch.cat([k, dk], -1).reshape(-1, m, 2 * d)          # [k, dk]: [dq, q]·[k, dk]ᵀ = dq kᵀ + q dkᵀ
    q_s = (q * scale).reshape(flat)
    k_, v_ = k.reshape(-1, m, d), v.reshape(-1, m, v.shape[-1])
    dv_ = None if dv is None else dv.reshape(-1, m, v.shape[-1])
    o_ = out.reshape(-1, n, v.shape[-1])
    full = lead + (n, m)
    b_ = None if bias is None else bias.expand(full).reshape(-1, n, m)
    db_ = None if dbias is None else dbias.expand(full).reshape(-1, n, m)
    rows = q_s.shape[0]
    step = max(1, CHUNK_BYTES // max(1, n * m * q.element_size()))
    result = torch.empty_like(o_)
    for i in range(0, rows, step):
        j = slice(i, i + step)
        s = torch.bmm(q_s[j], k_[j].transpose(1, 2))
        if b_ is not None:
            s = s + b_[j]
        p = s.softmax(-1)
        w = torch.bmm(qq[j], kk[j].transpose(1, 2))
        if db_ is not None:
            w = w + db_[j]
        w.mul_(p)
        r = w.sum(-1, keepdim=True)
        t = torch.bmm(w, v_[j]).sub_(r * o_[j])
        if dv_ is not None:
            t.baddbmm_(p, dv_[j])
        result[j] = t
    return result.view(shape)


class _Attention(torch.autograd.Function):
    """Fused attention forward, explicit forward-mode tangent (no backward: L_E needs none)."""

    @staticmethod
    def forward(q, k, v, bias, scale):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)

    @staticmethod
    def setup_context(ctx, inputs, output):
        q, k, v, bias, scale = inputs
        ctx.save_for_forward(q, k, v, bias, output)
        ctx.scale = scale

    @staticmethod
    def jvp(ctx, dq, dk, dv, dbias, _dscale):
        q, k, v, bias, out = ctx.saved_tensors
        return attention_tangent(q, k, v, bias, out, dq, dk, dv, dbias, ctx.scale)


def _routed(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    if dropout_p or is_causal or enable_gqa or (attn_mask is not None and attn_mask.dtype == torch.bool):
        raise CompileError("forward-mode attention supports an additive float mask only "
                           "(no dropout, causal or boolean mask, no grouped-query attention)")
    return _Attention.apply(q, k, v, attn_mask, q.shape[-1] ** -0.5 if scale is None else float(scale))


class _RouteAttention(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return _routed(*args, **kwargs)
        return func(*args, **kwargs)


@contextlib.contextmanager
def forward_mode_attention():
    """Within the block, fused attention calls get an explicit, memory-lean forward-mode derivative."""
    with _RouteAttention():
        yield


__all__ = ["forward_mode_attention", "attention_tangent", "CHUNK_BYTES"]
