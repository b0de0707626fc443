"""``mbpool`` head (NASViT/FBNet): 1×1 conv to ``width`` channels + BN + activation, global
average pooling, then the linear classifier."""
from .base import Context, Field, Kind, fields
from .counting import BATCH_NORM, finish

FIELDS = fields(
    Field("width", "int", min=1),
    Field("act", "sym", default="swish", symbols=("swish", "relu", "gelu")),
)


def normalize(f: dict, ctx: Context) -> dict:
    return dict(in_dim=ctx.in_dim, dim=f["width"], in_size=ctx.in_size, size=1, width=f["width"],
                act=f["act"], classes=ctx.classes)


def cost(f, convention: str = "fvcore") -> tuple[int, int]:
    """Bias-free 1×1 conv ``in_dim`` → ``width`` with an eval-mode BatchNorm, mean pooling
    (uncounted), then the classifier ``width`` → ``classes`` with bias (none when classes is 0)."""
    w, s2, k = f["width"], f["in_size"] ** 2, f["classes"]
    params = f["in_dim"] * w + 2 * w + (w * k + k)
    macs = f["in_dim"] * w * s2 + w * k
    return finish(params, macs, BATCH_NORM * w * s2, convention)


KIND = Kind("mbpool", frozenset({"head"}), FIELDS, normalize, doc=__doc__, cost=cost)
