"""``conv_stem``: ViT-ResNAS's convolutional tokenizer.

Three 3×3 convolutions (stride 2, 1, 1; BatchNorm + ReLU) with a residual connection from the
output of the first to the output of the third, then a ``patch``×``patch`` convolution with
stride ``patch`` producing ``dim`` channels (the first stage's width), then the class token and
absolute position embedding.
"""
import attrs

from .base import Context, Field, Kind, FieldError, Normalized, fields, map_origin
from .counting import BATCH_NORM, finish

FIELDS = fields(
    Field("width", "int", min=1, doc="channels of the three 3×3 convolutions"),
    Field("patch", "int", default=7, min=1, doc="kernel and stride of the final patchify conv"),
    Field("pos", "sym", default="abs", symbols=("abs", "none")),
)


@attrs.frozen(kw_only=True)
class ConvStemLayer(Normalized):
    """A normalised ``conv_stem``; ``cls``: it prepends a class token."""

    width: int
    patch: int
    pos: str
    cls: bool


def normalize(f: dict, ctx: Context) -> ConvStemLayer:
    half = (ctx.in_size + 1) // 2  # 3×3, stride 2, padding 1
    if half % f["patch"]:
        raise FieldError("patch", f"patch {f['patch']} does not divide the {half}×{half} map after the stride-2 conv"
                         + map_origin(half, ctx),
                         f"the input {ctx.in_size} is halved to {half} first; choose a divisor of {half}")
    return ConvStemLayer(in_dim=ctx.in_dim, dim=ctx.dim, in_size=ctx.in_size, size=half // f["patch"],
                         width=f["width"], patch=f["patch"], pos=f["pos"], cls=ctx.cls_token)


def cost(f: ConvStemLayer, convention: str = "fvcore") -> tuple[int, int]:
    """Three bias-free 3×3 convs (``in_dim`` → ``width`` → ``width`` → ``width``) each with an
    eval-mode BatchNorm, at half the input side; the ``patch``² patchify conv to ``dim`` with
    bias; the class token (``cls``) and the position embedding over every token (``pos abs``)."""
    w, c = f.width, f.dim
    h2 = ((f.in_size + 1) // 2) ** 2
    s2 = f.size ** 2
    convs = 9 * w * (f.in_dim + 2 * w)
    proj = c * w * f.patch ** 2
    params = convs + 3 * 2 * w + proj + c
    macs = convs * h2 + proj * s2
    extra = 3 * BATCH_NORM * w * h2
    if f.pos == "abs":
        params += (s2 + f.cls) * c
    if f.cls:
        params += c
    return finish(params, macs, extra, convention)


EXAMPLE = """\
space example_conv_stem
input image {24, 28} channels 3
classes 4
stem conv_stem { width {4, 8}  patch 2 }
stage s1 {
  dim {8, 16}
  depth 1
  block transformer { heads 1..2  head_dim 4  mlp_ratio 2 }
}
head linear { pool cls }
"""

KIND = Kind(name="conv_stem", roles=frozenset({"stem"}), fields=FIELDS, normalize=normalize, layer=ConvStemLayer,
            doc=__doc__, cost=cost, example=EXAMPLE)
