"""``patch_merging``: Swin's transition — concatenate each 2×2 neighbourhood (4·C channels),
LayerNorm, then a bias-free linear map to the new stage width."""
import attrs

from .base import Context, Kind, FieldError, Normalized, fields, map_origin
from .counting import LAYER_NORM, finish


@attrs.frozen(kw_only=True)
class PatchMergingLayer(Normalized):
    """A normalised ``patch_merging`` (no fields of its own)."""


def normalize(f: dict, ctx: Context) -> PatchMergingLayer:
    if ctx.in_size % 2:
        raise FieldError(None, f"patch merging needs an even feature map, got {ctx.in_size}×{ctx.in_size}"
                         + map_origin(ctx.in_size, ctx),
                         "change the input resolution or the stem's patch size")
    if ctx.cls_token:
        raise FieldError(None, "patch merging cannot carry a class token", "use `head linear { pool avg }`")
    return PatchMergingLayer(in_dim=ctx.in_dim, dim=ctx.dim, in_size=ctx.in_size, size=ctx.in_size // 2)


def cost(f: PatchMergingLayer, convention: str = "fvcore") -> tuple[int, int]:
    """LayerNorm over the ``4·in_dim`` merged channels and a bias-free linear map to ``dim``,
    on the ``size``² merged tokens (timm's ``PatchMerging``)."""
    c4, s2 = 4 * f.in_dim, f.size ** 2
    return finish(2 * c4 + c4 * f.dim, c4 * f.dim * s2, LAYER_NORM * c4 * s2, convention)


EXAMPLE = """\
space example_patch_merging
input image 16 channels 3
classes 4
stem patch_embed { patch 2  norm true  pos none }
stage s1 {
  dim {4, 8}
  depth 1
  block transformer { heads 1  head_dim 4  mlp_ratio 2  window 4 }
}
stage s2 {
  downsample patch_merging
  dim {8, 16}
  depth 1..2
  block transformer { heads 1..2  head_dim 4  mlp_ratio 2  window {2, 4} }
}
head linear { pool avg }
"""

KIND = Kind(name="patch_merging", roles=frozenset({"downsample"}), fields=fields(), normalize=normalize,
            layer=PatchMergingLayer, doc=__doc__, cost=cost, example=EXAMPLE)
