"""Token labeling with CutMix/Mixup switching (ViT-ResNAS §2.4), without a teacher.

Per batch, either

- **patch-wise CutMix**: the image is cut into the ``K × K`` token grid of the network's last
  stage; a box of whole tokens is pasted from the partner image.  Each token's label is the label
  of the image it shows (the partner's inside the box, the image's own outside); the image label
  is ``λ y + (1 − λ) y_partner`` with ``λ`` the share of tokens outside the box (the paper's
  "average of the binary mask M");
- **Mixup**: ``x = λ x + (1 − λ) x_partner``, the image label mixed the same way and copied to
  every token.

Which one, and ``λ``, follow timm's ``Mixup`` in its default ``batch`` mode (DeiT's, which the paper
builds on): one draw per batch; CutMix with probability ``switch_prob`` = 0.5 when both alphas are
positive, only the one whose alpha is positive otherwise, no mixing when both are 0 (the token
labels are then the image label); ``λ ~ Beta(α, α)``; the CutMix box has side ``round(K √(1 − λ))``
tokens around a uniform centre, clipped to the grid, and ``λ`` is corrected to the area kept (timm's
``correct_lam``).  Labels are smoothed as the run's ``label_smoothing`` (timm's ``mixup_target``).

Pairs: sample ``i`` of the step's global batch is mixed with ``i xor 1`` (its neighbour; timm
flips the batch instead, which a process holding a slice of the batch cannot do).  A rank's slice
starts at an even global offset when the per-process batch is even, so a pair never straddles two
processes and a 2-process run mixes exactly as a 1-process run with twice the batch; a sample
whose neighbour is not in the slice (an odd last sample) is paired with itself (left unmixed).

Every draw comes from ``random.Random`` seeded with ``(seed, step)``: the same on every rank and
on resume.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.data.mixup import one_hot

#: timm's Mixup ``switch_prob`` default, DeiT's setting
SWITCH_PROB = 0.5


@dataclass(frozen=True)
class MixDraw:
    """One batch's mixing: ``kind`` (``cutmix``, ``mixup`` or ``none``); ``lam`` the weight of each
    image's own label; ``box`` the pasted tokens ``(row0, row1, col0, col1)`` (half-open, CutMix)."""

    kind: str
    lam: float
    box: tuple[int, int, int, int] | None = None


def mix_rng(seed: int, step: int) -> random.Random:
    """The token-labelling mix's RNG for one step: a function of (seed, step) alone."""
    return random.Random(f"spacelang-tokenlabel/{seed}/{step}")


def draw_mix(rng: random.Random, grid: int, mixup_alpha: float, cutmix_alpha: float,
             switch_prob: float = SWITCH_PROB) -> MixDraw:
    """The batch's mixing on a ``grid × grid`` token grid (see the module docstring)."""
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return MixDraw("none", 1.0)
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = rng.random() < switch_prob
    else:
        use_cutmix = cutmix_alpha > 0
    if not use_cutmix:
        return MixDraw("mixup", rng.betavariate(mixup_alpha, mixup_alpha))
    lam = rng.betavariate(cutmix_alpha, cutmix_alpha)
    side = round(grid * math.sqrt(1.0 - lam))
    cy, cx = rng.randrange(grid), rng.randrange(grid)
    r0, r1 = max(cy - side // 2, 0), min(cy - side // 2 + side, grid)
    c0, c1 = max(cx - side // 2, 0), min(cx - side // 2 + side, grid)
    lam = 1.0 - (r1 - r0) * (c1 - c0) / grid ** 2
    return MixDraw("cutmix", lam, (r0, r1, c0, c1))


def partners(offset: int, n: int, device=None) -> torch.Tensor:
    """Local index of each local sample's partner (global ``i xor 1``; itself when outside the slice)."""
    i = torch.arange(offset, offset + n)
    p = (i ^ 1) - offset
    keep = (p >= 0) & (p < n)
    return torch.where(keep, p, i - offset).to(device)


def soft_labels(labels: torch.Tensor, classes: int, smoothing: float) -> torch.Tensor:
    """One-hot rows with label smoothing, as timm's ``mixup_target`` makes them (off = s/C,
    on = 1 − s + s/C)."""
    off = smoothing / classes
    return one_hot(labels.long(), classes, on_value=1.0 - smoothing + off, off_value=off)


def token_grid_mask(grid: int, box: tuple[int, int, int, int] | None, device=None) -> torch.Tensor:
    """``(grid², )`` bool, row-major over the token grid: True for the tokens inside the box."""
    m = torch.zeros(grid, grid, dtype=torch.bool, device=device)
    if box is not None:
        r0, r1, c0, c1 = box
        m[r0:r1, c0:c1] = True
    return m.reshape(-1)


def pixel_box(box: tuple[int, int, int, int], grid: int, height: int, width: int) -> tuple[int, int, int, int]:
    """The box's pixel rows and columns (token ``k`` covers pixels ``[k·H/K, (k+1)·H/K)``)."""
    r0, r1, c0, c1 = box
    return height * r0 // grid, height * r1 // grid, width * c0 // grid, width * c1 // grid


def mix_batch(x: torch.Tensor, labels: torch.Tensor, draw: MixDraw, grid: int, classes: int,
              smoothing: float, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mixed images, image targets (n, classes), token targets (n, grid², classes))`` of this
    slice (starting at ``offset`` in the step's global batch)."""
    n = len(x)
    p = partners(offset, n, x.device)
    own, other = soft_labels(labels, classes, smoothing), soft_labels(labels[p], classes, smoothing)
    lam = draw.lam
    if draw.kind == "none":
        return x, own, own[:, None, :].expand(n, grid * grid, classes)
    target = lam * own + (1.0 - lam) * other
    if draw.kind == "mixup":
        mixed = lam * x + (1.0 - lam) * x[p]
        return mixed, target, target[:, None, :].expand(n, grid * grid, classes)
    r0, r1, c0, c1 = pixel_box(draw.box, grid, x.shape[-2], x.shape[-1])
    mixed = x.clone()
    mixed[:, :, r0:r1, c0:c1] = x[p][:, :, r0:r1, c0:c1]
    inside = token_grid_mask(grid, draw.box, x.device)[None, :, None]      # (1, K², 1)
    tokens = torch.where(inside, other[:, None, :], own[:, None, :])      # (n, K², classes)
    return mixed, target, tokens


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets over the last axis, unreduced, in float32."""
    return -(target * F.log_softmax(logits.float(), dim=-1)).sum(-1)


__all__ = ["SWITCH_PROB", "MixDraw", "mix_rng", "draw_mix", "partners", "soft_labels", "token_grid_mask",
           "pixel_box", "mix_batch", "soft_cross_entropy"]
