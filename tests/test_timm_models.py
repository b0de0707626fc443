"""timm's VisionTransformer and SwinTransformer models, reproduced by fixed spaces.

For each timm model name (built with ``pretrained=False``, sometimes with fewer blocks to stay
fast) the table gives the fixed space that describes it.  After ``load_timm_weights`` the
supernet and its extracted subnet give timm's logits (≤ 1e-4), the supernet holds exactly timm's
parameters, and the cost model equals fvcore on the timm model (its fused attention counted as
its two matmuls, docs/counting.md).  What the language cannot express is refused with a message
naming the missing feature.
"""
from __future__ import annotations

import os

import pytest

import spacelang as sl
from spacelang.errors import CompileError

from conftest import SPACES
from fvcounting import fvcore_flops, numel

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
pytest.importorskip("fvcore.nn")

from spacelang.compiler import build_supernet, load_timm_weights  # noqa: E402  (after the torch skip)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def vit(image: int, patch: int, dim: int, depth: int, block: str, *, head: str = "pool cls",
        pos: str = "") -> str:
    """A fixed single-stage ViT space."""
    return f"""
space timm_vit
input image {image} channels 3
classes 1000
stem patch_embed {{ patch {patch} {pos} }}
stage encoder {{
  dim {dim}
  depth {depth}
  block transformer {{ {block} }}
}}
head linear {{ {head} }}
"""


def reference(name: str) -> str:
    with open(os.path.join(SPACES, name)) as f:
        return f.read()


# timm name | create_model kwargs | the space describing it
TIMM_MODELS = [
    # average pooling without a class token (final norm before pooling: fc_norm=False)
    pytest.param("vit_base_patch16_gap_224", dict(depth=2),
                 vit(224, 16, 768, 2, "heads 16  head_dim 48  mlp_ratio 4", head="pool avg"),
                 id="vit_base_patch16_gap_224-d2"),
    # a class token kept while the head averages the patch tokens, norm after pooling (fc_norm)
    pytest.param("vit_small_patch16_224", dict(depth=2, global_pool="avg"),
                 vit(224, 16, 384, 2, "heads 6  head_dim 64  mlp_ratio 4",
                     head="pool avg  class_token true  norm false  fc_norm true"),
                 id="vit_small_patch16_224-avg-d2"),
    # layer scale, position embedding of the patch tokens only (DeiT III)
    pytest.param("deit3_small_patch16_224", dict(depth=2),
                 vit(224, 16, 384, 2, "heads 6  head_dim 64  mlp_ratio 4  layer_scale 1e-6", pos="pos patches"),
                 id="deit3_small_patch16_224-d2"),
    # no class token, no qkv bias, layer scale, another resolution
    pytest.param("vit_medium_patch16_gap_256", dict(depth=2),
                 vit(256, 16, 512, 2, "heads 8  head_dim 64  mlp_ratio 4  qkv_bias false  layer_scale 1e-6",
                     head="pool avg"),
                 id="vit_medium_patch16_gap_256-d2"),
    # another patch size and resolution
    pytest.param("vit_tiny_patch16_384", dict(depth=2),
                 vit(384, 16, 192, 2, "heads 3  head_dim 64  mlp_ratio 4"), id="vit_tiny_patch16_384-d2"),
    pytest.param("vit_base_patch32_224", dict(depth=2),
                 vit(224, 32, 768, 2, "heads 12  head_dim 64  mlp_ratio 4"), id="vit_base_patch32_224-d2"),
    # Swin without qkv bias; S3-T as released (per-stage windows 7, 7, 14, 7)
    pytest.param("swin_tiny_patch4_window7_224", dict(depths=(2, 2, 2, 2), qkv_bias=False),
                 reference("swin-tiny.space").replace("depth 6", "depth 2").replace("qkv_bias true", "qkv_bias false"),
                 id="swin_tiny-d2-no-qkv-bias"),
    pytest.param("swin_s3_tiny_224", {}, reference("reference/s3-t.space"), id="swin_s3_tiny_224",
                 marks=pytest.mark.slow),
    # full-size models
    pytest.param("vit_base_patch16_gap_224", {},
                 vit(224, 16, 768, 12, "heads 16  head_dim 48  mlp_ratio 4", head="pool avg"),
                 id="vit_base_patch16_gap_224", marks=pytest.mark.slow),
    pytest.param("deit3_small_patch16_224", {},
                 vit(224, 16, 384, 12, "heads 6  head_dim 64  mlp_ratio 4  layer_scale 1e-6", pos="pos patches"),
                 id="deit3_small_patch16_224", marks=pytest.mark.slow),
    pytest.param("swin_s3_small_224", {}, reference("reference/s3-s.space"), id="swin_s3_small_224",
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize("timm_name, kwargs, source", TIMM_MODELS)
def test_timm_model_is_reproduced_by_its_space(timm_name, kwargs, source):
    torch.manual_seed(0)
    space = sl.loads(source)
    arch = space.max_arch()
    model = timm.create_model(timm_name, pretrained=False, **kwargs).eval()
    with torch.no_grad():  # move every tensor off its symmetric init so a mis-mapped one shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    net = build_supernet(space).eval()
    load_timm_weights(net, model)
    assert numel(net) == numel(model)
    resolution = space.resolve(arch).resolution
    x = torch.randn(2, 3, resolution, resolution)
    with torch.no_grad():
        want = model(x)
        got = net(x, arch)
        got_sub = net.extract(arch)(x)
    assert want.abs().max() > 0.1  # logits large enough for the comparison to mean something
    assert (got - want).abs().max().item() <= 1e-4
    assert (got_sub - want).abs().max().item() <= 1e-4
    cost = sl.cost(space, arch)
    assert cost.params == numel(model)
    assert cost.flops == fvcore_flops(model, x[:1])


@pytest.mark.parametrize("timm_name, kwargs, missing", [
    ("deit_tiny_distilled_patch16_224", dict(depth=1), "distillation token"),
    ("vit_wee_patch16_reg1_gap_256", dict(depth=1), "register token"),
    ("vit_base_patch16_clip_224", dict(depth=1), "norm before the blocks"),
])
def test_inexpressible_timm_model_is_refused_naming_the_feature(timm_name, kwargs, missing):
    model = timm.create_model(timm_name, pretrained=False, **kwargs)
    dim = model.embed_dim
    space = sl.loads(vit(model.patch_embed.img_size[0], model.patch_embed.patch_size[0], dim, 1,
                         f"heads {model.blocks[0].attn.num_heads}  mlp_ratio 4"))
    with pytest.raises(CompileError, match=missing):
        load_timm_weights(build_supernet(space), model)
