"""``linear`` head: final LayerNorm (``norm``), pooling (the class token or the token average),
then a linear classifier."""
from .base import Context, Field, Kind, FieldError, fields
from .counting import LAYER_NORM, finish

FIELDS = fields(
    Field("pool", "sym", default="cls", symbols=("cls", "avg")),
    Field("norm", "bool", default=True),
)


def normalize(f: dict, ctx: Context) -> dict:
    return dict(in_dim=ctx.in_dim, dim=ctx.in_dim, in_size=ctx.in_size, size=1, pool=f["pool"],
                norm=f["norm"], classes=ctx.classes, cls=ctx.cls_token)


def cost(f, convention: str = "fvcore") -> tuple[int, int]:
    """LayerNorm over every token (``norm``; the class token is present exactly when ``pool`` is
    ``cls``), pooling (taking the class token or a ``mean`` — both uncounted), then the
    classifier ``in_dim`` → ``classes`` with bias (none when classes is 0)."""
    c, k = f["in_dim"], f["classes"]
    params, macs, extra = c * k + k, c * k, 0
    if f["norm"]:
        params += 2 * c
        extra += LAYER_NORM * c * (f["in_size"] ** 2 + (f["pool"] == "cls"))
    return finish(params, macs, extra, convention)


KIND = Kind("linear", frozenset({"head"}), FIELDS, normalize, doc=__doc__, cost=cost)
