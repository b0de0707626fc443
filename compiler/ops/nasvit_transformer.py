"""``nasvit_transformer``: NASViT's transformer layer (Appendix B.1) with switchable scaling layers (§3).

See ``spacelang/kinds/nasvit_transformer.py`` for what the layer computes.  Elastic (leading
slices of the slot's largest weights): the width ``dim`` (so the heads, ``dim / head_dim``, and
V's ``v_expand · dim`` channels: head j's V channels are ``[j·vd, (j+1)·vd)``), the MLPs' hidden
width, the talking-head matrices (leading heads), the map side (the input resolution: Shaw's
tables and Swin's bias table are sized for the slot's largest attention side, a smaller side
reads their centre).  Depth-wise kernels are views of the stored ones.

Switchable scaling layers: the op holds one pair of per-channel scale vectors (attention; MLPs)
for every (width, depth) configuration its stage can take — ``(c, d)`` for each stage width c and
each stage depth d that reaches this slot — and runs the pair of the arch's (width, depth).  It
therefore needs its stage's choices at construction (``stage=``, from the class's ``stage_configs(space, stage)``) and the
stage's active depth when it runs (``stage_depth=``): the supernet passes both to ops whose class
sets ``takes_stage``.  Built without them (a lone layer, e.g. for latency tables) it holds one pair.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath

from spacelang.errors import CompileError

from . import functional as Fn
from .conv import ElasticKernelConv2d, act
from .elastic import ElasticLayerNorm, ElasticLinear, copy_param, lead, new_param
from .registry import register

#: LayerNorm epsilon (PyTorch's default, which the authors' code uses)
EPS = 1e-5


def stage_configs(space, stage: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The widths and the depths stage ``stage`` of ``space`` can take (each sorted)."""
    from spacelang.cases import assignments
    from spacelang.ir import evaluate, refs

    st = next(s for s in space.stages if s.name == stage)
    widths = sorted({evaluate(st.dim, env) for env in assignments(space, refs(st.dim))})
    if st.depth is None:
        depths = [len(st.blocks)]
    else:
        depths = sorted({evaluate(st.depth, env) for env in assignments(space, refs(st.depth))})
    return tuple(widths), tuple(depths)


# ---------------------------------------------------------------- shared by op and extracted block
class AttnWeights(NamedTuple):
    """The tensors one attention runs with (slices of the supernet's, or a subnet's own)."""

    q_w: torch.Tensor
    q_b: torch.Tensor
    k_w: torch.Tensor
    k_b: torch.Tensor
    v_w: torch.Tensor
    v_b: torch.Tensor
    v_conv: torch.Tensor
    pre_w: torch.Tensor
    pre_b: torch.Tensor
    post_w: torch.Tensor
    post_b: torch.Tensor
    proj_w: torch.Tensor
    proj_b: torch.Tensor


