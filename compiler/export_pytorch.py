"""A standalone PyTorch source file (``model.py``) for an extracted subnet.

The file holds plain ``torch.nn`` modules only — no spacelang or timm import — with one class per
module kind the subnet uses and the arch's numbers written as constructor literals in
``build()``.  Its modules keep the attribute names of the extracted subnet, so the subnet's own
``state_dict`` (``model.safetensors``) loads into it unchanged (``strict=True``).

A small registry maps each extracted module class (``Block``, ``PatchEmbed``, …, from
``compiler/ops``) to a :class:`Generator`: the code snippets its class needs and a function
writing its constructor call from the module's sizes.  A module type without a generator is a
:class:`~spacelang.errors.CompileError` naming it, so a new kind fails loudly until its generator
is written; :func:`exportable` lists the covered types.  The generated code is checked against
the supernet by the exporter (:mod:`.export`), so a generator that drifts from its op is caught.
"""
from __future__ import annotations

from typing import Any, Callable

import attrs
import torch.nn as nn

from spacelang.errors import CompileError

from .ops.conv_stem import ConvStem
from .ops.heads import LinearHead, PreLogits
from .ops.mbconv import MBConv, SqueezeExcite
from .ops.mbpool import MBPool
from .ops.nasvit_transformer import NASViTBlock
from .ops.patch_embed import PatchEmbed, UnfoldEmbed
from .ops.patch_merging import PatchMerging
from .ops.rsr import RSR
from .ops.transformer import Attention, Block

LN_EPS = 1e-6  # the LayerNorm eps every op uses (ElasticLayerNorm's); the templates write it


# ------------------------------------------------------------------------------------------ snippets
# name -> (source, snippets it needs).  Emitted once each, dependencies first.
SNIPPETS: dict[str, tuple[str, tuple[str, ...]]] = {}


def _snippet(name: str, source: str, needs: tuple[str, ...] = ()) -> None:
    SNIPPETS[name] = (source.strip("\n") + "\n", needs)


_snippet("maps", '''
def tokens_to_map(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, size², C) tokens -> (B, C, size, size) map."""
    b, _, c = x.shape
    return x.transpose(1, 2).reshape(b, c, size, size)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) map -> (B, H·W, C) tokens, row-major."""
    return x.flatten(2).transpose(1, 2)
''')

_snippet("tokens", '''
class Tokens(nn.Module):
    """Class token (prepended) and absolute position embedding (added).

    A position embedding with a row per patch token only is added before the class token is
    prepended; one with a row for every token (the class token's first) after."""

    def __init__(self, dim: int, cls: bool, pos_rows: int):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls else None
        self.pos_embed = nn.Parameter(torch.zeros(1, pos_rows, dim)) if pos_rows else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = self.pos_embed
        if pos is not None and pos.shape[1] == x.shape[1]:
            x, pos = x + pos, None
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if pos is not None:
            x = x + pos
        return x
''', ("maps",))

_snippet("patch_embed", '''
class PatchEmbed(nn.Module):
    """Strided convolution to tokens, optional LayerNorm, class token, position embedding.

    in_size > 0: a transition, whose input is the tokens of an in_size×in_size map."""

    def __init__(self, in_channels: int, dim: int, kernel: int, stride: int, padding: int, norm: bool,
                 cls: bool, pos_rows: int, in_size: int = 0, dilation: int = 1):
        super().__init__()
        self.in_size = in_size
        self.proj = nn.Conv2d(in_channels, dim, kernel, stride, padding, dilation)
        self.norm = nn.LayerNorm(dim, eps=1e-6) if norm else None
        self.tokens = Tokens(dim, cls, pos_rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_size:
            x = tokens_to_map(x, self.in_size)
        x = map_to_tokens(self.proj(x))
        if self.norm is not None:
            x = self.norm(x)
        return self.tokens(x)
''', ("maps", "tokens"))

_snippet("unfold_patch_embed", '''
class UnfoldProjection(nn.Module):
    """As-ViT's re-embedding: unfold kernel×kernel patches, LayerNorm each, bias-free projection."""

    def __init__(self, in_channels: int, dim: int, kernel: int, stride: int, padding: int, dilation: int = 1):
        super().__init__()
        width = in_channels * kernel * kernel
        self.unfold = nn.Unfold(kernel, dilation=dilation, padding=padding, stride=stride)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.reduction = nn.Linear(width, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.norm(self.unfold(x).transpose(1, 2)))


class UnfoldPatchEmbed(nn.Module):
    """Patch embedding by UnfoldProjection, optional LayerNorm, class token, position embedding.

    in_size > 0: a transition, whose input is the tokens of an in_size×in_size map."""

    def __init__(self, in_channels: int, dim: int, kernel: int, stride: int, padding: int, norm: bool,
                 cls: bool, pos_rows: int, in_size: int = 0, dilation: int = 1):
        super().__init__()
        self.in_size = in_size
        self.proj = UnfoldProjection(in_channels, dim, kernel, stride, padding, dilation)
        self.norm = nn.LayerNorm(dim, eps=1e-6) if norm else None
        self.tokens = Tokens(dim, cls, pos_rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_size:
            x = tokens_to_map(x, self.in_size)
        x = self.proj(x)
        if self.norm is not None:
            x = self.norm(x)
        return self.tokens(x)
''', ("maps", "tokens"))

