"""In-place distillation losses: the student's logits against the detached teacher's.

- ``kl``: KL(p_teacher ‖ q_student), averaged over the batch (OFA/BigNAS's in-place KD);
- ``alpha``: AlphaNet's adaptive α-divergence (Wang et al., 2021, §3): per sample the larger of
  D_α₋(p ‖ q) and D_α₊(p ‖ q) with α₋ = −1, α₊ = 1, the importance weights (p/q)^α clipped at 5.

D_α(p ‖ q) = Σ_i q_i f(p_i/q_i) with f(t) = (t^α − 1) / (α(α − 1)) (α = 1: KL(p ‖ q); α = 0: KL(q ‖ p)).
Its gradient in the student's parameters θ is −Σ_i q_i ρ(t_i) ∇θ log q_i with
ρ(t) = t^α/α + 1/(α(α − 1)) (α = 1: ρ = t; α = 0: ρ = log t − 1), derived from f − t f′.  With
clipped weights the loss is no longer differentiable where the clip binds, so — as AlphaNet does —
the gradient is this expression with the clipped t^α held constant, and the loss value reported is
the clipped divergence.  Both are computed in float32 whatever the autocast dtype.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ALPHA_MIN, ALPHA_MAX, IW_CLIP = -1.0, 1.0, 5.0


def kl_divergence(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(softmax(teacher) ‖ softmax(student)); ``teacher`` is not differentiated."""
    log_q = F.log_softmax(student.float(), dim=1)
    p = F.softmax(teacher.detach().float(), dim=1)
    return F.kl_div(log_q, p, reduction="batchmean")


def _alpha_terms(log_q: torch.Tensor, log_p: torch.Tensor, alpha: float, clip: float):
    """Per sample ``(divergence, surrogate)``: the clipped D_α and a loss whose gradient is D_α's
    (clipped weights held constant)."""
    q = log_q.exp().detach()
    log_t = (log_p - log_q).detach()
    if abs(alpha - 1.0) < 1e-3:                      # KL(p ‖ q)
        t = log_t.exp().clamp(max=clip)
        div, rho = (q * t * log_t).sum(1), t
    elif abs(alpha) < 1e-3:                          # KL(q ‖ p)
        log_t = log_t.clamp(max=math.log(clip))     # p/q clipped at ``clip``
        div, rho = (-q * log_t).sum(1), log_t - 1.0
    else:
        w = (alpha * log_t).exp().clamp(max=clip)    # (p/q)^α, clipped
        base = 1.0 / (alpha * (alpha - 1.0))
        div, rho = (q * (w - 1.0)).sum(1) * base, w / alpha + base
    surrogate = -(q * rho * log_q).sum(1)
    return div, surrogate


def alpha_divergence(student: torch.Tensor, teacher: torch.Tensor, alpha_min: float = ALPHA_MIN,
                     alpha_max: float = ALPHA_MAX, clip: float = IW_CLIP) -> torch.Tensor:
    """AlphaNet's adaptive α-divergence, mean over the batch (see the module docstring)."""
    log_q = F.log_softmax(student.float(), dim=1)
    log_p = F.log_softmax(teacher.detach().float(), dim=1)
    lo_div, lo_sur = _alpha_terms(log_q, log_p, alpha_min, clip)
    hi_div, hi_sur = _alpha_terms(log_q, log_p, alpha_max, clip)
    pick = lo_div > hi_div
    div = torch.where(pick, lo_div, hi_div).mean()
    sur = torch.where(pick, lo_sur, hi_sur).mean()
    return sur + (div - sur).detach()   # the value of the divergence, the gradient of the surrogate


DIVERGENCES = {"kl": kl_divergence, "alpha": alpha_divergence}

__all__ = ["DIVERGENCES", "kl_divergence", "alpha_divergence", "ALPHA_MIN", "ALPHA_MAX", "IW_CLIP"]
