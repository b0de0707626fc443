"""``patch_merging``: Swin's transition — concatenate each 2×2 neighbourhood (4·C channels),
LayerNorm, then a bias-free linear map to the new stage width."""
from .base import Context, Kind, FieldError, fields
from .counting import LAYER_NORM, finish


def normalize(f: dict, ctx: Context) -> dict:
    if ctx.in_size % 2:
        raise FieldError(None, f"patch merging needs an even feature map, got {ctx.in_size}×{ctx.in_size}",
                        "change the input resolution or the stem's patch size")
    if ctx.cls_token:
        raise FieldError(None, "patch merging cannot carry a class token", "use `head linear { pool avg }`")
    return dict(in_dim=ctx.in_dim, dim=ctx.dim, in_size=ctx.in_size, size=ctx.in_size // 2)


def cost(f, convention: str = "fvcore") -> tuple[int, int]:
    """LayerNorm over the ``4·in_dim`` merged channels and a bias-free linear map to ``dim``,
    on the ``size``² merged tokens (timm's ``PatchMerging``)."""
    c4, s2 = 4 * f["in_dim"], f["size"] ** 2
    return finish(2 * c4 + c4 * f["dim"], c4 * f["dim"] * s2, LAYER_NORM * c4 * s2, convention)


KIND = Kind("patch_merging", frozenset({"downsample"}), fields(), normalize, doc=__doc__, cost=cost)
