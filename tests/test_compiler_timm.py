"""The supernets of the fixed reference spaces are timm's models: after ``load_timm_weights`` the
logits agree and the parameter counts are identical.  timm models are built with
``pretrained=False``; every parameter is then perturbed so that biases, norms and tables are not
at their (symmetric) initial values and a mis-mapped tensor cannot go unnoticed."""
from __future__ import annotations

import os

import pytest
import timm
import torch

import spacelang as sl
from spacelang.compiler import build_supernet, load_timm_weights
from spacelang.errors import CompileError

SPACES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "spaces")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("space_name, timm_name", [
    ("deit-tiny", "deit_tiny_patch16_224"),
    ("deit-small", "deit_small_patch16_224"),
    ("swin-tiny", "swin_tiny_patch4_window7_224"),
])
def test_timm_equivalence(space_name, timm_name):
    torch.manual_seed(0)
    space = sl.load(os.path.join(SPACES, f"{space_name}.space"))
    net = build_supernet(space).eval()
    model = timm.create_model(timm_name, pretrained=False).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    load_timm_weights(net, model)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in model.parameters())
    arch = space.max_arch()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        want = model(x)
        got = net(x, arch)
        got_sub = net.extract(arch)(x)
    assert want.abs().max() > 0.1  # logits large enough for the comparison to mean something
    assert (got - want).abs().max().item() <= 1e-4
    assert (got_sub - want).abs().max().item() <= 1e-4


def test_mismatched_model_is_refused():
    space = sl.load(os.path.join(SPACES, "deit-tiny.space"))
    net = build_supernet(space)
    model = timm.create_model("deit_small_patch16_224", pretrained=False)
    with pytest.raises(CompileError, match="patch_embed.proj.weight"):
        load_timm_weights(net, model)
    with pytest.raises(CompileError, match="VisionTransformer or SwinTransformer"):
        load_timm_weights(net, torch.nn.Linear(2, 2))


@pytest.mark.parametrize("kwargs, message", [
    (dict(global_pool="avg"), "pool avg  class_token true"),        # the head's pooling
    (dict(no_embed_class=True), "pos patches"),                      # the position embedding
    (dict(init_values=1e-5), "layer_scale"),                         # layer scale in timm only
    (dict(qkv_bias=False), "qkv_bias false"),                        # a bias in the supernet only
])
def test_mismatched_feature_is_refused_naming_the_field(kwargs, message):
    """A timm ViT that differs from the space in one feature is refused with the field to write."""
    net = build_supernet(sl.load(os.path.join(SPACES, "deit-tiny.space")))
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False, depth=12, **kwargs)
    with pytest.raises(CompileError) as e:
        load_timm_weights(net, model)
    assert message in e.value.render()
