"""``mbconv``: MobileNetV2/EfficientNet inverted residual (NASViT's convolutional stages).

1×1 expansion to ``in_dim * expand`` channels (none when ``expand`` is 1), ``kernel``×``kernel``
depth-wise conv with ``stride``, optional squeeze-excitation, 1×1 projection to ``dim``; every
conv is bias-free and followed by BatchNorm (and the activation, except after the projection).

The skip connection: ``shortcut identity`` (MobileNetV2) adds the input only when the shapes
match; ``shortcut project`` (AttentiveNAS/NASViT) always adds one — the input itself, average
pooled (``stride``, ceil mode) when the map shrinks and projected by a bias-free 1×1 conv when
the width changes.  An elastic ``kernel`` uses the centre of the slot's largest kernel (AlphaNet/
AttentiveNAS); elastic ``expand`` and widths use leading channels.
"""
import attrs

from .base import Context, Field, Kind, FieldError, Normalized, fields
from .counting import BATCH_NORM, finish

FIELDS = fields(
    Field("kernel", "int", default=3, min=1),
    Field("expand", "float", default=6, min=1),
    Field("se", "bool", default=False, doc="squeeze-and-excitation"),
    Field("stride", "int", default=1, min=1),
    Field("act", "sym", default="swish", symbols=("swish", "relu", "gelu")),
    Field("shortcut", "sym", default="identity", symbols=("identity", "project"),
          doc="identity: a skip only when shapes match; project: always, pooled/projected as needed (NASViT)"),
)


@attrs.frozen(kw_only=True)
class MBConvLayer(Normalized):
    """A normalised ``mbconv``; ``hidden``: the expanded width (``in_dim`` when ``expand`` is 1);
    ``residual``: a skip connection; ``project``: the skip has a 1×1 projection (width change);
    ``pool``: the skip is average pooled (stride)."""

    kernel: int
    expand: float
    hidden: int
    se: bool
    stride: int
    act: str
    residual: bool
    project: bool
    pool: bool


def normalize(f: dict, ctx: Context) -> MBConvLayer:
    if f["kernel"] % 2 == 0:
        raise FieldError("kernel", f"kernel {f['kernel']} is even", "use an odd kernel (same padding)")
    hidden = ctx.in_dim if f["expand"] == 1 else round(ctx.in_dim * f["expand"])
    out = (ctx.in_size - 1) // f["stride"] + 1
    same = f["stride"] == 1 and ctx.in_dim == ctx.dim
    residual = same or f["shortcut"] == "project"
    return MBConvLayer(in_dim=ctx.in_dim, dim=ctx.dim, in_size=ctx.in_size, size=out, kernel=f["kernel"],
                       expand=f["expand"], hidden=hidden, se=f["se"], stride=f["stride"], act=f["act"],
                       residual=residual, project=residual and ctx.in_dim != ctx.dim,
                       pool=residual and f["stride"] > 1)


def se_width(hidden: int) -> int:
    """Channels of the squeeze-excitation bottleneck: a quarter of ``hidden`` rounded to a
    multiple of 8 (never down by more than 10%), as in AttentiveNAS/NASViT's SE layer."""
    quarter = hidden // 4
    v = max(8, (quarter + 4) // 8 * 8)
    return v + 8 if v < 0.9 * quarter else v


def cost(f: MBConvLayer, convention: str = "fvcore") -> tuple[int, int]:
    """1×1 expansion ``in_dim`` → ``hidden`` (absent when ``hidden == in_dim``), depthwise
    ``kernel``² conv with ``stride``, optional SE (mean pooling — uncounted — then two 1×1 convs
    with bias through :func:`se_width` channels), 1×1 projection to ``dim``; every conv is
    bias-free and followed by an eval-mode BatchNorm.  A projected skip adds a bias-free 1×1 conv
    ``in_dim`` → ``dim`` on the (average-pooled, uncounted) output map."""
    cin, hid, c = f.in_dim, f.hidden, f.dim
    i2, o2 = f.in_size ** 2, f.size ** 2
    params = macs = extra = 0
    if hid != cin:
        params += cin * hid + 2 * hid
        macs += cin * hid * i2
        extra += BATCH_NORM * hid * i2
    dw = hid * f.kernel ** 2
    params += dw + 2 * hid
    macs += dw * o2
    extra += BATCH_NORM * hid * o2
    if f.se:
        r = se_width(hid)
        params += 2 * hid * r + r + hid
        macs += 2 * hid * r
    params += hid * c + 2 * c
    macs += hid * c * o2
    extra += BATCH_NORM * c * o2
    if f.project:
        params += cin * c
        macs += cin * c * o2
    return finish(params, macs, extra, convention)


EXAMPLE = """\
space example_mbconv
input image {16, 24} channels 3
classes 4
stem conv { kernel 3  stride 2  width 8 }
stage s1 {
  downsample mbconv { kernel 3  expand 1  stride 2  shortcut project }
  dim {8, 16}
  depth 1..2
  block mbconv { kernel {3, 5}  expand {2, 4}  se true  shortcut project }
}
stage s2 {
  downsample mbconv { kernel 3  expand 2  stride 2  act relu }
  dim 16
  block mbconv { kernel 3  expand 1 }
}
head mbpool { width 16 }
"""

KIND = Kind(name="mbconv", roles=frozenset({"block", "downsample"}), fields=FIELDS, normalize=normalize,
            layer=MBConvLayer, doc=__doc__, cost=cost, example=EXAMPLE)
