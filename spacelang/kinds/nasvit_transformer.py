"""``nasvit_transformer``: NASViT's transformer layer (Appendix B.1, Figure 6; §3).

On a ``size``×``size`` map of ``dim`` channels (no class token), with ``heads = dim / head_dim``
(footnote 1: head dim 8):

- attention on ``LayerNorm(x)``: q, k = Linear(dim, dim); v = Linear(dim, ``v_expand``·dim)
  (LeViT's V expansion, ×4) followed by a 3×3 depth-wise conv on V's map; scores
  ``q·d^-½ @ kᵀ`` plus the relative position term ``rpe``; talking heads (Shazeer et al.): a
  Linear(heads, heads) mixing the heads before the softmax and another after it; ``attn @ v``;
  the activation; the projection Linear(``v_expand``·dim, dim);
- MLP 1 on ``LayerNorm(x)``: Linear(dim, hidden), a 3×3 depth-wise conv on the hidden map
  (``mlp_conv``), the activation, Linear(hidden, dim); ``hidden = mlp_ratio · dim``;
- MLP 2 (MacaronNet's extra MLP, after the first): the same without the depth-wise conv;
- each of the three branches is added to its input after a per-channel switchable scaling layer
  (§3): one set of weights for each (width, depth) configuration of the stage, initialised to
  ``scale_init`` (CaiT's 1e-4); the attention has its own set, the two MLPs share one (the
  authors' code).  An extracted subnet keeps the one set its arch uses.

``rpe shaw``: Shaw et al.'s relative position embedding on the scores, on the 2-D map — a
vertical and a horizontal table of ``head_dim``-vectors per relative offset (shared by the
heads), ``q_i · (a_v[dy] + a_h[dx])``; ``rpe bias``: Swin's scalar bias per head and 2-D offset
(the authors' code); ``none``.  ``windows`` W splits the map into W×W windows (Table 1's number
of windows k = W²), each attending within itself; the V conv runs per window.  All linears have
biases; the depth-wise convs have none.  The op carries ``(B, C, H, W)`` maps.
"""
import attrs

from .base import Context, Field, Kind, FieldError, Normalized, fields, map_origin
from .counting import LAYER_NORM, finish

FIELDS = fields(
    Field("head_dim", "int", default=8, min=1, doc="channels per head (heads = dim / head_dim)"),
    Field("mlp_ratio", "float", default=1, min=0, doc="hidden width of both MLPs / dim"),
    Field("v_expand", "int", default=4, min=1, doc="V's width / dim (LeViT)"),
    Field("mlp_conv", "bool", default=True, doc="a 3×3 depth-wise conv inside the first MLP"),
    Field("rpe", "sym", default="shaw", symbols=("shaw", "bias", "none"),
          doc="relative position: Shaw et al. on the scores, Swin's bias, or none"),
    Field("windows", "int", default=1, min=1, doc="windows per side (k = windows² windows)"),
    Field("scale_init", "float", default=1e-4, min=0,
          doc="initial value of the switchable scaling layers (0: no scaling layers)"),
    Field("act", "sym", default="swish", symbols=("swish", "gelu", "relu")),
)


@attrs.frozen(kw_only=True)
class NASViTTransformerLayer(Normalized):
    """A normalised ``nasvit_transformer``; ``side``: the attention window's side (``size`` /
    ``windows``); ``v_dim``: V's width; ``hidden``: the MLPs' width; ``scale_init`` 0.0: no
    scaling layers."""

    heads: int
    head_dim: int
    v_dim: int
    hidden: int
    mlp_conv: bool
    rpe: str
    windows: int
    side: int
    scale_init: float
    act: str


