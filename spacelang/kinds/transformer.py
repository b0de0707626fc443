"""``transformer``: a pre-norm transformer block (attention + MLP, each with a residual).

Global multi-head self-attention (ViT/DeiT/AutoFormer/ViT-ResNAS) or, with ``window``, Swin/S3
shifted-window attention with a relative position bias table per block.

Widths: ``heads`` heads of ``head_dim`` channels make ``qkv_dim`` (any two determine the third);
the MLP hidden width is ``hidden`` or ``mlp_ratio`` × ``dim``.  ``rel_pos`` adds AutoFormer's
2-D relative position encoding (tables for keys and values, distances clipped to ``rel_dist``).
``splits`` S (As-ViT/NASViT attention splits) cuts the map into S×S windows: S must divide the
map, and excludes both ``window`` and a class token (the class token belongs to no window); the
compiler runs it as non-overlapping, unshifted windows (``compiler/ops/split_attention.py``).
"""
from typing import Any, Mapping

import attrs

from .base import Context, Field, Kind, FieldError, Normalized, fields, map_origin
from .counting import LAYER_NORM, finish

FIELDS = fields(
    Field("heads", "int", min=1),
    Field("head_dim", "int", default=None, min=1),
    Field("qkv_dim", "int", default=None, min=1),
    Field("mlp_ratio", "float", default=None, min=0),
    Field("hidden", "int", default=None, min=1),
    Field("qkv_bias", "bool", default=True),
    Field("rel_pos", "bool", default=False, doc="AutoFormer 2-D relative position encoding"),
    Field("rel_dist", "int", default=14, min=1, doc="clip distance of rel_pos"),
    Field("window", "int", default=None, min=1, doc="window attention with this window side"),
    Field("shift", "sym", default="auto", symbols=("auto", "none", "half"),
          doc="auto: Swin's alternation (odd blocks shifted by window // 2)"),
    Field("splits", "int", default=1, min=1, doc="attention splits (As-ViT, NASViT)"),
    Field("layer_scale", "float", default=None, min=0,
          doc="layer scale: a per-channel γ on both residual branches, initialised to this value (CaiT, DeiT III)"),
)


@attrs.frozen(kw_only=True)
class TransformerLayer(Normalized):
    """A normalised ``transformer`` block.

    ``window``: the window side (0: global attention; a window covering the map becomes the
    map); ``shift``: the cyclic shift in tokens (0: none); ``layer_scale``: the initial value of
    the layer-scale γ (0.0: no layer scale); ``cls``: the tokens start with a class token;
    ``tokens``: the sequence length (``size``² + ``cls``).
    """

    heads: int
    head_dim: int
    qkv_dim: int
    hidden: int
    qkv_bias: bool
    rel_pos: bool
    rel_dist: int
    window: int
    shift: int
    splits: int
    layer_scale: float
    cls: bool
    tokens: int


def normalize(f: dict, ctx: Context) -> TransformerLayer:
    heads, head_dim, qkv_dim = f["heads"], f["head_dim"], f["qkv_dim"]
    if qkv_dim is None:
        qkv_dim = heads * (head_dim if head_dim is not None else 64)
    if qkv_dim % heads:
        raise FieldError("qkv_dim", f"qkv_dim {qkv_dim} is not divisible by heads {heads}",
                         "qkv_dim is split evenly across heads; use a multiple of heads")
    if head_dim is None:
        head_dim = qkv_dim // heads
    elif head_dim * heads != qkv_dim:
        raise FieldError("qkv_dim", f"qkv_dim {qkv_dim} ≠ heads {heads} × head_dim {head_dim}",
                         "write two of heads, head_dim and qkv_dim and let the third follow")
    if (f["mlp_ratio"] is None) == (f["hidden"] is None):
        raise FieldError(None, "a transformer block needs exactly one of mlp_ratio and hidden",
                         "e.g. `mlp_ratio 4` or `hidden 768`")
    hidden = f["hidden"] if f["hidden"] is not None else round(f["mlp_ratio"] * ctx.dim)
    if hidden < 1:
        field = "hidden" if f["hidden"] is not None else "mlp_ratio"
        raise FieldError(field, f"{field} {f[field]} gives an MLP of {hidden} hidden units at width {ctx.dim}",
                         "the MLP needs at least one hidden unit: use a ratio > 0")
    if ctx.in_dim != ctx.dim:
        raise FieldError(None, f"a transformer block keeps the width, but {ctx.in_dim} channels arrive "
                         f"for a {ctx.dim}-wide stage", "add a `downsample` to the stage")
    size = ctx.in_size
    where = f"the {size}×{size} feature map" + map_origin(size, ctx)
    splits = f["splits"]
    if splits > 1:
        if f["window"] is not None:
            raise FieldError("splits", f"splits {splits} and window {f['window']} both cut the map into windows",
                             "write one of them: `window` gives the window side, `splits` the windows per side")
        if ctx.cls_token:
            raise FieldError("splits", "attention splits cannot carry a class token",
                             "use `head linear { pool avg }`, or `splits 1`")
        if size % splits:
            raise FieldError("splits", f"splits {splits} does not divide {where}",
                             f"{size} % {splits} = {size % splits}; choose a divisor of {size}")
    layer_scale = f["layer_scale"]
    if layer_scale is not None and layer_scale <= 0:
        raise FieldError("layer_scale", f"layer_scale {layer_scale} is no initial scale",
                         "give a small positive value such as 1e-5, or leave layer_scale out")
    window = shift = 0
    if f["window"] is not None:
        if ctx.cls_token:
            raise FieldError("window", "window attention cannot carry a class token",
                             "use `head linear { pool avg }`")
        window = f["window"]
        if window >= size:  # Swin: a window covering the map becomes the map, and is not shifted
            window, shift = size, 0
        elif size % window:
            raise FieldError("window", f"window {window} does not divide {where}",
                             f"use a divisor of {size}, or a window ≥ {size} (it then covers the whole map)")
        else:
            mode = f["shift"]
            shift = window // 2 if mode == "half" or (mode == "auto" and ctx.index % 2 == 1) else 0
    return TransformerLayer(in_dim=ctx.in_dim, dim=ctx.dim, in_size=size, size=size, heads=heads,
                            head_dim=head_dim, qkv_dim=qkv_dim, hidden=hidden, qkv_bias=f["qkv_bias"],
                            rel_pos=f["rel_pos"], rel_dist=f["rel_dist"], window=window, shift=shift,
                            splits=splits, layer_scale=float(layer_scale or 0.0), cls=ctx.cls_token,
                            tokens=size * size + int(ctx.cls_token))