@Fn.constant
def offsets(side: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertical and horizontal offsets ``j − i`` between the tokens of a ``side``² map, shifted by
    ``side − 1`` into ``[0, 2·side − 1)``: ``(side², side²)`` row indices into Shaw's tables."""
    r = torch.arange(side * side)
    row, col = r // side, r % side
    return ((row[None, :] - row[:, None] + side - 1).to(device),
            (col[None, :] - col[:, None] + side - 1).to(device))


def shaw_scores(q: torch.Tensor, table_v: torch.Tensor, table_h: torch.Tensor, side: int) -> torch.Tensor:
    """Shaw et al.'s key term ``q_i · (a_v[dy] + a_h[dx])`` for ``(B, h, n, d)`` queries.

    ``table_*`` have ``2·side − 1`` rows (offset + side − 1).  ``q @ tableᵀ`` is computed once per
    query and table (a matmul, counted), then gathered per key (free)."""
    b, h, n, _ = q.shape
    iv, ih = offsets(side, q.device)
    sv = (q @ table_v.transpose(0, 1)).gather(-1, iv.expand(b, h, n, n))
    sh = (q @ table_h.transpose(0, 1)).gather(-1, ih.expand(b, h, n, n))
    return sv + sh


def talk(attn: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Talking heads: mix ``(B, h, n, n)`` scores across heads with a Linear(h, h)."""
    return F.linear(attn.permute(0, 2, 3, 1), w, b).permute(0, 3, 1, 2)


def attention(u: torch.Tensor, side: int, heads: int, head_dim: int, w: AttnWeights, rpe: str,
              rpe_tables, act_name: str) -> torch.Tensor:
    """NASViT's attention on ``(B, n, C)`` tokens of a ``side``² window → ``(B, n, C)``."""
    b, n, c = u.shape
    vd = w.v_w.shape[0] // heads
    q = F.linear(u, w.q_w, w.q_b).view(b, n, heads, head_dim).transpose(1, 2)
    k = F.linear(u, w.k_w, w.k_b).view(b, n, heads, head_dim).transpose(1, 2)
    v = F.linear(u, w.v_w, w.v_b)
    vc = v.shape[-1]
    v = F.conv2d(Fn.tokens_to_map(v, side), w.v_conv, None, 1, 1, 1, vc)
    v = Fn.map_to_tokens(v).reshape(b, n, heads, vd).transpose(1, 2)
    q = q * head_dim ** -0.5
    attn = q @ k.transpose(-2, -1)
    if rpe == "shaw":
        attn = attn + shaw_scores(q, rpe_tables[0], rpe_tables[1], side)
    elif rpe == "bias":
        attn = attn + rpe_tables(heads, side)
    attn = talk(attn, w.pre_w, w.pre_b).softmax(dim=-1)
    attn = talk(attn, w.post_w, w.post_b)
    out = (attn @ v).transpose(1, 2).reshape(b, n, vc)
    return F.linear(act(out, act_name), w.proj_w, w.proj_b)


def windowed(t: torch.Tensor, size: int, windows: int, fn) -> torch.Tensor:
    """Run ``fn`` on each of the ``windows``×``windows`` windows of ``(B, size², C)`` tokens."""
    if windows == 1:
        return fn(t)
    b, n, c = t.shape
    side = size // windows
    out = fn(Fn.window_partition(t.view(b, size, size, c), side))
    return Fn.window_merge(out, side, size).reshape(b, n, c)


def mlp(t: torch.Tensor, size: int, w1, b1, dw, w2, b2, act_name: str) -> torch.Tensor:
    """Linear → (3×3 depth-wise conv on the map) → activation → Linear on ``(B, size², C)`` tokens."""
    h = F.linear(t, w1, b1)
    if dw is not None:
        h = Fn.map_to_tokens(F.conv2d(Fn.tokens_to_map(h, size), dw, None, 1, 1, 1, h.shape[-1]))
    return F.linear(act(h, act_name), w2, b2)


# ---------------------------------------------------------------- the op
@register("nasvit_transformer", drop_path=True)
class NASViTTransformerOp(nn.Module):
    """One NASViT transformer slot of the supernet (see the module docstring)."""

    takes_stage = True
    carries_maps = True
    stage_configs = staticmethod(stage_configs)

    def __init__(self, layer, drop_path: float = 0.0, stage: tuple | None = None):
        super().__init__()
        f = layer.fields
        c, v, hid, h = f.dim, f.v_dim, f.hidden, f.heads
        self.norm1, self.norm2, self.norm3 = (ElasticLayerNorm(c, EPS) for _ in range(3))
        self.q, self.k, self.v = ElasticLinear(c, c), ElasticLinear(c, c), ElasticLinear(c, v)
        self.v_conv = ElasticKernelConv2d(v, v, 3, depthwise=True)
        self.talk_pre, self.talk_post = ElasticLinear(h, h), ElasticLinear(h, h)
        self.proj = ElasticLinear(v, c)
        self.side = f.side
        if f.rpe == "shaw":
            self.rpe_v, self.rpe_h = new_param(2 * f.side - 1, f.head_dim), new_param(2 * f.side - 1, f.head_dim)
        elif f.rpe == "bias":
            self.rpe_bias = new_param((2 * f.side - 1) ** 2, h)
        self.fc1, self.fc2 = ElasticLinear(c, hid), ElasticLinear(hid, c)
        self.mlp_conv = ElasticKernelConv2d(hid, hid, 3, depthwise=True) if f.mlp_conv else None
        self.fc3, self.fc4 = ElasticLinear(c, hid), ElasticLinear(hid, c)
        # switchable scaling layers: one (attention, MLPs) pair per (width, depth) of the stage
        if stage is None:
            self.sets: dict = {None: 0}
        else:
            widths, depths = stage
            self.sets = {(w, d): i for i, (w, d) in
                         enumerate((w, d) for w in widths for d in depths if d > layer.index)}
        self.scales = nn.Parameter(torch.full((len(self.sets), 2, c), f.scale_init)) if f.scale_init else None
        self.drop_path_rate = drop_path
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    # -- slices
    def _attn_weights(self, f) -> AttnWeights:
        c, v, h = f.dim, f.v_dim, f.heads
        return AttnWeights(lead(self.q.weight, c, c), lead(self.q.bias, c), lead(self.k.weight, c, c),
                           lead(self.k.bias, c), lead(self.v.weight, v, c), lead(self.v.bias, v),
                           lead(self.v_conv.weight, v), lead(self.talk_pre.weight, h, h), lead(self.talk_pre.bias, h),
                           lead(self.talk_post.weight, h, h), lead(self.talk_post.bias, h),
                           lead(self.proj.weight, c, v), lead(self.proj.bias, c))

    def _shaw_rows(self, side: int) -> slice:
        return slice(self.side - side, self.side + side - 1)

    def _rpe(self, f):
        if f.rpe == "shaw":
            rows = self._shaw_rows(f.side)
            return lead(self.rpe_v[rows], 2 * f.side - 1, f.head_dim), lead(self.rpe_h[rows], 2 * f.side - 1, f.head_dim)
        if f.rpe == "bias":
            return lambda heads, side: Fn.window_bias(self.rpe_bias, heads, side, self.side)
        return None

    def _set(self, f, stage_depth: int | None) -> int:
        key = (f.dim, stage_depth) if None not in self.sets else None
        try:
            return self.sets[key]
        except KeyError:
            raise CompileError(f"nasvit_transformer: no switchable scaling set for width {f.dim} at stage "
                               f"depth {stage_depth} (the supernet holds {sorted(self.sets)})") from None

    def forward(self, x: torch.Tensor, layer, stage_depth: int | None = None) -> torch.Tensor:
        f = layer.fields
        c, size = f.dim, f.size
        t = Fn.map_to_tokens(x)
        if self.scales is not None and f.scale_init:
            g = self.scales[self._set(f, stage_depth)]
            g_attn, g_mlp = lead(g[0], c), lead(g[1], c)
        else:
            g_attn = g_mlp = None
        w, rpe = self._attn_weights(f), self._rpe(f)
        a = windowed(self.norm1(t, c), size, f.windows,
                     lambda u: attention(u, f.side, f.heads, f.head_dim, w, f.rpe, rpe, f.act))
        t = t + self.drop_path(a * g_attn if g_attn is not None else a)
        hid = f.hidden
        m = mlp(self.norm2(t, c), size, lead(self.fc1.weight, hid, c), lead(self.fc1.bias, hid),
                lead(self.mlp_conv.weight, hid) if f.mlp_conv else None,
                lead(self.fc2.weight, c, hid), lead(self.fc2.bias, c), f.act)
        t = t + self.drop_path(m * g_mlp if g_mlp is not None else m)
        m = mlp(self.norm3(t, c), size, lead(self.fc3.weight, hid, c), lead(self.fc3.bias, hid), None,
                lead(self.fc4.weight, c, hid), lead(self.fc4.bias, c), f.act)
        t = t + self.drop_path(m * g_mlp if g_mlp is not None else m)
        return Fn.tokens_to_map(t, size)

    def extract(self, layer, stage_depth: int | None = None) -> "NASViTBlock":
        f = layer.fields
        c, v, h, hid = f.dim, f.v_dim, f.heads, f.hidden
        blk = NASViTBlock(f, self.drop_path_rate)
        blk.norm1, blk.norm2, blk.norm3 = self.norm1.extract(c), self.norm2.extract(c), self.norm3.extract(c)
        blk.q, blk.k, blk.v = self.q.extract(c, c), self.k.extract(c, c), self.v.extract(c, v)
        blk.v_conv = self.v_conv.extract(v, v, 3)
        blk.talk_pre, blk.talk_post = self.talk_pre.extract(h, h), self.talk_post.extract(h, h)
        blk.proj = self.proj.extract(v, c)
        if f.rpe == "shaw":
            tv, th = self._rpe(f)
            blk.rpe_v, blk.rpe_h = copy_param(tv), copy_param(th)
        elif f.rpe == "bias":
            rows = Fn.window_bias_rows(f.side, self.side).to(self.rpe_bias.device)
            blk.rpe_bias = copy_param(self.rpe_bias[rows, :h])
        blk.fc1, blk.fc2 = self.fc1.extract(c, hid), self.fc2.extract(hid, c)
        blk.mlp_conv = self.mlp_conv.extract(hid, hid, 3) if f.mlp_conv else None
        blk.fc3, blk.fc4 = self.fc3.extract(c, hid), self.fc4.extract(hid, c)
        if self.scales is not None and f.scale_init:
            g = self.scales[self._set(f, stage_depth)]
            blk.scale_attn, blk.scale_mlp = copy_param(g[0, :c]), copy_param(g[1, :c])
        return blk


class NASViTBlock(nn.Module):
    """Standalone NASViT transformer layer of an extracted subnet: ordinary ``nn`` layers, its own
    rpe table(s) and the one pair of scaling vectors its arch uses (``scale_attn``, ``scale_mlp``)."""

    def __init__(self, f, drop_path: float = 0.0):
        super().__init__()
        self.size, self.side, self.windows = f.size, f.side, f.windows
        self.heads, self.head_dim, self.rpe, self.act = f.heads, f.head_dim, f.rpe, f.act
        self.scale_attn = self.scale_mlp = None
        self.mlp_conv = None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _attn_weights(self) -> AttnWeights:
        return AttnWeights(self.q.weight, self.q.bias, self.k.weight, self.k.bias, self.v.weight, self.v.bias,
                           self.v_conv.weight, self.talk_pre.weight, self.talk_pre.bias, self.talk_post.weight,
                           self.talk_post.bias, self.proj.weight, self.proj.bias)

    def _rpe(self):
        if self.rpe == "shaw":
            return self.rpe_v, self.rpe_h
        if self.rpe == "bias":
            return lambda heads, side: Fn.window_bias(self.rpe_bias, heads, side, side)
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = Fn.map_to_tokens(x)
        w, rpe = self._attn_weights(), self._rpe()
        a = windowed(self.norm1(t), self.size, self.windows,
                     lambda u: attention(u, self.side, self.heads, self.head_dim, w, self.rpe, rpe, self.act))
        t = t + self.drop_path(a * self.scale_attn if self.scale_attn is not None else a)
        m = mlp(self.norm2(t), self.size, self.fc1.weight, self.fc1.bias,
                self.mlp_conv.weight if self.mlp_conv is not None else None, self.fc2.weight, self.fc2.bias, self.act)
        t = t + self.drop_path(m * self.scale_mlp if self.scale_mlp is not None else m)
        m = mlp(self.norm3(t), self.size, self.fc3.weight, self.fc3.bias, None, self.fc4.weight, self.fc4.bias,
                self.act)
        t = t + self.drop_path(m * self.scale_mlp if self.scale_mlp is not None else m)
        return Fn.tokens_to_map(t, self.size)
