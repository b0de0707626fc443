"""The fields that describe the papers' and timm's released models: a class token independent
of pooling, ``fc_norm``, ``pre_logits``, ``token_label`` (linear head), ``layer_scale``
(transformer), ``pos patches`` and ``norm_before`` (patch_embed).  Their costs are held to
fvcore and ``sum(numel)`` by the registry tests (each kind's example uses them); here: what they
mean, what they cost, and what they refuse.  Pure language: no torch."""
from __future__ import annotations

import pytest

import spacelang as sl
from spacelang.errors import SpaceError
from spacelang.kinds import training_params


def vit(head: str = "pool cls", block: str = "", stem: str = "") -> sl.Space:
    return sl.loads(f"""
space v
input image 32 channels 3
classes 10
stem patch_embed {{ patch 4 {stem} }}
stage s1 {{
  dim 32
  depth 2
  block transformer {{ heads 2  mlp_ratio 2 {block} }}
}}
head linear {{ {head} }}
""")


def cost(space: sl.Space, convention: str = "fvcore") -> sl.Cost:
    return sl.cost(space, space.max_arch(), convention=convention)


@pytest.mark.parametrize("head, cls", [
    ("pool cls", True), ("pool avg", False), ("pool avg  class_token true", True),
    ("pool avg  class_token false", False), ("pool cls  class_token true", True),
])
def test_class_token_follows_pooling_unless_written(head, cls):
    net = vit(head).resolve({})
    assert net.head.fields.cls is cls and net.stem.fields.cls is cls
    assert net.stages[0].blocks[0].fields.tokens == 64 + cls


def test_kept_class_token_costs_what_pool_cls_costs():
    """Averaging the patch tokens while keeping the class token is free: same params and FLOPs."""
    assert cost(vit("pool avg  class_token true")) == cost(vit("pool cls"))
    assert cost(vit("pool avg")).flops < cost(vit("pool cls")).flops


def test_pool_cls_without_class_token_is_an_error():
    with pytest.raises(SpaceError, match="class_token false"):
        vit("pool cls  class_token false")


def test_head_options_cost():
    base = cost(vit("pool avg"))
    c = 32
    assert cost(vit("pool avg  norm false  fc_norm true")) == sl.Cost(base.params, base.flops - 5 * c * 64 + 5 * c)
    assert cost(vit("pool avg  pre_logits true")) == sl.Cost(base.params + c * c + c, base.flops + c * c)
    assert cost(vit("pool avg  pre_logits true"), "macs").flops == cost(vit("pool avg"), "macs").flops + c * c


def test_token_label_counts_params_not_flops():
    space, plain = vit("pool cls  token_label true"), vit("pool cls")
    assert cost(space).params == cost(plain).params + 32 * 10 + 10
    assert cost(space).flops == cost(plain).flops
    assert training_params(space.resolve({})) == 32 * 10 + 10
    assert training_params(plain.resolve({})) == 0


def test_layer_scale_adds_two_gammas_per_block_and_no_flops():
    plain, scaled = cost(vit()), cost(vit(block="layer_scale 1e-5"))
    assert scaled == sl.Cost(plain.params + 2 * 2 * 32, plain.flops)


@pytest.mark.parametrize("value", ["0", "0.0"])
def test_layer_scale_must_be_positive(value):
    with pytest.raises(SpaceError, match="layer_scale"):
        vit(block=f"layer_scale {value}")


def test_pos_patches_has_no_row_for_the_class_token():
    assert cost(vit(stem="pos patches")).params == cost(vit()).params - 32
    assert cost(vit("pool avg", stem="pos patches")) == cost(vit("pool avg"))


def test_norm_before_normalises_each_patch_and_drops_the_bias():
    """As-ViT's re-embedding: LayerNorm over k²·in per output token, bias-free projection."""
    def space(extra: str) -> sl.Space:
        return sl.loads(f"""
space r
input image 32 channels 3
classes 10
stem patch_embed {{ patch 4  pos none }}
stage s1 {{
  dim 16
  depth 1
  block transformer {{ heads 2  mlp_ratio 2 }}
}}
stage s2 {{
  downsample patch_embed {{ patch 2  kernel 4  padding 1  pos none {extra} }}
  dim 32
  depth 1
  block transformer {{ heads 2  mlp_ratio 2 }}
}}
head linear {{ pool avg }}
""")
    plain, before = cost(space("")), cost(space("norm_before true"))
    patch = 16 * 4 * 4
    assert before.params == plain.params - 32 + 2 * patch
    assert before.flops == plain.flops + 5 * patch * 4 * 4
    assert cost(space("norm_before true"), "macs").flops == cost(space(""), "macs").flops
