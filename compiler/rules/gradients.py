"""Two groups of gradients — the largest subnet's (∇sup) and the other subnets' sum (∇sub) — as
flat vectors: their conflict ratio (NASViT Table 4) and the gradient projection of Eq. 1.

Eq. 1 (prioritise the subnets): ``g = ∇sub + proj(∇sup)``, where ``proj(∇sup) = ∇sup −
(∇sup·∇sub / ‖∇sub‖²) ∇sub`` when ``cos(∇sup, ∇sub) < 0`` and ``∇sup`` otherwise.  Prioritising
the supernet (Table 7, last column) swaps the roles: ``g = ∇sup + proj(∇sub)``.

``scope`` decides what "the gradient" is: ``global`` — the whole parameter vector, as Eq. 1 is
written (the default); ``tensor`` — each parameter tensor on its own, the reading under which
Table 7's 0 % conflict ratio (measured per layer) holds by construction.  docs/nasvit-training.md
discusses the two readings.

The conflict ratio is the share of parameter tensors whose two gradients have a negative cosine
(below ``-COS_TOL``, so that a tensor made exactly orthogonal by the projection does not count
through float rounding); tensors where either gradient is zero (unused by one group) are left
out, since their cosine is undefined.  Scaling ∇sub by a positive number (sum or mean over the
subnets) changes no cosine.
"""
from __future__ import annotations

import torch

PRIORITIES = ("sub", "sup", "none")
SCOPES = ("global", "tensor")
#: cosines in (-COS_TOL, 0) are float rounding around an exact 0 (a projected pair), not a conflict
COS_TOL = 1e-6


def take_grads(params: list) -> list:
    """The parameters' gradients (None where a parameter received none); the parameters are left
    without gradients, so the next backward passes start a new group."""
    grads = [p.grad for p in params]
    for p in params:
        p.grad = None
    return grads


def flatten(grads: list, params: list) -> torch.Tensor:
    """One vector of the gradients in ``params`` order, zeros where a gradient is None."""
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float()
                      for g, p in zip(grads, params)])


def present(grads: list, device) -> torch.Tensor:
    """1.0 for each parameter that has a gradient, else 0.0 (summed over ranks: "any rank has one")."""
    return torch.tensor([g is not None for g in grads], dtype=torch.float32, device=device)


class Segments:
    """The tensor boundaries of a flat vector: per-tensor dot products by ``index_add``, in float64
    (a float32 sum over a large tensor errs by more than the cosine tolerance, and the products of
    gradients around 1e-20 underflow float32)."""

    def __init__(self, params: list):
        sizes = torch.tensor([p.numel() for p in params])
        self.count = len(params)
        self.ids = torch.repeat_interleave(torch.arange(self.count), sizes).to(params[0].device) \
            if params else torch.zeros(0, dtype=torch.long)

    def dots(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-tensor ``a · b`` (float64)."""
        return torch.zeros(self.count, dtype=torch.float64, device=a.device).index_add_(
            0, self.ids, a.double() * b.double())


def conflicts(sup: torch.Tensor, sub: torch.Tensor, seg: Segments) -> tuple[int, int]:
    """``(conflicting, defined)`` parameter tensors of the pair (see the module docstring)."""
    dots = seg.dots(sup, sub)
    n_sup, n_sub = seg.dots(sup, sup).sqrt(), seg.dots(sub, sub).sqrt()
    defined = (n_sup > 0) & (n_sub > 0)
    cos = dots / (n_sup * n_sub).clamp_min(torch.finfo(dots.dtype).tiny)
    return int(((cos < -COS_TOL) & defined).sum()), int(defined.sum())


def project(keep: torch.Tensor, other: torch.Tensor, scope: str, seg: Segments | None = None) -> torch.Tensor:
    """``other`` projected on the normal plane of ``keep`` where their cosine is negative (the
    whole vector, or each tensor); ``other`` itself elsewhere.  Returns a new tensor."""
    if scope == "global":
        dot = torch.dot(other.double(), keep.double())  # float64: the coefficient must be exact
        norm2 = torch.dot(keep.double(), keep.double())
        if dot < 0 and norm2 > 0:
            return other - (dot / norm2).to(other.dtype) * keep
        return other.clone()
    dots, norm2 = seg.dots(other, keep), seg.dots(keep, keep)
    projected = (dots < 0) & (norm2 > 0)
    coef = torch.where(projected, dots / norm2.clamp_min(torch.finfo(dots.dtype).tiny), torch.zeros_like(dots))
    out = (other.double() - coef[seg.ids] * keep.double()).to(other.dtype)
    # a tensor whose gradient was (anti-)parallel to ``keep`` — a one-element bias, say — projects
    # to 0; what float rounding leaves of it has a random sign and would count as a conflict
    null = projected & (seg.dots(out, out) <= (COS_TOL ** 2) * seg.dots(other, other))
    if bool(null.any()):
        out = out.masked_fill(null[seg.ids], 0.0)
    return out


def combine(sup: torch.Tensor, sub: torch.Tensor, prioritize: str, scope: str,
            seg: Segments | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two groups as they enter the update (Eq. 1): ``(sup', sub')`` with ``sup' + sub'`` the
    gradient; ``prioritize`` ``sub`` projects ∇sup, ``sup`` projects ∇sub, ``none`` leaves both."""
    if prioritize == "sub":
        return project(sub, sup, scope, seg), sub
    if prioritize == "sup":
        return sup, project(sup, sub, scope, seg)
    return sup, sub


class ConflictMeter:
    """Counts conflicting parameter tensors over an epoch, before (``raw``) and after the
    projection (``applied``: the gradients the update is made of; Table 7's row)."""

    def __init__(self):
        self.counts = [0, 0, 0, 0]  # applied conflicts, applied defined, raw conflicts, raw defined

    def add(self, applied: tuple[int, int], raw: tuple[int, int]) -> None:
        for i, v in enumerate((*applied, *raw)):
            self.counts[i] += v

    def pop(self) -> dict[str, str]:
        """``{"conflict", "conflict_raw"}`` in percent (empty when nothing was measured); resets."""
        c, n, rc, rn = self.counts
        self.counts = [0, 0, 0, 0]
        return {"conflict": f"{100.0 * c / n:.2f}" if n else "",
                "conflict_raw": f"{100.0 * rc / rn:.2f}" if rn else ""}


__all__ = ["PRIORITIES", "SCOPES", "COS_TOL", "take_grads", "flatten", "present", "Segments", "conflicts",
           "project", "combine", "ConflictMeter"]