def idle_fields(values: Mapping[str, Any], given: frozenset, ctx: Context) -> list[tuple[str, str]]:
    """``shift`` without windows (no ``window``, ``splits 1``) and ``rel_dist`` without ``rel_pos``."""
    idle = []
    if "shift" in given and values["window"] is None and values["splits"] == 1:
        idle.append(("shift", "shift does nothing without a window: global attention is not shifted"))
    if "rel_dist" in given and not values["rel_pos"]:
        idle.append(("rel_dist", "rel_dist does nothing without `rel_pos true`"))
    return idle


def cost(f: TransformerLayer, convention: str = "fvcore") -> tuple[int, int]:
    """Pre-norm block over ``tokens`` tokens: LayerNorm, qkv linear ``dim`` → 3·``qkv_dim``
    (bias if ``qkv_bias``), the two attention products, output projection ``qkv_dim`` → ``dim``
    with bias, LayerNorm, MLP ``dim`` → ``hidden`` → ``dim`` with biases.

    Each query attends to every token (global), to the ``window``² tokens of its window, or,
    with attention splits, to the (``size`` / ``splits``)² tokens of its window (``splits`` S
    means S×S windows; no shift, no bias table).
    Window attention owns a relative position bias table of (2·window − 1)² × heads entries
    (its gather and add, the shift's roll and the mask count nothing).  ``rel_pos`` owns
    AutoFormer's tables — vertical and horizontal, for keys and for values, each
    (2·rel_dist + 2) × head_dim — and adds two more products of the attention's shape.
    Layer scale owns two γ vectors of ``dim`` entries (their products are element-wise: free).
    """
    c, q, h, t = f.dim, f.qkv_dim, f.hidden, f.tokens
    if f.window:
        keys = f.window ** 2
    elif f.splits > 1:
        keys = (f.size // f.splits) ** 2
    else:
        keys = t
    attn = 2 * t * keys * q
    params = 4 * c + 4 * c * q + 3 * q * f.qkv_bias + c + 2 * c * h + h + c
    macs = t * (4 * c * q + 2 * c * h) + attn
    if f.window:
        params += (2 * f.window - 1) ** 2 * f.heads
    if f.rel_pos:
        params += 4 * (2 * f.rel_dist + 2) * f.head_dim
        macs += attn
    if f.layer_scale:
        params += 2 * c
    return finish(params, macs, 2 * LAYER_NORM * t * c, convention)


EXAMPLE = """\
space example_transformer
input image {12, 16} channels 3
classes 4
stem patch_embed { patch 4 }
stage s1 {
  dim {8, 16}
  depth 1..2
  block transformer { heads 1..2  head_dim {4, 8}  mlp_ratio {2, 4}  rel_pos true  rel_dist 2  layer_scale 0.1 }
}
head linear { pool avg  class_token true }
"""

KIND = Kind(name="transformer", roles=frozenset({"block"}), fields=FIELDS, normalize=normalize,
            layer=TransformerLayer, doc=__doc__, cost=cost, idle_fields=idle_fields, example=EXAMPLE)
