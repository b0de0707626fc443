"""Tensor functions shared by the elastic ops and the subnets they extract.

Both run exactly this code, so an extracted subnet computes what the supernet computes, op for op.
Tokens are ``(B, N, C)`` tensors, row-major over the ``size``×``size`` map, with the class token
first when there is one.  Index tables and masks are constants cached per (shape, device).
"""
from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F


def constant(fn):
    """Cache ``fn``'s tensors per arguments (``lru_cache``), always built as ordinary tensors.

    A table first built under ``torch.inference_mode()`` would be an inference tensor, and every
    later training forward that reads it from the cache would fail ("Inference tensors cannot be
    saved for backward"); so the body runs with inference mode off."""

    @functools.lru_cache(maxsize=256)
    @functools.wraps(fn)
    def cached(*args, **kwargs):
        with torch.inference_mode(False):
            return fn(*args, **kwargs)

    return cached


# ---------------------------------------------------------------- tokens <-> maps
def tokens_to_map(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, size², C)`` tokens → ``(B, C, size, size)`` map."""
    b, _, c = x.shape
    return x.transpose(1, 2).reshape(b, c, size, size)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` map → ``(B, H·W, C)`` tokens."""
    return x.flatten(2).transpose(1, 2)


def merge_2x2(x: torch.Tensor, size: int) -> torch.Tensor:
    """Swin patch merging's gather: ``(B, size², C)`` → ``(B, (size/2)², 4C)``.

    The 4C channels are ordered channel-major (``c·4 + g``; ``g = 2·dx + dy`` over the 2×2
    neighbourhood, Swin's x0..x3 order) rather than Swin's group-major ``g·C + c``: then the
    first ``4c`` channels are exactly the neighbourhoods of the first ``c`` input channels, so an
    elastic input width slices a leading block of the norm and linear weights.
    """
    b, _, c = x.shape
    h = size // 2
    return x.reshape(b, h, 2, h, 2, c).permute(0, 1, 3, 5, 4, 2).reshape(b, h * h, 4 * c)


def avg_pool_tokens(x: torch.Tensor, size: int) -> torch.Tensor:
    """2×2 average pooling of ``(B, size², C)`` patch tokens (ViT-ResNAS's RSR skip path)."""
    return map_to_tokens(F.avg_pool2d(tokens_to_map(x, size), 2))


# ---------------------------------------------------------------- windows
def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, S, S, C)`` → ``(B·nW, window², C)``, windows row-major."""
    b, s, _, c = x.shape
    n = s // window
    return x.reshape(b, n, window, n, window, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_merge(w: torch.Tensor, window: int, size: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B·nW, window², C)`` → ``(B, S, S, C)``."""
    c = w.shape[-1]
    n = size // window
    return w.reshape(-1, n, n, window, window, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, size, size, c)


def windowed(x: torch.Tensor, size: int, window: int, shift: int, fn) -> torch.Tensor:
    """Run ``fn(windows, mask)`` on the (cyclically shifted) windows of ``(B, size², C)`` tokens.

    ``mask`` is Swin's shifted-window attention mask ``(nW, window², window²)`` (0 / -100) or None.
    """
    b, n, c = x.shape
    m = x.view(b, size, size, c)
    if shift:
        m = torch.roll(m, shifts=(-shift, -shift), dims=(1, 2))
    mask = shift_mask(size, window, shift, x.device, x.dtype) if shift else None
    out = window_merge(fn(window_partition(m, window), mask), window, size)
    if shift:
        out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
    return out.reshape(b, n, c)


@constant
def shift_mask(size: int, window: int, shift: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Swin's mask for shifted windows: tokens from different regions of the rolled map never attend."""
    region = torch.zeros(1, size, size, 1)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in cuts:
        for cols in cuts:
            region[:, rows, cols, :] = label
            label += 1
    win = window_partition(region, window).squeeze(-1)  # nW, window²
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0).to(device=device, dtype=dtype)


@constant
def window_bias_index(window: int, table_window: int, device: torch.device) -> torch.Tensor:
    """``(window², window²)`` rows of a Swin bias table built for windows of side ``table_window``.

    Relative offsets (dy, dx) ∈ [-(w-1), w-1]² index row ``(dy + W-1)·(2W-1) + (dx + W-1)``; a
    smaller window therefore reads a centred sub-block of the largest window's table.
    """
    r = torch.arange(window)
    coords = torch.stack(torch.meshgrid(r, r, indexing="ij")).flatten(1)  # 2, w²
    rel = coords[:, :, None] - coords[:, None, :]
    span = table_window - 1
    return ((rel[0] + span) * (2 * table_window - 1) + rel[1] + span).to(device)


def window_bias_rows(window: int, table_window: int) -> torch.Tensor:
    """Rows of the ``table_window`` table that form a standalone table for ``window`` (extraction)."""
    r = torch.arange(-(window - 1), window) + table_window - 1
    return (r[:, None] * (2 * table_window - 1) + r[None, :]).flatten()


def window_bias(table: torch.Tensor, heads: int, window: int, table_window: int) -> torch.Tensor:
    """Relative position bias ``(heads, window², window²)`` from a ``((2W-1)², H)`` table."""
    idx = window_bias_index(window, table_window, table.device)
    n = window * window
    return table[:, :heads][idx.view(-1)].view(n, n, heads).permute(2, 0, 1)


