"""``patch_embed``: a strided convolution that turns pixels (or tokens) into tokens.

As a stem it is ViT/DeiT's patchify conv (``kernel = stride = patch``), optionally with
overlapping kernels (As-ViT) and a LayerNorm after it (Swin).  ``pos abs`` adds a learned absolute
position embedding (and the class token when the head pools ``cls``).
As a downsample it re-tokenises between stages (As-ViT).
"""
from .base import Context, Field, Kind, FieldError, fields
from .counting import LAYER_NORM, finish

FIELDS = fields(
    Field("patch", "int", min=1, doc="patch size; kernel and stride default to it"),
    Field("kernel", "int", default=None, min=1, doc="conv kernel (overlapping patches when > stride)"),
    Field("stride", "int", default=None, min=1),
    Field("padding", "int", default=None, min=0, doc="default 0, or kernel // 2 when kernel > stride"),
    Field("norm", "bool", default=False, doc="LayerNorm after the projection (Swin)"),
    Field("pos", "sym", default="abs", symbols=("abs", "none"), doc="absolute position embedding"),
)


def normalize(f: dict, ctx: Context) -> dict:
    if ctx.role == "downsample" and ctx.cls_token:
        raise FieldError(None, "re-tokenising with patch_embed cannot carry a class token",
                        "use `head linear { pool avg }`, or `rsr`, which carries the class token")
    kernel = f["kernel"] if f["kernel"] is not None else f["patch"]
    stride = f["stride"] if f["stride"] is not None else f["patch"]
    padding = f["padding"] if f["padding"] is not None else (kernel // 2 if kernel > stride else 0)
    if kernel < stride:
        raise FieldError("kernel", f"kernel {kernel} is smaller than stride {stride}: pixels would be skipped",
                        "use kernel >= stride")
    out = (ctx.in_size + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise FieldError("patch", f"patch {kernel} is larger than the {ctx.in_size}×{ctx.in_size} input",
                        "use a smaller patch or a larger input")
    if kernel == stride and padding == 0 and ctx.in_size % stride:
        raise FieldError("patch", f"patch {stride} does not divide the {ctx.in_size}×{ctx.in_size} input",
                        f"{ctx.in_size} % {stride} = {ctx.in_size % stride}; choose a divisor of {ctx.in_size}")
    return dict(in_dim=ctx.in_dim, dim=ctx.dim, in_size=ctx.in_size, size=out, kernel=kernel,
                stride=stride, padding=padding, norm=f["norm"], pos=f["pos"], cls=ctx.cls_token)


def cost(f, convention: str = "fvcore") -> tuple[int, int]:
    """Conv ``kernel``² × ``in_dim`` → ``dim`` with bias; LayerNorm over the tokens (``norm``);
    the class token (``cls``) and the position embedding over every token, class token
    included (``pos abs``), as timm's ViT/DeiT and Swin build them."""
    c, s2 = f["dim"], f["size"] ** 2
    conv = c * f["in_dim"] * f["kernel"] ** 2
    params, macs, extra = conv + c, conv * s2, 0
    if f["norm"]:
        params += 2 * c
        extra += LAYER_NORM * c * s2
    if f["pos"] == "abs":
        params += (s2 + f["cls"]) * c
    if f["cls"]:
        params += c
    return finish(params, macs, extra, convention)


KIND = Kind("patch_embed", frozenset({"stem", "downsample"}), FIELDS, normalize, doc=__doc__, cost=cost)