_snippet("conv_stem", '''
def conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()]


class ConvStem(nn.Module):
    """ViT-ResNAS tokenizer: conv3×3/2-BN-ReLU (a), two conv3×3-BN-ReLU plus a, patch×patch
    convolution to tokens, class token, position embedding."""

    def __init__(self, in_channels: int, width: int, dim: int, patch: int, cls: bool, pos_rows: int):
        super().__init__()
        self.conv1 = nn.Sequential(*conv_bn_relu(in_channels, width, 2))
        self.convs = nn.Sequential(*conv_bn_relu(width, width, 1), *conv_bn_relu(width, width, 1))
        self.proj = nn.Conv2d(width, dim, patch, patch)
        self.tokens = Tokens(dim, cls, pos_rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x)
        return self.tokens(map_to_tokens(self.proj(self.convs(a) + a)))
''', ("maps", "tokens"))

_snippet("attention", '''
def split_heads(qkv: torch.Tensor, heads: int, head_dim: int):
    """q, k, v (B, heads, N, head_dim) from a (B, N, 3·heads·head_dim) projection."""
    b, n, _ = qkv.shape
    return qkv.view(b, n, 3, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, head_dim) -> (B, N, heads·head_dim)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)
''')

_snippet("global_attention", '''
def relative_rows(size: int, cls: bool, dist: int) -> tuple[torch.Tensor, torch.Tensor]:
    """AutoFormer's table rows (N, N) for vertical and horizontal offsets between the tokens of a
    size×size map, clipped to ±dist and stored at dist + 1 + offset; row 0 for the class token."""
    r = torch.arange(size * size)
    row, col = r // size, r % size
    rows_v = (row[None, :] - row[:, None]).clamp(-dist, dist) + dist + 1
    rows_h = (col[None, :] - col[:, None]).clamp(-dist, dist) + dist + 1
    if cls:
        rows_v, rows_h = F.pad(rows_v, (1, 0, 1, 0)), F.pad(rows_h, (1, 0, 1, 0))
    return rows_v, rows_h


class Attention(nn.Module):
    """Multi-head self-attention over all tokens; with rel_dist > 0, AutoFormer's 2-D relative
    position embeddings on the keys and the values."""

    def __init__(self, dim: int, heads: int, head_dim: int, qkv_bias: bool, size: int = 0, cls: bool = False,
                 rel_dist: int = 0):
        super().__init__()
        self.heads, self.head_dim, self.scale = heads, head_dim, head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=qkv_bias)
        self.proj = nn.Linear(heads * head_dim, dim)
        self.rel_dist = rel_dist
        if rel_dist:
            for name in ("rel_k_v", "rel_k_h", "rel_v_v", "rel_v_h"):
                setattr(self, name, nn.Parameter(torch.zeros(2 * rel_dist + 2, head_dim)))
            rows_v, rows_h = relative_rows(size, cls, rel_dist)
            self.register_buffer("rows_v", rows_v, persistent=False)
            self.register_buffer("rows_h", rows_h, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = split_heads(self.qkv(x), self.heads, self.head_dim)
        if not self.rel_dist:  # the fused kernel (flash attention on GPU)
            return self.proj(merge_heads(F.scaled_dot_product_attention(q, k, v, scale=self.scale)))
        # relative positions: the value term needs the attention probabilities, so explicit matmuls
        b, h, n, d = q.shape
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        if self.rel_dist:  # per query token i: (B·h, d) @ (d, N)
            rel_k = self.rel_k_v[self.rows_v] + self.rel_k_h[self.rows_h]
            attn = attn + (q.permute(2, 0, 1, 3).reshape(n, b * h, d) @ rel_k.transpose(1, 2)) \\
                .view(n, b, h, n).permute(1, 2, 0, 3)
        attn = attn.softmax(dim=-1)
        out = attn @ v
        if self.rel_dist:
            rel_v = self.rel_v_v[self.rows_v] + self.rel_v_h[self.rows_h]
            out = out + (attn.permute(2, 0, 1, 3).reshape(n, b * h, n) @ rel_v).view(n, b, h, d).permute(1, 2, 0, 3)
        return self.proj(merge_heads(out))
''', ("attention",))

_snippet("windows", '''
def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, S, S, C) -> (B·windows, window², C), windows row-major."""
    b, s, _, c = x.shape
    n = s // window
    return x.reshape(b, n, window, n, window, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_merge(w: torch.Tensor, window: int, size: int) -> torch.Tensor:
    """Inverse of window_partition: (B·windows, window², C) -> (B, S, S, C)."""
    c = w.shape[-1]
    n = size // window
    return w.reshape(-1, n, n, window, window, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, size, size, c)


def shift_mask(size: int, window: int, shift: int) -> torch.Tensor:
    """Swin's (windows, window², window²) mask: tokens from different regions of the rolled map never attend."""
    region = torch.zeros(1, size, size, 1)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in cuts:
        for cols in cuts:
            region[:, rows, cols, :] = label
            label += 1
    win = window_partition(region, window).squeeze(-1)
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


def bias_rows(window: int) -> torch.Tensor:
    """(window², window²) rows of a ((2·window - 1)², heads) relative position bias table."""
    r = torch.arange(window)
    coords = torch.stack(torch.meshgrid(r, r, indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]
    return (rel[0] + window - 1) * (2 * window - 1) + rel[1] + window - 1
''')