def normalize(f: dict, ctx: Context) -> NASViTTransformerLayer:
    if ctx.in_dim != ctx.dim:
        raise FieldError(None, f"a transformer layer keeps the width, but {ctx.in_dim} channels arrive "
                         f"for a {ctx.dim}-wide stage", "add a `downsample` to the stage")
    if ctx.cls_token:
        raise FieldError(None, "NASViT's transformer layer works on a map without a class token",
                         "use the `mbpool` head")
    hd = f["head_dim"]
    if ctx.dim % hd:
        raise FieldError("head_dim", f"head_dim {hd} does not divide the width {ctx.dim}",
                         "heads = dim / head_dim: use a width that is a multiple of head_dim")
    size, w = ctx.in_size, f["windows"]
    if size % w:
        raise FieldError("windows", f"windows {w} per side does not divide the {size}×{size} feature map"
                         + map_origin(size, ctx), f"choose a divisor of {size}")
    hidden = round(f["mlp_ratio"] * ctx.dim)
    if hidden < 1:
        raise FieldError("mlp_ratio", f"mlp_ratio {f['mlp_ratio']} leaves the MLPs no channels")
    return NASViTTransformerLayer(
        in_dim=ctx.in_dim, dim=ctx.dim, in_size=size, size=size, heads=ctx.dim // hd, head_dim=hd,
        v_dim=f["v_expand"] * ctx.dim, hidden=hidden, mlp_conv=f["mlp_conv"], rpe=f["rpe"], windows=w,
        side=size // w, scale_init=float(f["scale_init"]), act=f["act"])


def cost(f: NASViTTransformerLayer, convention: str = "fvcore") -> tuple[int, int]:
    """Over N = ``size``² tokens in windows of n = ``side``² (C = ``dim``, V = ``v_dim``,
    H = ``hidden``, h = ``heads``, d = ``head_dim``, R = 2·``side`` − 1):

    - three LayerNorms (5 FLOPs per element each under fvcore; 2C parameters each);
    - q, k, v linears ``2C² + CV`` per token, biases; V's depth-wise conv ``9V`` per token;
    - scores ``C·n`` and ``attn @ v`` ``V·n`` per token; talking heads ``2h²·n`` per token (two
      Linear(h, h) with biases); projection ``VC`` per token with bias;
    - ``rpe shaw``: ``q @ table`` for both tables, ``2·C·R`` per token (the gather is free),
      tables 2·R·d; ``rpe bias``: a (R², h) table, free to apply;
    - MLP 1: ``2CH`` per token (+ ``9H`` with ``mlp_conv``), biases; MLP 2: ``2CH`` per token;
    - switchable scaling: the arch's two sets of C weights (attention; both MLPs).
    """
    c, v, hid, h, d = f.dim, f.v_dim, f.hidden, f.heads, f.head_dim
    n_tok, n = f.size ** 2, f.side ** 2
    r = 2 * f.side - 1
    params = 3 * 2 * c                                # LayerNorms
    params += 2 * (c * c + c) + c * v + v + 9 * v      # q, k, v, V conv
    params += 2 * (h * h + h) + v * c + c              # talking heads, projection
    params += 2 * (c * hid + hid + hid * c + c)        # two MLPs
    per_token = 2 * c * c + c * v + 9 * v + c * n + v * n + 2 * h * h * n + v * c + 4 * c * hid
    if f.mlp_conv:
        params += 9 * hid
        per_token += 9 * hid
    if f.rpe == "shaw":
        params += 2 * r * d
        per_token += 2 * c * r
    elif f.rpe == "bias":
        params += r * r * h
    if f.scale_init:
        params += 2 * c
    return finish(params, per_token * n_tok, 3 * LAYER_NORM * c * n_tok, convention)


EXAMPLE = """\
space example_nasvit_transformer
input image {16, 32} channels 3
classes 4
stem conv { kernel 3  stride 2  width 8 }
stage s1 {
  downsample mbconv { kernel 3  expand 2  stride 2  shortcut project }
  dim {8, 16}
  depth 1..2
  let e = {1, 2}
  let w = {1, 2}
  block nasvit_transformer { mlp_ratio e  windows w  head_dim 4 }
}
stage s2 {
  downsample mbconv { kernel 3  expand 2  stride 2  shortcut project }
  dim 16
  depth 1..2
  block nasvit_transformer { rpe bias  mlp_conv false  scale_init 0.1 }
}
head mbpool { width 16  expand 2 }
"""

KIND = Kind(name="nasvit_transformer", roles=frozenset({"block"}), fields=FIELDS, normalize=normalize,
            layer=NASViTTransformerLayer, doc=__doc__, cost=cost, example=EXAMPLE)
