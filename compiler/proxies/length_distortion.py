"""L_E, the expected length distortion (As-ViT §3.2): how much the network stretches a circle.

The input curve is the circle ``h(θ) = √N (u0 cos θ + u1 sin θ)`` in a random 2-D plane of
pixel space (``u0``, ``u1`` orthonormal, ``N = C·H·W``).  Its image through the network ``f`` has
velocity ``v(θ) = ∂θ f(h(θ)) = J_f(h(θ)) · h'(θ)`` — a Jacobian-vector product, computed here in
forward mode (``torch.func.jvp``), all angles in one batch: one forward pass with tangents,
never one backward pass per output dimension.  The paper's length distortion is the output
curve's length over the input's parameter length, ``L_E = (1/2π) ∫ ‖v(θ)‖ dθ``; we estimate the
integral at ``angles`` equally spaced θ = 2πk/angles (the rectangle rule, exact for a
trigonometric polynomial of degree below ``angles``), i.e. the mean of ‖v(θ_k)‖.
"""
from __future__ import annotations

import math

import torch
from torch.func import jvp

from .forward_attention import forward_mode_attention
from .registry import register

ANGLES = 10  # As-ViT's released code samples 10 angles


def random_plane(n: int, generator: torch.Generator, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Two orthonormal vectors of R^n (Gaussian draws, Gram–Schmidt)."""
    a = torch.randn(n, generator=generator, dtype=torch.float64)
    b = torch.randn(n, generator=generator, dtype=torch.float64)
    u0 = a / a.norm()
    b = b - (b @ u0) * u0
    return u0.to(dtype), (b / b.norm()).to(dtype)


def circle(u0: torch.Tensor, u1: torch.Tensor, shape: tuple[int, ...], angles: int = ANGLES,
           radius: float | None = None):
    """Points ``h(θ_k)`` and velocities ``h'(θ_k)`` of the circle of ``radius`` (default √N, the
    paper's), as image batches."""
    theta = torch.arange(angles, dtype=torch.float64) * (2 * math.pi / angles)
    c, s = theta.cos().to(u0.dtype)[:, None], theta.sin().to(u0.dtype)[:, None]
    r = math.sqrt(u0.numel()) if radius is None else float(radius)
    points = r * (c * u0 + s * u1)
    velocities = r * (-s * u0 + c * u1)
    return points.view(angles, *shape), velocities.view(angles, *shape)


def curve_speeds(f, points: torch.Tensor, velocities: torch.Tensor) -> torch.Tensor:
    """‖J_f(h(θ_k)) h'(θ_k)‖ for each angle: one batched forward-mode pass."""
    # the fused attention kernel has no forward-mode derivative: routed through one written out
    with forward_mode_attention():
        _, tangents = jvp(f, (points,), (velocities,))
    return tangents.flatten(1).norm(dim=1)


@register("length_distortion", alias="le", higher_is_better=True)
def length_distortion(f, input_shape, generator: torch.Generator, angles: int = ANGLES, plane=None,
                      radius: float | None = None) -> float:
    """Expected length distortion L_E of a circle in a random 2-D plane of input space (higher: more complex).

    ``radius`` defaults to the paper's √N; As-ViT's released code uses 1 (an ablation option)."""
    n = math.prod(input_shape)
    u0, u1 = plane if plane is not None else random_plane(n, generator)
    points, velocities = circle(u0.reshape(-1), u1.reshape(-1), tuple(input_shape), angles, radius)
    with torch.no_grad():
        return float(curve_speeds(f, points, velocities).mean())