_snippet("window_attention", '''
class WindowAttention(nn.Module):
    """Multi-head self-attention inside window×window windows of the size×size token map.

    Swin: windows cyclically shifted by `shift` (with its mask) and a relative position bias table;
    As-ViT attention splits: windows of side size / splits, no shift, no table (bias_table=False)."""

    def __init__(self, dim: int, heads: int, head_dim: int, qkv_bias: bool, size: int, window: int, shift: int = 0,
                 bias_table: bool = True):
        super().__init__()
        self.heads, self.head_dim, self.scale = heads, head_dim, head_dim ** -0.5
        self.size, self.window, self.shift = size, window, shift
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=qkv_bias)
        self.proj = nn.Linear(heads * head_dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads)) \\
            if bias_table else None
        self.register_buffer("bias_rows", bias_rows(window), persistent=False)
        self.register_buffer("mask", shift_mask(size, window, shift) if shift else None, persistent=False)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = split_heads(self.qkv(x), self.heads, self.head_dim)
        b, h, n, d = q.shape
        bias = None  # the bias and the shift mask enter the fused kernel as one additive mask
        if self.relative_position_bias_table is not None:
            bias = self.relative_position_bias_table[self.bias_rows.view(-1)].view(n, n, h).permute(2, 0, 1)
        if self.mask is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        else:  # batches grouped by window: (B, windows, h, n, d) against a (windows, h|1, n, n) mask
            windows = self.mask.shape[0]
            add = self.mask.unsqueeze(1) if bias is None else bias + self.mask.unsqueeze(1)
            shape = (b // windows, windows, h, n, d)
            out = F.scaled_dot_product_attention(q.reshape(shape), k.reshape(shape), v.reshape(shape),
                                                 attn_mask=add, scale=self.scale).view(b, h, n, d)
        return self.proj(merge_heads(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        m = x.view(b, self.size, self.size, c)
        if self.shift:
            m = torch.roll(m, shifts=(-self.shift, -self.shift), dims=(1, 2))
        out = window_merge(self.attend(window_partition(m, self.window)), self.window, self.size)
        if self.shift:
            out = torch.roll(out, shifts=(self.shift, self.shift), dims=(1, 2))
        return out.reshape(b, n, c)
''', ("attention", "windows"))

_snippet("block", '''
class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """A learned per-channel scale (CaiT, DeiT III)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)) (each branch scaled
    by a LayerScale when layer_scale)."""

    def __init__(self, dim: int, hidden: int, attn: nn.Module, layer_scale: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)
        self.ls1 = LayerScale(dim) if layer_scale else nn.Identity()
        self.ls2 = LayerScale(dim) if layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))
''')

_snippet("patch_merging", '''
class PatchMerging(nn.Module):
    """Swin's transition: each 2×2 neighbourhood's channels concatenated (channel-major: channel
    c·4 + 2·dx + dy), LayerNorm, bias-free linear to the new width."""

    def __init__(self, in_dim: int, dim: int, in_size: int):
        super().__init__()
        self.in_size = in_size
        self.norm = nn.LayerNorm(4 * in_dim, eps=1e-6)
        self.reduction = nn.Linear(4 * in_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        h = self.in_size // 2
        x = x.reshape(b, h, 2, h, 2, c).permute(0, 1, 3, 5, 4, 2).reshape(b, h * h, 4 * c)
        return self.reduction(self.norm(x))
''')

_snippet("rsr", '''
class RSR(nn.Module):
    """ViT-ResNAS residual spatial reduction: LayerNorm over every token; patch tokens: conv3×3/2
    plus a new position embedding, and a 2×2 average-pooled skip with zero-padded channels; the
    class token (cls): linear plus its zero-padded identity."""

    def __init__(self, in_dim: int, dim: int, in_size: int, cls: bool):
        super().__init__()
        self.in_size, self.dim = in_size, dim
        self.norm = nn.LayerNorm(in_dim, eps=1e-6)
        self.conv = nn.Conv2d(in_dim, dim, 3, 2, 1)
        self.pos = Tokens(dim, cls=False, pos_rows=(in_size // 2) ** 2)
        self.token_linear = nn.Linear(in_dim, dim) if cls else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (0, self.dim - x.shape[-1])
        y = self.norm(x)
        cls = self.token_linear is not None
        patches, patches_y = (x[:, 1:], y[:, 1:]) if cls else (x, y)
        main = map_to_tokens(self.conv(tokens_to_map(patches_y, self.in_size))) + self.pos.pos_embed
        skip = map_to_tokens(F.avg_pool2d(tokens_to_map(patches, self.in_size), 2))
        z = main + F.pad(skip, pad)
        if cls:
            z = torch.cat([self.token_linear(y[:, :1]) + F.pad(x[:, :1], pad), z], dim=1)
        return z
''', ("maps", "tokens"))

