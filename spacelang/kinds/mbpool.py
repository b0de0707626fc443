"""``mbpool`` head (NASViT/FBNet; MobileNetV3's efficient last stage).

Without ``expand``: a 1×1 conv ``in_dim`` → ``width`` + BatchNorm + activation, global average
pooling, the linear classifier.  With ``expand`` e (NASViT: 6): a 1×1 conv ``in_dim`` →
``e·in_dim`` + BatchNorm + activation on the map, global average pooling, a bias-free linear
``e·in_dim`` → ``width`` + activation (MobileNetV3's feature-mix layer), the classifier.
"""
import attrs

from .base import Context, Field, Kind, Normalized, fields
from .counting import BATCH_NORM, finish

FIELDS = fields(
    Field("width", "int", min=1),
    Field("expand", "float", default=None, min=1,
          doc="expand the input e× before pooling, then mix to width (MobileNetV3, NASViT: 6)"),
    Field("act", "sym", default="swish", symbols=("swish", "relu", "gelu")),
)


@attrs.frozen(kw_only=True)
class MBPoolLayer(Normalized):
    """A normalised ``mbpool`` head; ``expanded``: the channels pooled (``e·in_dim``; 0 without
    ``expand``)."""

    width: int
    expanded: int
    act: str
    classes: int


def normalize(f: dict, ctx: Context) -> MBPoolLayer:
    expanded = round(ctx.in_dim * f["expand"]) if f["expand"] is not None else 0
    return MBPoolLayer(in_dim=ctx.in_dim, dim=f["width"], in_size=ctx.in_size, size=1, width=f["width"],
                       expanded=expanded, act=f["act"], classes=ctx.classes)


def cost(f: MBPoolLayer, convention: str = "fvcore") -> tuple[int, int]:
    """Bias-free 1×1 conv ``in_dim`` → ``expanded`` (or ``width``) with an eval-mode BatchNorm,
    mean pooling (uncounted), with ``expand`` the bias-free linear ``expanded`` → ``width``, then
    the classifier ``width`` → ``classes`` with bias."""
    w, s2, k, e = f.width, f.in_size ** 2, f.classes, f.expanded
    conv = e or w
    params = f.in_dim * conv + 2 * conv + e * w + (w * k + k)
    macs = f.in_dim * conv * s2 + e * w + w * k
    return finish(params, macs, BATCH_NORM * conv * s2, convention)


EXAMPLE = """\
space example_mbpool
input image {16, 24} channels 3
classes 4
stem conv { kernel 3  stride 2  width 8 }
stage s1 {
  dim {8, 16}
  depth 1
  block mbconv { kernel 3  expand 2  shortcut project }
}
head mbpool { width {16, 32}  expand {2, 6} }
"""

KIND = Kind(name="mbpool", roles=frozenset({"head"}), fields=FIELDS, normalize=normalize, layer=MBPoolLayer,
            doc=__doc__, cost=cost, example=EXAMPLE)
