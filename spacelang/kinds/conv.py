"""``conv``: convolution + BatchNorm + activation (NASViT's first layer, a strided transition).

``width`` sets the output channels when the layer is a stem whose width differs from the first
stage's (NASViT); otherwise the output is the stage width.
"""
from .base import Context, Field, Kind, FieldError, fields
from .counting import BATCH_NORM, finish

FIELDS = fields(
    Field("kernel", "int", default=3, min=1),
    Field("stride", "int", default=1, min=1),
    Field("width", "int", default=None, min=1, doc="output channels (default: the stage width)"),
    Field("act", "sym", default="swish", symbols=("swish", "relu", "gelu", "none")),
)


def normalize(f: dict, ctx: Context) -> dict:
    if f["kernel"] % 2 == 0:
        raise FieldError("kernel", f"kernel {f['kernel']} is even", "use an odd kernel (same padding)")
    out = (ctx.in_size - 1) // f["stride"] + 1
    return dict(in_dim=ctx.in_dim, dim=f["width"] or ctx.dim, in_size=ctx.in_size, size=out,
                kernel=f["kernel"], stride=f["stride"], act=f["act"])


def cost(f, convention: str = "fvcore") -> tuple[int, int]:
    """A bias-free ``kernel``² conv ``in_dim`` → ``dim`` and an eval-mode BatchNorm on its output."""
    c, s2 = f["dim"], f["size"] ** 2
    conv = c * f["in_dim"] * f["kernel"] ** 2
    return finish(conv + 2 * c, conv * s2, BATCH_NORM * c * s2, convention)


KIND = Kind("conv", frozenset({"stem", "downsample", "block"}), FIELDS, normalize, doc=__doc__, cost=cost)