# ---------------------------------------------------------------- AutoFormer 2-D relative position
@constant
def rel2d_index(side: int, cls: bool, dist: int, centre: int, device: torch.device):
    """Row indices into AutoFormer's vertical and horizontal tables, ``(N, N)`` each.

    Offsets between patch tokens are clipped to ±``dist`` and stored at ``centre + offset``; every
    pair involving the class token uses row 0.
    """
    r = torch.arange(side * side)
    row, col = r // side, r % side
    dv = (row[None, :] - row[:, None]).clamp(-dist, dist) + centre
    dh = (col[None, :] - col[:, None]).clamp(-dist, dist) + centre
    if cls:
        dv, dh = F.pad(dv, (1, 0, 1, 0)), F.pad(dh, (1, 0, 1, 0))
    return dv.to(device), dh.to(device)


def rel2d(table_v: torch.Tensor, table_h: torch.Tensor, head_dim: int, side: int, cls: bool, dist: int,
          centre: int) -> torch.Tensor:
    """AutoFormer's 2-D relative position embedding ``(N, N, head_dim)``: vertical + horizontal rows."""
    iv, ih = rel2d_index(side, cls, dist, centre, table_v.device)
    return table_v[:, :head_dim][iv] + table_h[:, :head_dim][ih]


# ---------------------------------------------------------------- attention
def split_qkv(qkv: torch.Tensor, heads: int, head_dim: int):
    """q, k, v ``(B, h, N, d)`` from a standard (timm) qkv output laid out ``(3, heads, head_dim)``."""
    b, n, _ = qkv.shape
    return qkv.view(b, n, 3, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)


_explicit = False  # module switch, flipped only through explicit_attention()


@contextlib.contextmanager
def explicit_attention(on: bool = True):
    """Within the block, :func:`attend` uses explicit matmuls instead of the fused kernel.

    The default is the fused ``scaled_dot_product_attention`` (flash attention on GPU, the fused
    CPU kernel on CPU).  FLOP counters such as fvcore see only explicit ``@`` products, so the
    counting harness (tests/fvcounting.py) runs models inside ``explicit_attention()``.  The two
    paths compute the same function up to float rounding (≤ 1e-5 in float32, tested)."""
    global _explicit
    before, _explicit = _explicit, on
    try:
        yield
    finally:
        _explicit = before


def attention_is_explicit() -> bool:
    """Whether :func:`attend` currently uses the explicit matmul path."""
    return _explicit


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, bias: torch.Tensor | None = None,
           mask: torch.Tensor | None = None, rel_k: torch.Tensor | None = None,
           rel_v: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-head attention on ``(B, h, N, d)`` q, k, v → ``(B, N, h·d)``.

    ``q·scale @ kᵀ`` (+ AutoFormer's key term ``q·scale · rel_k[i, j]``) (+ Swin bias ``(h, N, N)``)
    (+ shifted-window mask ``(nW, N, N)``, batches grouped by window), softmax, ``attn @ v``
    (+ AutoFormer's value term ``Σ_j attn[i, j] · rel_v[i, j]``).

    Fused (``scaled_dot_product_attention``, the bias and mask as one additive ``attn_mask``)
    unless inside :func:`explicit_attention` or with AutoFormer's ``rel_pos``: its value term
    needs the attention probabilities themselves, which the fused kernel never exposes.
    """
    if _explicit or rel_k is not None or rel_v is not None:
        return _attend_explicit(q, k, v, scale, bias, mask, rel_k, rel_v)
    b, h, n, d = q.shape
    if mask is None:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    else:
        nw = mask.shape[0]
        add = mask.unsqueeze(1) if bias is None else bias + mask.unsqueeze(1)  # (nW, h|1, N, N)
        shape = (b // nw, nw, h, n, d)
        out = F.scaled_dot_product_attention(q.reshape(shape), k.reshape(shape), v.reshape(shape),
                                             attn_mask=add, scale=scale).view(b, h, n, d)
    return out.transpose(1, 2).reshape(b, n, h * d)


def _attend_explicit(q, k, v, scale, bias, mask, rel_k, rel_v) -> torch.Tensor:
    """:func:`attend` with explicit matmuls, so FLOP counters (fvcore) see every product."""
    b, h, n, d = q.shape
    q = q * scale
    attn = q @ k.transpose(-2, -1)
    if rel_k is not None:
        # per query token i: (B·h, d) @ (d, N) — AutoFormer's layout, one batched matmul
        attn = attn + (q.permute(2, 0, 1, 3).reshape(n, b * h, d) @ rel_k.transpose(1, 2)) \
            .view(n, b, h, n).permute(1, 2, 0, 3)
    if bias is not None:
        attn = attn + bias
    if mask is not None:
        nw = mask.shape[0]
        attn = (attn.view(-1, nw, h, n, n) + mask.unsqueeze(1)).view(b, h, n, n)
    attn = attn.softmax(dim=-1)
    out = attn @ v
    if rel_v is not None:
        out = out + (attn.permute(2, 0, 1, 3).reshape(n, b * h, n) @ rel_v).view(n, b, h, d).permute(1, 2, 0, 3)
    return out.transpose(1, 2).reshape(b, n, h * d)
