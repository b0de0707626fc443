"""Extracted subnets compute what the supernet computes, for the library's spaces and for small
inline spaces that exercise the rarer fields (AutoFormer relative positions, windows smaller than
the supernet's table, shifted windows, elastic resolution, optional blocks, RSR)."""
from __future__ import annotations

import os
import random

import pytest
import torch
import torch.nn as nn

import spacelang as sl
from spacelang.compiler import build_supernet
from spacelang.compiler.ops import elastic

SPACES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "spaces")

REL_POS = """
space tiny_rel
input image {32, 48} channels 3
classes 10
stem patch_embed { patch 8 }
stage encoder {
  dim 16..32 step 8
  depth 2..3
  block transformer { heads 1..2  head_dim 8  mlp_ratio {2, 4}  rel_pos true  rel_dist 2 }
}
head linear { pool cls }
"""

WINDOWS = """
space tiny_win
input image 32 channels 3
classes 10
stem patch_embed { patch 4  norm true  pos none }
stage s1 {
  dim {8, 16}
  depth 2
  block transformer { heads 1..2  head_dim 8  mlp_ratio {2, 4}  window {2, 4} }
}
stage s2 {
  downsample patch_merging
  dim {16, 24}
  depth 1..2
  block transformer { heads 1..3  head_dim 8  mlp_ratio 4  window {2, 4} }
}
head linear { pool avg }
"""

RESNAS = """
space tiny_resnas
input image 56 channels 3
classes 10
stem conv_stem { width {4, 8}  patch 7 }
stage s1 {
  dim {16, 24}
  repeat 2 {
    block transformer          { heads 1..2  head_dim 8  hidden 16..32 step 16 }
    block transformer optional { heads 1..2  head_dim 8  hidden 16..32 step 16 }
  }
}
stage s2 {
  downsample rsr
  dim {24, 32}
  block transformer optional { heads 2..3  head_dim 8  hidden 32 }
}
head linear { pool cls }
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _archs(space, n_random=2, seed=0):
    """Max, min and random archs, each once (a fixed space has a single arch)."""
    rng = random.Random(seed)
    archs = [("max", space.max_arch()), ("min", space.min_arch())] + \
        [(f"random{i}", space.sample(rng)) for i in range(n_random)]
    seen, out = set(), []
    for label, arch in archs:
        key = space.canonical_json(arch)
        if key not in seen:
            seen.add(key)
            out.append((label, arch))
    return out


def _check(space, batch=1, n_random=2, seed=0):
    torch.manual_seed(seed)
    net = build_supernet(space).eval()
    for label, arch in _archs(space, n_random, seed):
        x = torch.randn(batch, *net.input_shape(arch))
        with torch.no_grad():
            y = net(x, arch)
            sub = net.extract(arch)
            y_sub = sub(x)
        assert y.shape == (batch, space.supernet_spec().classes)
        diff = (y - y_sub).abs().max().item()
        assert diff <= 1e-5, f"{label}: extracted subnet differs by {diff}"
        # standalone: ordinary layers only, nothing elastic, no weight shared with the supernet
        assert not any(isinstance(m, (elastic.ElasticLinear, elastic.ElasticLayerNorm, elastic.ElasticConv2d,
                                      elastic.ElasticBatchNorm2d)) for m in sub.modules())
        supernet_ptrs = {p.untyped_storage().data_ptr() for p in net.parameters()}
        assert not any(p.untyped_storage().data_ptr() in supernet_ptrs for p in sub.parameters())


@pytest.mark.parametrize("name", ["autoformer-tiny", "deit-tiny", "swin-tiny", "s3", "vit-resnas-tiny"])
def test_library_spaces(name):
    _check(sl.load(os.path.join(SPACES, f"{name}.space")))


@pytest.mark.parametrize("text", [REL_POS, WINDOWS, RESNAS], ids=["rel_pos", "windows", "resnas"])
def test_inline_spaces(text):
    _check(sl.loads(text), batch=2, n_random=6)


def test_extracted_layers_are_standard():
    space = sl.loads(WINDOWS)
    net = build_supernet(space)
    sub = net.extract(space.max_arch())
    kinds = {type(m) for m in sub.modules()}
    assert nn.Linear in kinds and nn.LayerNorm in kinds and nn.Conv2d in kinds
    # Swin's relative position bias table of the extracted block is sized for its own window
    arch = dict(space.max_arch())
    arch["s1.0.window"] = 2
    sub = net.extract(arch)
    assert sub.stages[0][0].attn.relative_position_bias_table.shape == ((2 * 2 - 1) ** 2, 2)


def test_train_mode_matches_without_drop_path():
    """In training mode (BatchNorm batch statistics) the two still agree, and backward runs."""
    space = sl.loads(RESNAS)
    net = build_supernet(space).train()
    arch = space.sample(random.Random(3))
    x = torch.randn(2, 3, 56, 56)
    sub = net.extract(arch).train()
    y, y_sub = net(x, arch), sub(x)
    assert (y - y_sub).abs().max().item() <= 1e-5
    y.sum().backward()
    assert net.stem.conv1.weight.grad is not None


def test_drop_path_rates_increase_linearly():
    space = sl.load(os.path.join(SPACES, "deit-tiny.space"))
    net = build_supernet(space, drop_path=0.1)
    rates = [blk.drop_path.drop_prob if hasattr(blk.drop_path, "drop_prob") else 0.0
             for stage in net.stages for blk in stage.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1)
    assert all(b > a for a, b in zip(rates, rates[1:]))
