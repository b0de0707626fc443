"""``conv``: convolution + BatchNorm + activation (NASViT's first layer, a strided transition).

``width`` sets the output channels when the layer is a stem whose width differs from the first
stage's (NASViT); otherwise the output is the stage width.  The convolution has "same" padding
(``kernel // 2``) and no bias; an elastic ``kernel`` uses the centre of the slot's largest kernel.
The compiled op carries ``(B, C, H, W)`` feature maps (as do ``mbconv``, ``mbpool`` and
``nasvit_transformer``).
"""
import attrs

from .base import Context, Field, Kind, FieldError, Normalized, fields
from .counting import BATCH_NORM, finish

FIELDS = fields(
    Field("kernel", "int", default=3, min=1),
    Field("stride", "int", default=1, min=1),
    Field("width", "int", default=None, min=1, doc="output channels (default: the stage width)"),
    Field("act", "sym", default="swish", symbols=("swish", "relu", "gelu", "none")),
)


@attrs.frozen(kw_only=True)
class ConvLayer(Normalized):
    """A normalised ``conv`` layer."""

    kernel: int
    stride: int
    act: str


def normalize(f: dict, ctx: Context) -> ConvLayer:
    if f["kernel"] % 2 == 0:
        raise FieldError("kernel", f"kernel {f['kernel']} is even", "use an odd kernel (same padding)")
    out = (ctx.in_size - 1) // f["stride"] + 1
    return ConvLayer(in_dim=ctx.in_dim, dim=f["width"] or ctx.dim, in_size=ctx.in_size, size=out,
                     kernel=f["kernel"], stride=f["stride"], act=f["act"])


def cost(f: ConvLayer, convention: str = "fvcore") -> tuple[int, int]:
    """A bias-free ``kernel``² conv ``in_dim`` → ``dim`` and an eval-mode BatchNorm on its output."""
    c, s2 = f.dim, f.size ** 2
    conv = c * f.in_dim * f.kernel ** 2
    return finish(conv + 2 * c, conv * s2, BATCH_NORM * c * s2, convention)


EXAMPLE = """\
space example_conv
input image {16, 24} channels 3
classes 4
stem conv { kernel 3  stride 2  width {4, 8} }
stage s1 {
  dim {8, 16}
  depth 1..2
  block conv { kernel {1, 3}  act relu }
}
head mbpool { width 16 }
"""

KIND = Kind(name="conv", roles=frozenset({"stem", "downsample", "block"}), fields=FIELDS, normalize=normalize,
            layer=ConvLayer, doc=__doc__, cost=cost, example=EXAMPLE)
