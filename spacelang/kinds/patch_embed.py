"""``patch_embed``: a strided convolution that turns pixels (or tokens) into tokens.

As a stem it is ViT/DeiT's patchify conv (``kernel = stride = patch``), optionally with
overlapping kernels (As-ViT) and a LayerNorm after it (Swin).  ``pos abs`` adds a learned absolute
position embedding over every token, the class token included (ViT/DeiT); ``pos patches`` over the
patch tokens only (timm's ``no_embed_class``, DeiT III).  The stem prepends the class token when
the head asks for one.
As a downsample it re-tokenises between stages (As-ViT).  ``norm_before`` is As-ViT's
re-embedding: each kernel×kernel×in patch is normalised (LayerNorm over its k²·in values) and then
projected without bias, instead of a biased convolution.
``dilation`` spaces the kernel's taps (As-ViT §4's progressive re-tokenization samples the image
coarsely with the same weights): the kernel spans ``dilation·(kernel − 1) + 1`` pixels and the map
has ``floor((in + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1`` tokens a side; the
weights and the MACs per token do not change.
"""
import attrs

from .base import Context, Field, Kind, FieldError, Normalized, fields, map_origin
from .counting import LAYER_NORM, finish

FIELDS = fields(
    Field("patch", "int", min=1, doc="patch size; kernel and stride default to it"),
    Field("kernel", "int", default=None, min=1, doc="conv kernel (overlapping patches when > stride)"),
    Field("stride", "int", default=None, min=1),
    Field("padding", "int", default=None, min=0,
          doc="default 0, or extent // 2 when the kernel's extent dilation·(kernel − 1) + 1 > stride"),
    Field("dilation", "int", default=1, min=1, doc="spacing of the kernel's taps (As-ViT's re-tokenization)"),
    Field("norm", "bool", default=False, doc="LayerNorm after the projection (Swin)"),
    Field("pos", "sym", default="abs", symbols=("abs", "patches", "none"),
          doc="absolute position embedding: every token (abs) or the patch tokens only (patches)"),
    Field("norm_before", "bool", default=False,
          doc="LayerNorm over each kernel×kernel patch, then a bias-free projection (As-ViT's re-embedding)"),
)


@attrs.frozen(kw_only=True)
class PatchEmbedLayer(Normalized):
    """A normalised ``patch_embed``; ``cls``: it prepends a class token (stems only)."""

    kernel: int
    stride: int
    padding: int
    dilation: int
    norm: bool
    pos: str
    norm_before: bool
    cls: bool


def normalize(f: dict, ctx: Context) -> PatchEmbedLayer:
    if ctx.role == "downsample" and ctx.cls_token:
        raise FieldError(None, "re-tokenising with patch_embed cannot carry a class token",
                         "use `head linear { pool avg }`, or `rsr`, which carries the class token")
    kernel = f["kernel"] if f["kernel"] is not None else f["patch"]
    stride = f["stride"] if f["stride"] is not None else f["patch"]
    dilation = f["dilation"]
    extent = dilation * (kernel - 1) + 1  # pixels the kernel spans
    padding = f["padding"] if f["padding"] is not None else (extent // 2 if extent > stride else 0)
    if kernel < stride and dilation == 1:  # a dilated kernel samples sparsely by design
        raise FieldError("kernel", f"kernel {kernel} is smaller than stride {stride}: pixels would be skipped",
                         "use kernel >= stride")
    out = (ctx.in_size + 2 * padding - extent) // stride + 1
    what = "input" if ctx.role != "downsample" else "feature map" + map_origin(ctx.in_size, ctx)
    if out < 1:
        if dilation > 1:
            raise FieldError("dilation", f"kernel {kernel} at dilation {dilation} spans {extent} pixels, more than "
                             f"the {ctx.in_size}×{ctx.in_size} {what} with padding {padding}",
                             "use a smaller dilation or kernel, or more padding")
        raise FieldError("patch", f"patch {kernel} is larger than the {ctx.in_size}×{ctx.in_size} {what}",
                         "use a smaller patch or a larger input")
    if extent == stride and padding == 0 and ctx.in_size % stride:
        raise FieldError("patch", f"patch {stride} does not divide the {ctx.in_size}×{ctx.in_size} {what}",
                         f"{ctx.in_size} % {stride} = {ctx.in_size % stride}; choose a divisor of {ctx.in_size}")
    return PatchEmbedLayer(in_dim=ctx.in_dim, dim=ctx.dim, in_size=ctx.in_size, size=out, kernel=kernel,
                           stride=stride, padding=padding, dilation=dilation, norm=f["norm"], pos=f["pos"],
                           norm_before=f["norm_before"], cls=ctx.cls_token)


def cost(f: PatchEmbedLayer, convention: str = "fvcore") -> tuple[int, int]:
    """Conv ``kernel``² × ``in_dim`` → ``dim`` with bias — or, with ``norm_before``, a LayerNorm
    over each patch's ``kernel``²·``in_dim`` values and the same projection without bias;
    LayerNorm over the tokens (``norm``); the class token (``cls``) and the position embedding
    over every token, class token included (``pos abs``), or over the patch tokens
    (``pos patches``), as timm's ViT/DeiT and Swin build them.  Dilation changes the map's
    size (``f.size``), not the work per token."""
    c, s2 = f.dim, f.size ** 2
    patch = f.in_dim * f.kernel ** 2
    conv = c * patch
    params, macs, extra = conv + c, conv * s2, 0
    if f.norm_before:
        params += 2 * patch - c
        extra += LAYER_NORM * patch * s2
    if f.norm:
        params += 2 * c
        extra += LAYER_NORM * c * s2
    if f.pos == "abs":
        params += (s2 + f.cls) * c
    elif f.pos == "patches":
        params += s2 * c
    if f.cls:
        params += c
    return finish(params, macs, extra, convention)


EXAMPLE = """\
space example_patch_embed
input image {16, 32} channels 3
classes 4
stem patch_embed {
  patch 4  kernel {4, 5, 6}  dilation {1, 2}  norm true  pos patches
  padding (dilation * (kernel - 1) + 1 - patch + 1) // 2   # the map stays input / 4
}
stage s1 {
  dim {8, 16}
  depth 1
  block transformer { heads 1..2  head_dim 4  mlp_ratio 2 }
}
stage s2 {
  downsample patch_embed { patch 2  kernel {2, 3}  padding (kernel - patch + 1) // 2  pos none  norm_before true }
  dim {16, 24}
  depth 1
  block transformer { heads 2  head_dim 4  mlp_ratio 2 }
}
head linear { pool avg }
"""

KIND = Kind(name="patch_embed", roles=frozenset({"stem", "downsample"}), fields=FIELDS, normalize=normalize,
            layer=PatchEmbedLayer, doc=__doc__, cost=cost, example=EXAMPLE)
