"""``transformer``: a pre-norm transformer block (attention + MLP, each with a residual).

Global multi-head self-attention (ViT/DeiT/AutoFormer/ViT-ResNAS) or, with ``window``, Swin/S3
shifted-window attention with a relative position bias table per block.

Widths: ``heads`` heads of ``head_dim`` channels make ``qkv_dim`` (any two determine the third);
the MLP hidden width is ``hidden`` or ``mlp_ratio`` × ``dim``.  ``rel_pos`` adds AutoFormer's
2-D relative position encoding (tables for keys and values, distances clipped to ``rel_dist``).
``splits`` (As-ViT/NASViT attention splits) is accepted by the language; the compiler refuses it
until it is implemented.
"""
from .base import Context, Field, Kind, FieldError, fields
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
)


def normalize(f: dict, ctx: Context) -> dict:
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
    if ctx.in_dim != ctx.dim:
        raise FieldError(None, f"a transformer block keeps the width, but {ctx.in_dim} channels arrive for a {ctx.dim}-wide stage",
                        "add a `downsample` to the stage")
    window = shift = 0
    size = ctx.in_size
    if f["window"] is not None:
        if ctx.cls_token:
            raise FieldError("window", "window attention cannot carry a class token",
                            "use `head linear { pool avg }`")
        window = f["window"]
        if window >= size:  # Swin: a window covering the map becomes the map, and is not shifted
            window, shift = size, 0
        elif size % window:
            raise FieldError("window", f"window {window} does not divide the {size}×{size} feature map",
                            f"use a divisor of {size}, or a window ≥ {size} (it then covers the whole map)")
        else:
            mode = f["shift"]
            shift = window // 2 if mode == "half" or (mode == "auto" and ctx.index % 2 == 1) else 0
    return dict(in_dim=ctx.in_dim, dim=ctx.dim, in_size=size, size=size, heads=heads, head_dim=head_dim,
                qkv_dim=qkv_dim, hidden=hidden, qkv_bias=f["qkv_bias"], rel_pos=f["rel_pos"],
                rel_dist=f["rel_dist"], window=window, shift=shift, splits=f["splits"],
                cls=ctx.cls_token, tokens=size * size + int(ctx.cls_token))


def cost(f, convention: str = "fvcore") -> tuple[int, int]:
    """Pre-norm block over ``tokens`` tokens: LayerNorm, qkv linear ``dim`` → 3·``qkv_dim``
    (bias if ``qkv_bias``), the two attention products, output projection ``qkv_dim`` → ``dim``
    with bias, LayerNorm, MLP ``dim`` → ``hidden`` → ``dim`` with biases.

    Each query attends to every token (global), to the ``window``² tokens of its window, or,
    with attention splits, to the (``size`` / ``splits``)² tokens of its window (``splits`` S
    means S×S windows; an estimate until the compiler builds splits).
    Window attention owns a relative position bias table of (2·window − 1)² × heads entries
    (its gather and add, the shift's roll and the mask count nothing).  ``rel_pos`` owns
    AutoFormer's tables — vertical and horizontal, for keys and for values, each
    (2·rel_dist + 2) × head_dim — and adds two more products of the attention's shape.
    """
    c, q, h, t = f["dim"], f["qkv_dim"], f["hidden"], f["tokens"]
    if f["window"]:
        keys = f["window"] ** 2
    elif f["splits"] > 1:
        keys = (f["size"] // f["splits"]) ** 2
    else:
        keys = t
    attn = 2 * t * keys * q
    params = 4 * c + 4 * c * q + 3 * q * f["qkv_bias"] + c + 2 * c * h + h + c
    macs = t * (4 * c * q + 2 * c * h) + attn
    if f["window"]:
        params += (2 * f["window"] - 1) ** 2 * f["heads"]
    if f["rel_pos"]:
        params += 4 * (2 * f["rel_dist"] + 2) * f["head_dim"]
        macs += attn
    return finish(params, macs, 2 * LAYER_NORM * t * c, convention)


KIND = Kind("transformer", frozenset({"block"}), FIELDS, normalize, doc=__doc__, cost=cost)