_snippet("linear_head", '''
class PreLogits(nn.Module):
    """tanh(Linear(dim, dim)) (As-ViT)."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(x))


class LinearHead(nn.Module):
    """Optional LayerNorm, pooling ("cls": the class token; "avg": the mean of the patch tokens),
    optional LayerNorm (fc_norm), optional pre-logits, linear classifier.  token_fc is the
    training-only token-labelling classifier: its weights are kept, inference does not run it."""

    def __init__(self, dim: int, classes: int, pool: str, cls: bool, norm: bool, fc_norm: bool = False,
                 pre_logits: bool = False, token_fc: bool = False):
        super().__init__()
        self.pool, self.cls = pool, cls
        self.norm = nn.LayerNorm(dim, eps=1e-6) if norm else None
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6) if fc_norm else None
        self.pre_logits = PreLogits(dim) if pre_logits else None
        self.fc = nn.Linear(dim, classes)
        self.token_fc = nn.Linear(dim, classes) if token_fc else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            x = self.norm(x)
        x = x[:, 0] if self.pool == "cls" else (x[:, 1:] if self.cls else x).mean(dim=1)
        if self.fc_norm is not None:
            x = self.fc_norm(x)
        if self.pre_logits is not None:
            x = self.pre_logits(x)
        return self.fc(x)
''')


_snippet("mbconv", '''
class SqueezeExcite(nn.Module):
    """x · hardsigmoid(expand(relu(reduce(mean(x))))) (AttentiveNAS/NASViT)."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * F.hardsigmoid(self.expand(F.relu(self.reduce(s))))


class MBConv(nn.Module):
    """Inverted residual: expand (1×1 conv-BN-act, optional), depth-wise conv-BN-act, squeeze-excite
    (optional), 1×1 conv-BN projection.  With residual, plus the input: average-pooled over
    pool×pool windows (ceil mode) when pool > 1, projected by skip (a 1×1 conv) when given."""

    def __init__(self, dw: nn.Module, proj: nn.Module, residual: bool, expand: nn.Module | None = None,
                 se: nn.Module | None = None, pool: int = 1, skip: nn.Module | None = None):
        super().__init__()
        self.expand, self.dw, self.se, self.proj, self.skip = expand, dw, se, proj, skip
        self.residual, self.pool = residual, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        h = self.dw(h)
        if self.se is not None:
            h = self.se(h)
        h = self.proj(h)
        if not self.residual:
            return h
        s = F.avg_pool2d(x, self.pool, self.pool, ceil_mode=True, count_include_pad=False) if self.pool > 1 else x
        return h + (self.skip(s) if self.skip is not None else s)
''')

_snippet("mbpool", '''
class MBPool(nn.Module):
    """conv-BN-act, global mean pooling, feature mix (linear-act, optional), classifier."""

    def __init__(self, conv: nn.Module, fc: nn.Module, mix: nn.Module | None = None):
        super().__init__()
        self.conv, self.mix, self.fc = conv, mix, fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).mean((2, 3))
        if self.mix is not None:
            y = self.mix(y)
        return self.fc(y)
''')

