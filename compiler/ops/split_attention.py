"""As-ViT attention splits: self-attention inside S×S non-overlapping windows, no shift, no bias.

``splits`` S (As-ViT §3.1, Table 1) cuts the ``size``×``size`` token map into S×S windows of
side ``size / S``; every token attends to the tokens of its own window only.  As-ViT does not
shift the windows (§3.1: "we do not use shifted windows") and adds no relative position bias,
so this is Swin's window attention with the shift and the bias table left out.

A map that S does not divide is refused: the checker rejects such an arch (``splits S does not
divide the N×N feature map``), and :func:`split_window` raises :class:`CompileError` as a guard
for layers built by hand.  (Padding the map to a multiple of S, as some window codes do, would
change the cost model and the tokens' neighbourhoods at the border; a refused arch is never
silently a different network.)
"""
from __future__ import annotations

from typing import Callable

import torch

from spacelang.errors import CompileError

from . import functional as Fn


def split_window(size: int, splits: int) -> int:
    """The window side of ``splits`` S on a ``size``×``size`` map (``size / S``)."""
    if splits < 1 or size % splits:
        raise CompileError(f"attention splits {splits} do not divide the {size}×{size} feature map",
                           hint=f"choose a divisor of {size}")
    return size // splits


def split_attention(x: torch.Tensor, size: int, splits: int,
                    attend: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Run ``attend`` (tokens ``(B', n, C)`` → ``(B', n, C)``) on each window of ``(B, size², C)`` tokens.

    The windows are batched (``B·S²`` sequences of ``(size/S)²`` tokens, row-major windows) and
    merged back in the tokens' row-major order; ``splits 1`` is global attention unchanged.
    """
    if splits == 1:
        return attend(x)
    window = split_window(size, splits)
    return Fn.windowed(x, size, window, 0, lambda w, _mask: attend(w))


__all__ = ["split_window", "split_attention"]
