"""channels_last for conv-heavy networks: chosen automatically, the same function, trains under
every rule (rules that assign gradients of their own, e.g. NASViT's projection, included)."""
from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

import spacelang as sl  # noqa: E402
from spacelang.compiler import build_supernet  # noqa: E402
from spacelang.compiler.rules import rule_names  # noqa: E402

from conftest import TINY as TOKENS  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HYBRID = """\
space hybrid
input image 16 channels 1
classes 4
stem conv { kernel 3  stride 2  width {4, 8} }
stage s1 {
  downsample mbconv { kernel {3, 5}  expand 2  stride 2  se true  shortcut project }
  dim {8, 16}
  depth 1..2
  block nasvit_transformer { head_dim 4 }
}
head mbpool { width 16  expand 2 }
"""


def test_conv_heavy_networks_get_channels_last_and_token_networks_do_not():
    hybrid = build_supernet(sl.loads(HYBRID))
    assert hybrid.channels_last
    convs = [p for p in hybrid.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert not build_supernet(sl.loads(TOKENS)).channels_last
    assert not build_supernet(sl.loads(HYBRID), channels_last=False).channels_last


def test_channels_last_computes_the_same_function_and_gradients():
    space = sl.loads(HYBRID)
    torch.manual_seed(0)
    plain = build_supernet(space, channels_last=False)
    fast = build_supernet(space, channels_last=False)
    fast.load_state_dict(plain.state_dict())
    fast.use_channels_last()
    rng = random.Random(0)
    x = torch.randn(4, 1, 16, 16)
    for arch in [space.max_arch(), space.min_arch()] + [space.sample(rng) for _ in range(3)]:
        for net in (plain, fast):
            net.zero_grad(set_to_none=True)
            net(x, arch).square().sum().backward()
        assert torch.allclose(plain(x, arch), fast(x, arch), atol=1e-5)
        for (name, a), b in zip(plain.named_parameters(), fast.parameters()):
            assert (a.grad is None) == (b.grad is None), name
            if a.grad is not None:
                assert torch.allclose(a.grad, b.grad, atol=1e-5, rtol=1e-4), name
    # the extracted subnet is an ordinary contiguous module with the same outputs
    sub = fast.extract(space.max_arch())
    assert torch.allclose(sub(x), plain(x, space.max_arch()), atol=1e-5)


# multiarch masks token networks only: it refuses conv kinds (tests/test_multiarch.py)
@pytest.mark.parametrize("rule", [r for r in rule_names() if r != "multiarch"])
def test_every_rule_trains_a_channels_last_network(rule, tmp_path):
    from spacelang.compiler import train as training
    from spacelang.compiler.data import load_data

    space = sl.loads(HYBRID)
    cfg = training.TrainConfig.for_data("synthetic", epochs=1, batch_size=16, warmup_epochs=0, rule=rule,
                                        sandwich_k=1)
    data = load_data("synthetic", space.input_shape(space.max_arch()), space.classes)
    training.train(space, cfg, str(tmp_path / "run"), progress=False, data=data, log=lambda _: None)
    assert (tmp_path / "run" / "checkpoint").is_dir()