_snippet("nasvit", '''
ACTIVATIONS = {"swish": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "none": nn.Identity}


def offsets(side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertical and horizontal offsets j - i between the tokens of a side×side window, shifted by
    side - 1: (side², side²) rows of Shaw's tables."""
    r = torch.arange(side * side)
    row, col = r // side, r % side
    return row[None, :] - row[:, None] + side - 1, col[None, :] - col[:, None] + side - 1


class NASViTBlock(nn.Module):
    """NASViT's transformer layer on (B, C, size, size) maps.  Attention inside windows×windows
    windows: V through a 3×3 depth-wise conv, relative positions (Shaw's tables "shaw", a bias
    table "bias", or "none"), talking heads before and after the softmax.  Then two MLPs, the
    first with a 3×3 depth-wise conv when mlp_conv.  Each branch is scaled by its switchable
    scaling vector when scales (the MLPs share one)."""

    def __init__(self, dim: int, v_dim: int, heads: int, head_dim: int, hidden: int, size: int, windows: int = 1,
                 rpe: str = "none", act: str = "swish", mlp_conv: bool = False, scales: bool = False):
        super().__init__()
        self.size, self.windows, self.side = size, windows, size // windows
        self.heads, self.head_dim, self.rpe = heads, head_dim, rpe
        self.act = ACTIVATIONS[act]()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, v_dim)
        self.v_conv = nn.Conv2d(v_dim, v_dim, 3, 1, 1, groups=v_dim, bias=False)
        self.talk_pre, self.talk_post = nn.Linear(heads, heads), nn.Linear(heads, heads)
        self.proj = nn.Linear(v_dim, dim)
        rows = 2 * self.side - 1
        if rpe == "shaw":
            self.rpe_v, self.rpe_h = nn.Parameter(torch.zeros(rows, head_dim)), nn.Parameter(torch.zeros(rows, head_dim))
            rows_v, rows_h = offsets(self.side)
            self.register_buffer("rows_v", rows_v, persistent=False)
            self.register_buffer("rows_h", rows_h, persistent=False)
        elif rpe == "bias":
            self.rpe_bias = nn.Parameter(torch.zeros(rows * rows, heads))
            self.register_buffer("bias_rows", bias_rows(self.side), persistent=False)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.mlp_conv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False) if mlp_conv else None
        self.fc3, self.fc4 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.scale_attn = nn.Parameter(torch.ones(dim)) if scales else None
        self.scale_mlp = nn.Parameter(torch.ones(dim)) if scales else None

    def attention(self, u: torch.Tensor) -> torch.Tensor:
        b, n, _ = u.shape
        h, d = self.heads, self.head_dim
        q = self.q(u).view(b, n, h, d).transpose(1, 2)
        k = self.k(u).view(b, n, h, d).transpose(1, 2)
        v = self.v(u)
        vc = v.shape[-1]
        v = map_to_tokens(self.v_conv(tokens_to_map(v, self.side))).reshape(b, n, h, vc // h).transpose(1, 2)
        q = q * d ** -0.5
        attn = q @ k.transpose(-2, -1)
        if self.rpe == "shaw":
            sv = (q @ self.rpe_v.transpose(0, 1)).gather(-1, self.rows_v.expand(b, h, n, n))
            sh = (q @ self.rpe_h.transpose(0, 1)).gather(-1, self.rows_h.expand(b, h, n, n))
            attn = attn + (sv + sh)
        elif self.rpe == "bias":
            attn = attn + self.rpe_bias[self.bias_rows.view(-1)].view(n, n, h).permute(2, 0, 1)
        attn = self.talk_pre(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).softmax(dim=-1)
        attn = self.talk_post(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.proj(self.act((attn @ v).transpose(1, 2).reshape(b, n, vc)))

    def windowed_attention(self, t: torch.Tensor) -> torch.Tensor:
        if self.windows == 1:
            return self.attention(t)
        b, n, c = t.shape
        out = self.attention(window_partition(t.view(b, self.size, self.size, c), self.side))
        return window_merge(out, self.side, self.size).reshape(b, n, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = map_to_tokens(x)
        a = self.windowed_attention(self.norm1(t))
        t = t + (a * self.scale_attn if self.scale_attn is not None else a)
        h = self.fc1(self.norm2(t))
        if self.mlp_conv is not None:
            h = map_to_tokens(self.mlp_conv(tokens_to_map(h, self.size)))
        m = self.fc2(self.act(h))
        t = t + (m * self.scale_mlp if self.scale_mlp is not None else m)
        m = self.fc4(self.act(self.fc3(self.norm3(t))))
        t = t + (m * self.scale_mlp if self.scale_mlp is not None else m)
        return tokens_to_map(t, self.size)
''', ("maps", "windows"))

# ------------------------------------------------------------------------------------------ generators
@attrs.frozen
class Generator:
    """How one extracted module type is written: the snippets (class sources) it may use, and
    ``call(module, emitter)`` -> its constructor :class:`Call` with the module's sizes as literals
    (``call`` marks the snippets it does use with :meth:`Emitter.use`)."""

    snippets: tuple[str, ...]
    call: Callable[[nn.Module, "Emitter"], Call]


GENERATORS: dict[type, Generator] = {}


def generates(cls: type, *snippets: str):
    """Register the decorated ``call`` as the generator for extracted modules of class ``cls``."""

    unknown = [s for s in snippets if s not in SNIPPETS]
    if unknown:
        raise ValueError(f"generator for {cls.__name__}: no snippet {', '.join(unknown)}")

    def deco(call):
        if cls in GENERATORS:
            raise ValueError(f"a generator for {cls.__name__} is already registered")
        GENERATORS[cls] = Generator(snippets, call)
        return call

    return deco


def exportable() -> list[str]:
    """Names of the extracted module classes ``model.py`` can be written for, sorted."""
    return sorted(c.__name__ for c in GENERATORS)


def literal(v: Any) -> str:
    """Python source of a constructor argument (numbers, booleans, strings in double quotes)."""
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (bool, int, float)) or v is None:
        return repr(v)
    raise TypeError(f"not a literal: {v!r}")


WIDTH = 120  # generated lines longer than this put one argument per line


@attrs.frozen
class Call:
    """A constructor call ``name(key=value, …)``; values are literals or nested calls."""

    name: str
    kwargs: dict
    args: tuple = ()  # positional arguments first (nn.Sequential's modules)

    def render(self, indent: int = 0) -> str:
        def text(v) -> str:
            return v.render(indent + 4) if isinstance(v, Call) else literal(v)

        args = [text(v) for v in self.args] + [f"{k}={text(v)}" for k, v in self.kwargs.items()]
        flat = f"{self.name}({', '.join(args)})"
        if indent + len(flat) <= WIDTH and "\n" not in flat:
            return flat
        pad = " " * (indent + 4)
        return f"{self.name}(\n" + "".join(f"{pad}{a},\n" for a in args) + " " * indent + ")"


def call(name: str, defaults: dict | None = None, **kwargs: Any) -> Call:
    """A :class:`Call`, leaving out the arguments equal to the class's ``defaults``."""
    defaults = defaults or {}
    return Call(name, {k: v for k, v in kwargs.items() if k not in defaults or defaults[k] != v})


