"""``mbpool`` head (NASViT/FBNet): 1×1 conv to ``width`` channels + BN + activation, global
average pooling, then the linear classifier."""
import attrs

from .base import Context, Field, Kind, Normalized, fields
from .counting import BATCH_NORM, finish

FIELDS = fields(
    Field("width", "int", min=1),
    Field("act", "sym", default="swish", symbols=("swish", "relu", "gelu")),
)


@attrs.frozen(kw_only=True)
class MBPoolLayer(Normalized):
    """A normalised ``mbpool`` head."""

    width: int
    act: str
    classes: int


def normalize(f: dict, ctx: Context) -> MBPoolLayer:
    return MBPoolLayer(in_dim=ctx.in_dim, dim=f["width"], in_size=ctx.in_size, size=1, width=f["width"],
                       act=f["act"], classes=ctx.classes)


def cost(f: MBPoolLayer, convention: str = "fvcore") -> tuple[int, int]:
    """Bias-free 1×1 conv ``in_dim`` → ``width`` with an eval-mode BatchNorm, mean pooling
    (uncounted), then the classifier ``width`` → ``classes`` with bias (none when classes is 0)."""
    w, s2, k = f.width, f.in_size ** 2, f.classes
    params = f.in_dim * w + 2 * w + (w * k + k)
    macs = f.in_dim * w * s2 + w * k
    return finish(params, macs, BATCH_NORM * w * s2, convention)


EXAMPLE = """\
space example_mbpool
input image 16 channels 3
classes 4
stem conv { kernel 3  stride 2  width 8 }
stage s1 {
  dim 8
  depth 1
  block mbconv { kernel 3  expand 2 }
}
head mbpool { width {16, 32}  act relu }
"""

KIND = Kind(name="mbpool", roles=frozenset({"head"}), fields=FIELDS, normalize=normalize, layer=MBPoolLayer,
            doc=__doc__, cost=cost, example=EXAMPLE)
