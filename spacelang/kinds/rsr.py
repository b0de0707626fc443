"""``rsr``: ViT-ResNAS residual spatial reduction.

Main path: LayerNorm, 3×3 convolution with stride 2 to the new width, a new absolute position
embedding.  Skip path: 2×2 average pooling with the channels zero-padded to the new width.  The
class token goes through LayerNorm + linear, with a zero-padded identity skip.
"""
import attrs

from .base import Context, Kind, FieldError, Normalized, fields, map_origin
from .counting import LAYER_NORM, finish


@attrs.frozen(kw_only=True)
class RSRLayer(Normalized):
    """A normalised ``rsr``; ``cls``: the tokens carry a class token."""

    cls: bool


def normalize(f: dict, ctx: Context) -> RSRLayer:
    if ctx.in_size % 2:
        raise FieldError(None, "residual spatial reduction needs an even feature map, "
                         f"got {ctx.in_size}×{ctx.in_size}" + map_origin(ctx.in_size, ctx),
                         "change the input resolution or the stem's patch size")
    if ctx.dim < ctx.in_dim:
        raise FieldError(None, f"rsr widens the tokens but the width falls from {ctx.in_dim} to {ctx.dim}",
                         "the skip path zero-pads channels; make the new stage at least as wide")
    return RSRLayer(in_dim=ctx.in_dim, dim=ctx.dim, in_size=ctx.in_size, size=ctx.in_size // 2, cls=ctx.cls_token)


def cost(f: RSRLayer, convention: str = "fvcore") -> tuple[int, int]:
    """One LayerNorm over every incoming token (class token included); a 3×3 stride-2 conv
    ``in_dim`` → ``dim`` with bias and a new position embedding over the ``size``² patch tokens;
    the class token's linear ``in_dim`` → ``dim`` with bias.  The skip path (2×2 average pooling
    and zero padding) has no weights and counts nothing (fvcore ignores ``avg_pool2d``)."""
    cin, c, s2, cls = f.in_dim, f.dim, f.size ** 2, f.cls
    conv = 9 * cin * c
    params = 2 * cin + conv + c + s2 * c + cls * (cin * c + c)
    macs = conv * s2 + cls * cin * c
    extra = LAYER_NORM * cin * (f.in_size ** 2 + cls)
    return finish(params, macs, extra, convention)


EXAMPLE = """\
space example_rsr
input image 16 channels 3
classes 4
stem patch_embed { patch 4 }
stage s1 {
  dim {8, 16}
  depth 1
  block transformer { heads 1..2  head_dim 4  mlp_ratio 2 }
}
stage s2 {
  downsample rsr
  dim {16, 24}
  depth 1
  block transformer { heads 2  head_dim 4  mlp_ratio 2 }
}
head linear { pool {cls, avg} }
"""

KIND = Kind(name="rsr", roles=frozenset({"downsample"}), fields=fields(), normalize=normalize, layer=RSRLayer,
            doc=__doc__, cost=cost, example=EXAMPLE)
