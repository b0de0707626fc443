"""The fused attention (``scaled_dot_product_attention``) computes what the explicit matmul path
computes — outputs within 1e-5 and gradients within 1e-5 of their largest entry, in float32 — for global attention, Swin's windows
with the relative-position bias and the shift mask, As-ViT's splits, and the shipped transformer
spaces' max/min archs, in the supernet and in the extracted subnet.  AutoFormer's ``rel_pos``
stays on the explicit path (its value term needs the attention probabilities)."""
from __future__ import annotations

import os

import pytest
import torch

import spacelang as sl
from spacelang.compiler import build_supernet
from spacelang.compiler.ops import functional as Fn

SPACES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "spaces")
TOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHIFTED = """
space tiny_shift
input image 32 channels 3
classes 10
stem patch_embed { patch 4  norm true  pos none }
stage s1 {
  dim {8, 16}
  depth 2
  block transformer { heads 1..2  head_dim 8  mlp_ratio {2, 4}  window {2, 4} }
}
head linear { pool avg }
"""

SPLITS = """
space tiny_splits
input image 32 channels 3
classes 10
stem patch_embed { patch 4 }
stage s1 {
  dim {16, 24}
  depth 2
  block transformer { heads 1..2  head_dim 8  mlp_ratio 2  splits {1, 2, 4} }
}
head linear { pool avg }
"""

REL_POS = """
space tiny_rel
input image 32 channels 3
classes 10
stem patch_embed { patch 8 }
stage encoder {
  dim 16..32 step 8
  depth 2
  block transformer { heads 1..2  head_dim 8  mlp_ratio 2  rel_pos true  rel_dist 2 }
}
head linear { pool cls }
"""


def _both(fn, *leaves):
    leaves = list(leaves)
    """``fn()`` and the gradients of its output's weighted sum w.r.t. ``leaves``, fused then explicit."""
    runs = []
    for explicit in (False, True):
        for t in leaves:
            t.grad = None
        with Fn.explicit_attention(explicit):
            y = fn()
        w = torch.linspace(-1, 1, y.numel()).view_as(y)
        (y * w).sum().backward()
        runs.append((y.detach(), [None if t.grad is None else t.grad.clone() for t in leaves]))
    return runs


def _close(runs):
    (y1, g1), (y2, g2) = runs
    assert (y1 - y2).abs().max().item() <= TOL
    for a, b in zip(g1, g2):
        assert (a is None) == (b is None)  # a weight the arch does not reach has no gradient on either path
        if a is not None:  # gradients grow with depth: relative to the tensor's largest entry
            assert (a - b).abs().max().item() <= TOL * max(1.0, b.abs().max().item())
    return y1


def test_default_is_fused_and_switch_restores():
    assert not Fn.attention_is_explicit()
    with Fn.explicit_attention():
        assert Fn.attention_is_explicit()
        with Fn.explicit_attention(False):
            assert not Fn.attention_is_explicit()
        assert Fn.attention_is_explicit()
    assert not Fn.attention_is_explicit()


def test_fused_path_calls_sdpa(monkeypatch):
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(Fn.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    q = torch.randn(2, 2, 5, 4)
    Fn.attend(q, q, q, 0.5)
    with Fn.explicit_attention():
        Fn.attend(q, q, q, 0.5)
    assert len(calls) == 1


@pytest.mark.parametrize("case", ["global", "bias", "mask", "bias+mask"])
def test_attend_fused_equals_explicit(case):
    torch.manual_seed(0)
    nw, b, h, n, d = 4, 2, 3, 16, 8
    q, k, v = (torch.randn(b * nw, h, n, d, requires_grad=True) for _ in range(3))
    table = torch.randn(49, h, requires_grad=True)
    mask = Fn.shift_mask(8, 4, 2, torch.device("cpu"), torch.float32) if "mask" in case else None

    def run():
        bias = Fn.window_bias(table, h, 4, 4) if "bias" in case else None
        return Fn.attend(q, k, v, d ** -0.5, bias, mask)

    leaves = [q, k, v] + ([table] if "bias" in case else [])
    _close(_both(run, *leaves))


def _net_check(space, archs, batch=2, sub_grads=True):
    torch.manual_seed(0)
    net = build_supernet(space).eval()
    for arch in archs:
        x = torch.randn(batch, *net.input_shape(arch))
        y = _close(_both(lambda: net(x, arch), *net.parameters()))
        sub = net.extract(arch).eval()
        if sub_grads:
            y_sub = _close(_both(lambda: sub(x), *sub.parameters()))
        else:  # the subnet runs the same functional code; outputs suffice for the big spaces
            with torch.no_grad():
                y_sub = sub(x)
                with Fn.explicit_attention():
                    assert (sub(x) - y_sub).abs().max().item() <= TOL
        assert (y_sub - y).abs().max().item() <= TOL  # fused subnet == fused supernet


@pytest.mark.parametrize("text", [SHIFTED, SPLITS, REL_POS], ids=["windows+shift", "splits", "rel_pos"])
def test_inline_spaces_fused_equals_explicit(text):
    space = sl.loads(text)
    _net_check(space, [space.max_arch(), space.min_arch()])


@pytest.mark.parametrize("name", ["autoformer-tiny", "deit-tiny", "swin-tiny", "reference/asvit-s",
                                  pytest.param("s3", marks=pytest.mark.slow),
                                  pytest.param("vit-resnas-tiny", marks=pytest.mark.slow)])
def test_shipped_spaces_fused_equals_explicit(name):
    """Max and min arch of each shipped transformer space at its own resolution (224), batch 1:
    supernet outputs and gradients, subnet outputs."""
    space = sl.load(os.path.join(SPACES, f"{name}.space"))
    archs = [space.max_arch()]
    if space.canonical_json(space.min_arch()) != space.canonical_json(space.max_arch()):
        archs.append(space.min_arch())
    _net_check(space, archs, batch=1, sub_grads=False)


def test_windows_fused_under_bf16_autocast():
    """Under CPU bf16 autocast the fp32 bias table and mask still enter the fused kernel, and the
    bias table gets its gradient; the result stays within bf16 rounding of the explicit path."""
    space = sl.loads(SHIFTED)
    torch.manual_seed(0)
    net = build_supernet(space)
    arch = space.max_arch()
    x = torch.randn(2, *net.input_shape(arch))
    outs = []
    for explicit in (False, True):
        with Fn.explicit_attention(explicit), torch.autocast("cpu", dtype=torch.bfloat16):
            outs.append(net(x, arch).float())
    outs[0].sum().backward()
    tables = [m.relative_position_bias_table for m in net.modules() if hasattr(m, "relative_position_bias_table")]
    assert tables and all(t.grad is not None and t.grad.abs().sum() > 0 for t in tables)
    assert (outs[0] - outs[1]).abs().max().item() <= 0.05 * max(1.0, outs[1].abs().max().item())
