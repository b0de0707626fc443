"""``transformer`` blocks: pre-norm multi-head self-attention + MLP, each with a residual.

Elastic widths (AutoFormer weight entanglement): the embedding width ``dim``, ``heads``,
``head_dim`` (so ``qkv_dim``), and the MLP ``hidden`` width all take leading slices of the
slot's largest weights.  Attention is global, or Swin/S3 (shifted) window attention with a
relative position bias table sized for the slot's largest window, or As-ViT attention splits
(``splits`` S: S×S windows, no shift, no bias; :mod:`.split_attention`); AutoFormer's 2-D relative
position encoding (tables for keys and values) is used when ``rel_pos``.
Both the supernet and the extracted ``Attention`` call :func:`.functional.attend`: the fused
``scaled_dot_product_attention`` by default (explicit matmuls with ``rel_pos``, or inside
:func:`.functional.explicit_attention` for FLOP counters).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import DropPath, LayerScale, Mlp

from . import functional as Fn
from . import masked as M
from .elastic import ElasticLayerNorm, ElasticLinear, ElasticQKV, copy_param, lead, new_param
from .registry import register
from .split_attention import split_attention


class ElasticAttention(nn.Module):
    """Multi-head self-attention holding the slot's largest qkv/proj weights and position tables."""

    def __init__(self, f):
        super().__init__()
        dim, qkv_dim = f.dim, f.qkv_dim
        self.qkv = ElasticQKV(dim, qkv_dim, bias=f.qkv_bias)
        self.proj = ElasticLinear(qkv_dim, dim)
        self.rel_dist = f.rel_dist if f.rel_pos else 0
        if f.rel_pos:
            rows = 2 * self.rel_dist + 2  # row 0: any pair with the class token
            self.rel_k_v, self.rel_k_h = new_param(rows, f.head_dim), new_param(rows, f.head_dim)
            self.rel_v_v, self.rel_v_h = new_param(rows, f.head_dim), new_param(rows, f.head_dim)
        self.window = f.window
        if self.window:
            self.relative_position_bias_table = new_param((2 * self.window - 1) ** 2, f.heads)

    def _rel(self, f, side: int):
        if not f.rel_pos:
            return None, None
        d, dist, centre = f.head_dim, f.rel_dist, self.rel_dist + 1
        return (Fn.rel2d(self.rel_k_v, self.rel_k_h, d, side, f.cls, dist, centre),
                Fn.rel2d(self.rel_v_v, self.rel_v_h, d, side, f.cls, dist, centre))

    def _core(self, x: torch.Tensor, f, mask, side: int) -> torch.Tensor:
        heads, hd = f.heads, f.head_dim
        dim, q = x.shape[-1], heads * hd
        q_, k_, v_ = self.qkv(x, heads, hd, bias=f.qkv_bias)
        bias = Fn.window_bias(self.relative_position_bias_table, heads, f.window, self.window) \
            if f.window else None
        rel_k, rel_v = self._rel(f, side)
        return self.proj(Fn.attend(q_, k_, v_, hd ** -0.5, bias, mask, rel_k, rel_v), q, dim)

    def forward(self, x: torch.Tensor, f) -> torch.Tensor:
        if f.window:
            return Fn.windowed(x, f.size, f.window, f.shift,
                               lambda w, mask: self._core(w, f, mask, f.window))
        if f.splits > 1:  # As-ViT: S×S windows, no shift, no bias table
            return split_attention(x, f.size, f.splits, lambda w: self._core(w, f, None, f.size // f.splits))
        return self._core(x, f, None, f.size)

    def forward_masked(self, x: torch.Tensor, f, m: M.SlotMasks) -> torch.Tensor:
        """Multiarch forward (:mod:`.masked`): ``f`` the union layer, ``m`` the slot's per-sample widths."""
        if f.window:
            return Fn.windowed(x, f.size, f.window, f.shift,
                               lambda w, mask: self._core_masked(w, f, m, mask, f.window))
        if f.splits > 1:
            return split_attention(x, f.size, f.splits,
                                   lambda w: self._core_masked(w, f, m, None, f.size // f.splits))
        return self._core_masked(x, f, m, None, f.size)

    def _core_masked(self, x: torch.Tensor, f, m: M.SlotMasks, mask, side: int) -> torch.Tensor:
        heads, hd = f.heads, f.head_dim
        dim = x.shape[-1]
        rows = max(m.values("qkv_dim"))  # the widest arch's q (= k = v) channels
        qkv = self.qkv.packed(x, rows, f.qkv_bias)
        bias = Fn.window_bias(self.relative_position_bias_table, heads, f.window, self.window) \
            if f.window else None
        rel_k, rel_v = self._rel(f, side)
        if m.uniform("head_dim"):
            # a sample's heads are the leading heads, and heads never mix: zeroing the output of
            # the others leaves each sample exactly its own heads (and their gradients)
            q, k, v = Fn.split_qkv(qkv, heads, hd)
            out = m.width("qkv_dim", rows).apply(Fn.attend(q, k, v, hd ** -0.5, bias, mask, rel_k, rel_v))
        else:  # heads re-laid per sample (head i of d channels → union head i), per-sample scale
            to_heads, to_flat, scale = M.head_layout(m, heads, hd, rows)
            q, k, v = (M.gather_channels(t, to_heads) for t in qkv.split(rows, dim=-1))
            q = (q.reshape(scale.shape[0], -1) * scale[:, None]).reshape(q.shape)
            q, k, v = (t.reshape(*t.shape[:2], heads, hd).transpose(1, 2) for t in (q, k, v))
            out = M.gather_channels(Fn.attend(q, k, v, 1.0, bias, mask, rel_k, rel_v), to_flat)
        return M.linear_masked(self.proj, out, rows, m.out_width(dim))

    def extract(self, f) -> "Attention":
        heads, hd, dim = f.heads, f.head_dim, f.dim
        q = heads * hd
        m = Attention(dim, heads, hd, f.qkv_bias, f.size, f.window, f.shift,
                      f.rel_dist if f.rel_pos else 0, f.cls, splits=f.splits)
        m.qkv = self.qkv.extract(dim, q, bias=f.qkv_bias)
        m.proj = self.proj.extract(q, dim)
        if f.rel_pos:
            # the standalone table keeps row 0 (class token) and the rows within ±rel_dist
            rows = torch.cat([torch.zeros(1, dtype=torch.long),
                              torch.arange(-f.rel_dist, f.rel_dist + 1) + self.rel_dist + 1])
            for name in ("rel_k_v", "rel_k_h", "rel_v_v", "rel_v_h"):
                setattr(m, name, copy_param(getattr(self, name)[rows.to(self.rel_k_v.device), :hd]))
        if f.window:
            rows = Fn.window_bias_rows(f.window, self.window).to(self.relative_position_bias_table.device)
            m.relative_position_bias_table = copy_param(self.relative_position_bias_table[rows, :heads])
        return m


class Attention(nn.Module):
    """Standalone attention of an extracted subnet: ``nn.Linear`` qkv (timm layout) and proj."""

    def __init__(self, dim: int, heads: int, head_dim: int, qkv_bias: bool, size: int, window: int = 0,
                 shift: int = 0, rel_dist: int = 0, cls: bool = False, splits: int = 1):
        super().__init__()
        self.heads, self.head_dim, self.size, self.window, self.shift = heads, head_dim, size, window, shift
        self.rel_dist, self.cls, self.splits = rel_dist, cls, splits
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=qkv_bias)
        self.proj = nn.Linear(heads * head_dim, dim)
        if rel_dist:
            for name in ("rel_k_v", "rel_k_h", "rel_v_v", "rel_v_h"):
                setattr(self, name, new_param(2 * rel_dist + 2, head_dim))
        if window:
            self.relative_position_bias_table = new_param((2 * window - 1) ** 2, heads)

    def _core(self, x: torch.Tensor, mask, side: int) -> torch.Tensor:
        q, k, v = Fn.split_qkv(self.qkv(x), self.heads, self.head_dim)
        bias = Fn.window_bias(self.relative_position_bias_table, self.heads, self.window, self.window) \
            if self.window else None
        rel_k = rel_v = None
        if self.rel_dist:
            d, n, c = self.head_dim, self.rel_dist, self.rel_dist + 1
            rel_k = Fn.rel2d(self.rel_k_v, self.rel_k_h, d, side, self.cls, n, c)
            rel_v = Fn.rel2d(self.rel_v_v, self.rel_v_h, d, side, self.cls, n, c)
        return self.proj(Fn.attend(q, k, v, self.head_dim ** -0.5, bias, mask, rel_k, rel_v))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.window:
            return Fn.windowed(x, self.size, self.window, self.shift, lambda w, mask: self._core(w, mask, self.window))
        if self.splits > 1:
            return split_attention(x, self.size, self.splits, lambda w: self._core(w, None, self.size // self.splits))
        return self._core(x, None, self.size)


class ElasticMlp(nn.Module):
    """fc1 → GELU → fc2 with elastic hidden (and embedding) width."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = ElasticLinear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = ElasticLinear(hidden, dim)

    def forward(self, x: torch.Tensor, hidden: int) -> torch.Tensor:
        dim = x.shape[-1]
        return self.fc2(self.act(self.fc1(x, dim, hidden)), hidden, dim)

    def forward_masked(self, x: torch.Tensor, hidden: int, m: M.SlotMasks) -> torch.Tensor:
        """Multiarch forward: fc1's output masked to each sample's hidden width (GELU keeps the zeros),
        fc2's to its dim."""
        dim = x.shape[-1]
        h = self.act(M.linear_masked(self.fc1, x, dim, m.width("hidden", hidden)))  # GELU(0) = 0
        return M.linear_masked(self.fc2, h, hidden, m.out_width(dim))

    def extract(self, dim: int, hidden: int) -> Mlp:
        m = Mlp(dim, hidden, act_layer=nn.GELU)
        m.fc1, m.fc2 = self.fc1.extract(dim, hidden), self.fc2.extract(hidden, dim)
        return m


class ElasticLayerScale(nn.Module):
    """Layer scale (CaiT, DeiT III): a per-channel γ at the largest width, initialised to ``init``."""

    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * lead(self.gamma, x.shape[-1])

    def extract(self, dim: int) -> LayerScale:
        m = LayerScale(dim, device=self.gamma.device, dtype=self.gamma.dtype)
        m.gamma = copy_param(lead(self.gamma, dim))
        return m


@register("transformer", drop_path=True)
class TransformerOp(nn.Module):
    """One transformer slot of the supernet: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``,
    each branch scaled by its layer-scale γ when ``layer_scale``; ``drop_path`` is the slot's
    stochastic-depth rate (on both residual branches)."""

    #: multiarch support (:mod:`.masked`): the syntax fields that may differ between the archs of
    #: one step, and the normalised width fields the masks follow
    masked = True
    maskable_fields = frozenset({"heads", "head_dim", "qkv_dim", "hidden", "mlp_ratio"})
    masked_widths = ("in_dim", "dim", "heads", "head_dim", "qkv_dim", "hidden")

    def __init__(self, layer, drop_path: float = 0.0):
        super().__init__()
        f = layer.fields
        self.norm1 = ElasticLayerNorm(f.dim)
        self.attn = ElasticAttention(f)
        self.norm2 = ElasticLayerNorm(f.dim)
        self.mlp = ElasticMlp(f.dim, f.hidden)
        self.ls1 = ElasticLayerScale(f.dim, f.layer_scale) if f.layer_scale else None
        self.ls2 = ElasticLayerScale(f.dim, f.layer_scale) if f.layer_scale else None
        self.drop_path_rate = drop_path
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, layer) -> torch.Tensor:
        f = layer.fields
        dim = f.dim
        a = self.attn(self.norm1(x, dim), f)
        x = x + self.drop_path(self.ls1(a) if f.layer_scale else a)
        m = self.mlp(self.norm2(x, dim), f.hidden)
        return x + self.drop_path(self.ls2(m) if f.layer_scale else m)

    def forward_masked(self, x: torch.Tensor, layer, m: M.SlotMasks) -> torch.Tensor:
        """Multiarch forward (:mod:`.masked`): ``layer`` the union layer of the step's archs, ``m``
        each sample's widths; every sample computes exactly its own arch's block."""
        f = layer.fields
        width = m.width("dim", f.dim)
        a = self.attn.forward_masked(M.norm_masked(self.norm1, x, width), f, m)
        x = x + self.drop_path(self.ls1(a) if f.layer_scale else a)
        h = self.mlp.forward_masked(M.norm_masked(self.norm2, x, width), f.hidden, m)
        return x + self.drop_path(self.ls2(h) if f.layer_scale else h)

    def extract(self, layer) -> "Block":
        f = layer.fields
        scales = (self.ls1.extract(f.dim), self.ls2.extract(f.dim)) if f.layer_scale else (None, None)
        return Block(self.norm1.extract(f.dim), self.attn.extract(f), self.norm2.extract(f.dim),
                     self.mlp.extract(f.dim, f.hidden), self.drop_path_rate, *scales)


class Block(nn.Module):
    """Standalone pre-norm transformer block of an extracted subnet (timm's ``Block`` layout)."""

    def __init__(self, norm1: nn.LayerNorm, attn: Attention, norm2: nn.LayerNorm, mlp: Mlp, drop_path: float = 0.0,
                 ls1: LayerScale | None = None, ls2: LayerScale | None = None):
        super().__init__()
        self.norm1, self.attn, self.norm2, self.mlp = norm1, attn, norm2, mlp
        self.ls1 = ls1 if ls1 is not None else nn.Identity()
        self.ls2 = ls2 if ls2 is not None else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))
