"""``linear`` head: final LayerNorm (``norm``), pooling (the class token or the average of the
patch tokens), optionally a LayerNorm after pooling (``fc_norm``) and a pre-logits layer
(``pre_logits``: linear + tanh, As-ViT), then a linear classifier.

The network carries a class token when the head pools it (``pool cls``) or keeps it
(``class_token true``: AutoFormer's released models and timm's ``global_pool='avg'`` ViTs keep
the class token through the blocks and average the patch tokens).  ``token_label`` adds
ViT-ResNAS's token-labelling classifier over the patch tokens: a training-only output whose
parameters count (``spacelang.kinds.training_params`` says how many) and whose FLOPs
do not."""
from typing import Any, Mapping

import attrs

from .base import Context, Field, FieldError, Kind, Normalized, fields
from .counting import LAYER_NORM, finish

FIELDS = fields(
    Field("pool", "sym", default="cls", symbols=("cls", "avg")),
    Field("class_token", "bool", default=None,
          doc="the network carries a class token (default: exactly when `pool cls`)"),
    Field("norm", "bool", default=True, doc="LayerNorm over every token before pooling"),
    Field("fc_norm", "bool", default=False, doc="LayerNorm after pooling (timm's fc_norm)"),
    Field("pre_logits", "bool", default=False, doc="linear dim → dim + tanh before the classifier (As-ViT)"),
    Field("token_label", "bool", default=False,
          doc="training-only classifier over the patch tokens (ViT-ResNAS's token labelling)"),
)


@attrs.frozen(kw_only=True)
class LinearHeadLayer(Normalized):
    """A normalised ``linear`` head; ``cls``: the tokens it receives start with a class token."""

    pool: str
    norm: bool
    fc_norm: bool
    pre_logits: bool
    token_label: bool
    classes: int
    cls: bool


def class_token(values: Mapping[str, Any]) -> bool:
    """The network carries a class token when the head pools it, or when ``class_token`` says so."""
    if values["class_token"] is None:
        return values["pool"] == "cls"
    return values["class_token"] or values["pool"] == "cls"


def normalize(f: dict, ctx: Context) -> LinearHeadLayer:
    if f["pool"] == "cls" and f["class_token"] is False:
        raise FieldError("class_token", "`pool cls` pools the class token, but `class_token false` removes it",
                         "use `pool avg` to average the patch tokens without a class token")
    return LinearHeadLayer(in_dim=ctx.in_dim, dim=ctx.in_dim, in_size=ctx.in_size, size=1, pool=f["pool"],
                           norm=f["norm"], fc_norm=f["fc_norm"], pre_logits=f["pre_logits"],
                           token_label=f["token_label"], classes=ctx.classes, cls=ctx.cls_token)


def training_params(f: LinearHeadLayer) -> int:
    """Parameters only training uses: the token-labelling classifier ``in_dim`` → ``classes``."""
    return (f.in_dim * f.classes + f.classes) if f.token_label and f.classes else 0


def cost(f: LinearHeadLayer, convention: str = "fvcore") -> tuple[int, int]:
    """LayerNorm over every token (``norm``; the class token included when there is one),
    pooling (taking the class token or a ``mean`` — both uncounted), LayerNorm over the pooled
    vector (``fc_norm``), linear ``in_dim`` → ``in_dim`` with bias and tanh (``pre_logits``),
    then the classifier ``in_dim`` → ``classes`` with bias (none when classes is 0).  The
    token-labelling classifier (``token_label``) counts its parameters but no FLOPs: inference
    does not run it."""
    c, k = f.in_dim, f.classes
    params, macs, extra = (c * k + k if k else 0), c * k, 0
    if f.norm:
        params += 2 * c
        extra += LAYER_NORM * c * (f.in_size ** 2 + f.cls)
    if f.fc_norm:
        params += 2 * c
        extra += LAYER_NORM * c
    if f.pre_logits:
        params += c * c + c
        macs += c * c
    params += training_params(f)
    return finish(params, macs, extra, convention)


EXAMPLE = """\
space example_linear
input image 16 channels 3
classes 4
stem patch_embed { patch 4 }
stage s1 {
  dim {8, 16}
  depth 1
  block transformer { heads 1..2  head_dim 4  mlp_ratio 2 }
}
head linear {
  pool        {cls, avg}
  norm        {true, false}
  fc_norm     {true, false}
  pre_logits  {true, false}
  token_label true
}
"""

KIND = Kind(name="linear", roles=frozenset({"head"}), fields=FIELDS, normalize=normalize, layer=LinearHeadLayer,
            doc=__doc__, cost=cost, class_token=class_token, training_params=training_params, example=EXAMPLE)