def expect(ok: bool, module: nn.Module, what: str) -> None:
    """A :class:`CompileError` unless ``ok``: the module has a form its generator does not write."""
    if not ok:
        raise CompileError(f"pytorch export: {type(module).__name__} with {what} has no code generator yet")


def _eps_ok(*norms) -> bool:
    return all(n is None or (isinstance(n, nn.LayerNorm) and n.eps == LN_EPS) for n in norms)


def _token_args(tokens) -> dict:
    pos = tokens.pos_embed
    return {"cls": tokens.cls_token is not None, "pos_rows": 0 if pos is None else int(pos.shape[1])}


@generates(PatchEmbed, "patch_embed", "unfold_patch_embed")
def _patch_embed(m: PatchEmbed, em: "Emitter") -> Call:
    transition = em.input_ndim(m) == 3
    in_size = m.in_size if transition else 0
    expect(_eps_ok(m.norm), m, "a LayerNorm eps other than 1e-6")
    if isinstance(m.proj, UnfoldEmbed):
        u = m.proj.unfold
        expect(_eps_ok(m.proj.norm) and m.proj.reduction.bias is None, m.proj, "this projection")
        kernel, stride, padding, dilation = (int(_one(v)) for v in (u.kernel_size, u.stride, u.padding,
                                                                     u.dilation))
        em.use("unfold_patch_embed")
        dim = m.proj.reduction.out_features
        in_channels = m.proj.reduction.in_features // (kernel * kernel)
        return call("UnfoldPatchEmbed", in_channels=in_channels, dim=dim, kernel=kernel, stride=stride,
                    padding=padding, norm=m.norm is not None, **_token_args(m.tokens), in_size=in_size,
                    dilation=dilation, defaults={"in_size": 0, "dilation": 1})
    p = m.proj
    expect(isinstance(p, nn.Conv2d) and p.bias is not None and p.groups == 1 and p.padding_mode == "zeros",
           m, f"projection {type(p).__name__}")
    em.use("patch_embed")
    return call("PatchEmbed", in_channels=p.in_channels, dim=p.out_channels, kernel=_one(p.kernel_size),
                stride=_one(p.stride), padding=_one(p.padding), norm=m.norm is not None, **_token_args(m.tokens),
                in_size=in_size, dilation=_one(p.dilation), defaults={"in_size": 0, "dilation": 1})


def _one(v) -> int:
    """The single value of a square kernel/stride/padding pair."""
    if isinstance(v, tuple):
        if len(set(v)) != 1:
            raise CompileError(f"pytorch export: a non-square kernel, stride or padding {v} has no code generator yet")
        v = v[0]
    return int(v)


@generates(ConvStem, "conv_stem")
def _conv_stem(m: ConvStem, em: "Emitter") -> Call:
    conv1, bn1 = m.conv1[0], m.conv1[1]
    bns = [bn1, m.convs[1], m.convs[4]]
    expect(all(b.eps == 1e-5 and b.momentum == 0.1 for b in bns) and conv1.bias is None, m, "these convolutions")
    em.use("conv_stem")
    return call("ConvStem", in_channels=conv1.in_channels, width=conv1.out_channels, dim=m.proj.out_channels,
                patch=_one(m.proj.kernel_size), **_token_args(m.tokens))


@generates(Attention, "attention", "global_attention", "window_attention")
def _attention(m: Attention, em: "Emitter") -> Call:
    qkv = m.qkv
    common = {"dim": qkv.in_features, "heads": m.heads, "head_dim": m.head_dim, "qkv_bias": qkv.bias is not None}
    if m.window or m.splits > 1:
        expect(not m.rel_dist, m, "relative position embeddings inside windows")
        em.use("window_attention")
        if m.window:
            return call("WindowAttention", **common, size=m.size, window=m.window, shift=m.shift, defaults={"shift": 0})
        return call("WindowAttention", **common, size=m.size, window=m.size // m.splits, bias_table=False)
    em.use("global_attention")
    if m.rel_dist:
        return call("Attention", **common, size=m.size, cls=m.cls, rel_dist=m.rel_dist)
    return call("Attention", **common)


@generates(Block, "block")
def _block(m: Block, em: "Emitter") -> Call:
    mlp = m.mlp
    expect(_eps_ok(m.norm1, m.norm2), m, "a LayerNorm eps other than 1e-6")
    expect(isinstance(mlp.act, nn.GELU) and mlp.act.approximate == "none", m, f"MLP activation {mlp.act!r}")
    expect(isinstance(getattr(mlp, "norm", nn.Identity()), nn.Identity), m, "a normalised MLP")
    layer_scale = not isinstance(m.ls1, nn.Identity)
    em.use("block")
    attn = em.expr(m.attn)
    dim = m.norm1.normalized_shape[0]
    return call("Block", dim=dim, hidden=mlp.fc1.out_features, attn=attn, layer_scale=layer_scale,
                defaults={"layer_scale": False})


@generates(PatchMerging, "patch_merging")
def _patch_merging(m: PatchMerging, em: "Emitter") -> Call:
    expect(_eps_ok(m.norm) and m.reduction.bias is None, m, "this reduction")
    em.use("patch_merging")
    return call("PatchMerging", in_dim=m.reduction.in_features // 4, dim=m.reduction.out_features, in_size=m.in_size)


@generates(RSR, "rsr")
def _rsr(m: RSR, em: "Emitter") -> Call:
    expect(_eps_ok(m.norm), m, "a LayerNorm eps other than 1e-6")
    rows = int(m.pos.pos_embed.shape[1])
    expect(rows == (m.in_size // 2) ** 2, m, f"{rows} position rows on a {m.in_size}×{m.in_size} input")
    em.use("rsr")
    return call("RSR", in_dim=m.conv.in_channels, dim=m.dim, in_size=m.in_size, cls=m.token_linear is not None)


@generates(LinearHead, "linear_head")
def _linear_head(m: LinearHead, em: "Emitter") -> Call:
    expect(_eps_ok(m.norm, m.fc_norm), m, "a LayerNorm eps other than 1e-6")
    expect(m.pre_logits is None or isinstance(m.pre_logits, PreLogits), m, "this pre-logits layer")
    em.use("linear_head")
    return call("LinearHead", dim=m.fc.in_features, classes=m.fc.out_features, pool=m.how, cls=m.cls,
                norm=m.norm is not None, fc_norm=m.fc_norm is not None, pre_logits=m.pre_logits is not None,
                token_fc=m.token_fc is not None, defaults={"fc_norm": False, "pre_logits": False, "token_fc": False})


@generates(SqueezeExcite, "mbconv")
def _squeeze_excite(m: SqueezeExcite, em: "Emitter") -> Call:
    expect(m.reduce.bias is not None and m.expand.bias is not None and m.reduce.kernel_size == (1, 1), m,
           "bias-free or wider convolutions")
    em.use("mbconv")
    return call("SqueezeExcite", channels=m.reduce.in_channels, reduced=m.reduce.out_channels)


@generates(MBConv, "mbconv")
def _mbconv(m: MBConv, em: "Emitter") -> Call:
    em.use("mbconv")
    def part(module):
        return em.expr(module) if module is not None else None

    return call("MBConv", expand=part(m.expand), dw=em.expr(m.dw), se=part(m.se), proj=em.expr(m.proj),
                residual=bool(m.residual), pool=int(m.pool), skip=part(m.skip),
                defaults={"expand": None, "se": None, "skip": None, "pool": 1})


@generates(MBPool, "mbpool")
def _mbpool(m: MBPool, em: "Emitter") -> Call:
    em.use("mbpool")
    return call("MBPool", conv=em.expr(m.conv), fc=em.expr(m.fc), mix=em.expr(m.mix) if m.mix is not None else None,
                defaults={"mix": None})


@generates(NASViTBlock, "nasvit")
def _nasvit_block(m: NASViTBlock, em: "Emitter") -> Call:
    norms = (m.norm1, m.norm2, m.norm3)
    expect(all(n.eps == 1e-5 for n in norms), m, "a LayerNorm eps other than 1e-5")
    expect(m.side * m.windows == m.size and m.rpe in ("shaw", "bias", "none"), m, f"rpe {m.rpe!r} or windows")
    expect((m.scale_attn is None) == (m.scale_mlp is None), m, "one scaling vector without the other")
    expect(m.act in ("swish", "relu", "gelu", "none"), m, f"activation {m.act!r}")
    em.use("nasvit")
    dim = m.q.in_features
    return call("NASViTBlock", dim=dim, v_dim=m.v.out_features, heads=m.heads, head_dim=m.head_dim,
                hidden=m.fc1.out_features, size=m.size, windows=m.windows, rpe=m.rpe, act=m.act,
                mlp_conv=m.mlp_conv is not None, scales=m.scale_attn is not None,
                defaults={"windows": 1, "rpe": "none", "act": "swish", "mlp_conv": False, "scales": False})


# plain torch.nn layers (the extracted convolutional kinds are nn.Sequential of these): written as
# themselves, their constructor arguments read back from the layer
def _plain(cls: type, fields: Callable[[nn.Module], dict]) -> None:
    GENERATORS[cls] = Generator((), lambda m, em: call(f"nn.{cls.__name__}", **fields(m)))


@generates(nn.BatchNorm2d)
def _batch_norm(m: nn.BatchNorm2d, em: "Emitter") -> Call:
    expect(m.affine and m.track_running_stats, m, "no affine parameters or no running statistics")
    return Call("nn.BatchNorm2d", call("", eps=m.eps, momentum=m.momentum, defaults={"eps": 1e-5, "momentum": 0.1}).kwargs,
                (m.num_features,))


@generates(nn.LayerNorm)
def _layer_norm(m: nn.LayerNorm, em: "Emitter") -> Call:
    expect(m.elementwise_affine and m.bias is not None, m, "no affine parameters")
    return Call("nn.LayerNorm", call("", eps=m.eps, defaults={"eps": 1e-5}).kwargs, (_one(tuple(m.normalized_shape)),))


@generates(nn.Linear)
def _linear(m: nn.Linear, em: "Emitter") -> Call:
    return Call("nn.Linear", {} if m.bias is not None else {"bias": False}, (m.in_features, m.out_features))


_plain(nn.GELU, lambda m: {} if m.approximate == "none" else {"approximate": m.approximate})
_plain(nn.Dropout, lambda m: {"p": m.p})
_plain(nn.Flatten, lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim})
_plain(nn.AdaptiveAvgPool2d, lambda m: {"output_size": _one(m.output_size)})
for _cls in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Identity):
    _plain(_cls, lambda m: {})


@generates(nn.Conv2d)
def _conv2d(m: nn.Conv2d, em: "Emitter") -> Call:
    expect(m.dilation == (1, 1) and m.padding_mode == "zeros", m, "dilation or non-zero padding")
    kwargs = call("", stride=_one(m.stride), padding=_one(m.padding), groups=m.groups, bias=m.bias is not None,
                  defaults={"stride": 1, "padding": 0, "groups": 1, "bias": True}).kwargs
    return Call("nn.Conv2d", kwargs, (m.in_channels, m.out_channels, _one(m.kernel_size)))


@generates(nn.Sequential)
def _sequential(m: nn.Sequential, em: "Emitter") -> Call:
    return Call("nn.Sequential", {}, tuple(em.expr(child) for child in m))


# ------------------------------------------------------------------------------------------ emitter
class Emitter:
    """Writes ``model.py`` for one subnet: collects the snippets used, in dependency order."""

    def __init__(self, input_ndims: dict[int, int]):
        self.input_ndims = input_ndims  # id(module) -> rank of its input, from one traced forward
        self.used: list[str] = []

    def input_ndim(self, module: nn.Module) -> int:
        return self.input_ndims[id(module)]

    def use(self, name: str) -> None:
        source, needs = SNIPPETS[name]
        for dep in needs:
            self.use(dep)
        if name not in self.used:
            self.used.append(name)

    def expr(self, module: nn.Module) -> Call:
        """The constructor expression of ``module`` (a :class:`CompileError` naming its class when
        no generator is registered for it)."""
        gen = GENERATORS.get(type(module))
        if gen is None:
            raise CompileError(
                f"pytorch export: no code generator for {type(module).__module__}.{type(module).__qualname__}",
                hint="the safetensors, onnx and pt2 formats need none; model.py needs a generator in "
                     "spacelang/compiler/export_pytorch.py")
        return gen.call(module, self)


def _input_ndims(sub, x) -> dict[int, int]:
    import torch
    ndims: dict[int, int] = {}

    def record(mod, args) -> None:  # a pre-hook that returns None leaves the input as it is
        ndims.setdefault(id(mod), args[0].dim())

    hooks = [m.register_forward_pre_hook(record) for m in sub.modules()]
    try:
        with torch.no_grad():
            sub(x)
    finally:
        for h in hooks:
            h.remove()
    return ndims


HEADER = '''"""{title}

Written by `spacelang export` ({version}); plain PyTorch: needs torch and safetensors only.
    from model import build
    model = build()            # eval mode, weights from {weights} next to this file
    logits = model(images)     # images: (B, {c}, {h}, {w}), prepared as provenance.json says
"""
from __future__ import annotations

import os

import torch
import torch.nn as nn
{functional}
INPUT_SHAPE = ({c}, {h}, {w})
WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "{weights}")
'''

FOOTER = '''

class Model(nn.Module):
    """stem, stages (each a sequence of transition and blocks), head."""

    def __init__(self, stem: nn.Module, stages: list[list[nn.Module]], head: nn.Module):
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(nn.Sequential(*stage) for stage in stages)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def build(weights: str | None = WEIGHTS) -> Model:
    """The subnet in eval mode, with the weights of `weights` (a safetensors file) loaded; None: untrained."""
    model = Model(
{body}
    )
    if weights:
        from safetensors.torch import load_file
        model.load_state_dict(load_file(weights))
    return model.eval()
'''


def generate(sub, x, title: str, version: str, weights: str = "model.safetensors") -> str:
    """The source of ``model.py`` for the extracted subnet ``sub`` (``x``: an input batch, run once
    to learn each module's input rank).  :class:`CompileError` for a module type without a generator."""
    em = Emitter(_input_ndims(sub, x))
    ind = " " * 8
    lines = [f"{ind}stem={em.expr(sub.stem).render(8)},", f"{ind}stages=["]
    for name, stage in zip(sub.stage_names, sub.stages):
        lines.append(f"{ind}    [  # stage {name}")
        lines += [f"{ind}        {em.expr(m).render(16)}," for m in stage]
        lines.append(f"{ind}    ],")
    lines += [f"{ind}],", f"{ind}head={em.expr(sub.head).render(8)},"]
    c, h, w = sub.input_shape
    snippets = ["\n\n" + SNIPPETS[name][0] for name in em.used]
    functional = "import torch.nn.functional as F\n" if any("F." in text for text in snippets) else ""
    parts = [HEADER.format(title=title, version=version, weights=weights, c=c, h=h, w=w, functional=functional)]
    parts += snippets
    parts.append(FOOTER.format(body="\n".join(lines)))
    return "".join(parts)


__all__ = ["generate", "exportable", "GENERATORS", "Generator", "generates", "Call", "call", "SNIPPETS"]
