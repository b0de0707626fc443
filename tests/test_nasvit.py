"""NASViT (spaces/nasvit.space): the paper's numbers, the compiled hybrid network, its pieces.

- cost: the min/max archs against the authors' code under ``macs`` (their own counter's
  convention), the authors'-code variant exactly, Table 13's A1–A4;
- the compiled supernet: extraction equality in eval mode after BatchNorm recalibration and
  cost = Σnumel = fvcore, for the min arch and a random arch at the smallest resolution (every
  resolution in the slow test);
- switchable scaling layers (one set per stage width and depth; extraction keeps the arch's),
  elastic kernels as views, resolution as a dimension.
"""
from __future__ import annotations

import json
import os
import random

import pytest

import spacelang as sl

from conftest import SPACES
from fvcounting import fvcore_flops, numel

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore.nn")
from spacelang.compiler import build_supernet  # noqa: E402
from spacelang.compiler.evaluate import recalibrate_bn  # noqa: E402
from spacelang.compiler.ops.conv import ElasticKernelConv2d  # noqa: E402
from spacelang.compiler.ops.nasvit_transformer import NASViTTransformerOp  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PAPER = os.path.join(SPACES, "nasvit.space")
CODE = os.path.join(SPACES, "nasvit", "authors-code.space")
RESOLUTIONS = (192, 224, 256, 288)

#: the authors' code (facebookresearch/NASViT), macs: smallest, largest (T5 depth 9), largest at
#: Table 1's depth (T5 depth 8)
CODE_MIN, CODE_MAX, CODE_MAX_TABLE1 = 189_789_040, 1_881_708_502, 1_855_197_526


@pytest.fixture(scope="module")
def space():
    return sl.load(PAPER)


@pytest.fixture(scope="module")
def code_space():
    return sl.load(CODE)


def _table13(name: str) -> dict:
    with open(os.path.join(SPACES, "nasvit", f"{name}.json")) as fh:
        return json.load(fh)


def _in_code_space(arch: dict) -> dict:
    """An arch of nasvit.space as an arch of authors-code.space (MLP ratio 1, no windows, kernel 3)."""
    return {k: v for k, v in arch.items() if k != "mb3_kernel" and not k.endswith((".e", ".w"))}


def _macs(space, arch) -> int:
    return sl.cost(space, arch, convention="macs").flops


# --------------------------------------------------------------------------- the paper's numbers
def test_authors_code_variant_reproduces_their_numbers(code_space):
    assert _macs(code_space, code_space.min_arch()) == CODE_MIN
    assert _macs(code_space, code_space.max_arch()) == CODE_MAX
    table1 = dict(code_space.max_arch(), **{"t5.depth": 7})
    assert _macs(code_space, code_space.validate(table1)) == CODE_MAX_TABLE1


def test_min_and_max_within_one_percent_of_the_authors_code(space):
    lo, hi = _macs(space, space.min_arch()), _macs(space, space.max_arch())
    assert abs(lo / CODE_MIN - 1) < 0.01, lo
    assert abs(hi / CODE_MAX_TABLE1 - 1) < 0.01, hi


@pytest.mark.parametrize("name, paper_space, authors_code", [
    ("A1", 214_733_732, 212_532_116), ("A2", 380_374_064, 376_291_856),
    ("A3", 612_773_888, 605_731_328), ("A4", 792_325_102, 783_059_350)])
def test_table13_archs(space, code_space, name, paper_space, authors_code):
    arch = space.validate(_table13(name))
    assert _macs(space, arch) == paper_space
    assert _macs(code_space, code_space.validate(_in_code_space(arch))) == authors_code


# --------------------------------------------------------------------------- the compiled network
def _check_arch(net, space, arch, batches) -> None:
    recalibrate_bn(net, arch, batches)
    net.eval()
    x = torch.randn(2, *net.input_shape(arch))
    with torch.no_grad():
        y = net(x, arch)
        sub = net.extract(arch).eval()
        diff = (y - sub(x)).abs().max().item()
    assert y.shape == (2, 1000)
    assert diff <= 1e-5, diff
    c = sl.cost(space, arch)
    assert c.params == numel(sub)
    assert c.flops == fvcore_flops(sub, torch.zeros(1, *space.input_shape(arch)), sdpa=False)


def _batches(n: int = 2, res: int = 288):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 3, res, res, generator=g), torch.zeros(4, dtype=torch.long)) for _ in range(n)]


def _randomise_scales(net) -> None:
    """Scaling sets drawn apart from each other (at init they are all 1e-4)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, NASViTTransformerOp) and m.scales is not None:
                m.scales.uniform_(0.5, 1.5)


@pytest.fixture(scope="module")
def supernet(space):
    torch.manual_seed(0)
    net = build_supernet(space)
    _randomise_scales(net)
    return net


def test_min_arch_extracts_exactly(space, supernet):
    _check_arch(supernet, space, space.min_arch(), _batches())


def test_random_arch_at_smallest_resolution_extracts_exactly(space, supernet):
    arch = space.sample(random.Random(3))
    arch = space.validate({**arch, "input.resolution": 192})
    _check_arch(supernet, space, arch, _batches())


@pytest.mark.slow
@pytest.mark.parametrize("res", RESOLUTIONS)
def test_random_archs_at_every_resolution(space, supernet, res):
    rng = random.Random(res)
    for _ in range(2):
        arch = space.validate({**space.sample(rng), "input.resolution": res})
        _check_arch(supernet, space, arch, _batches())


@pytest.mark.slow
def test_authors_code_variant_compiles(code_space):
    torch.manual_seed(0)
    net = build_supernet(code_space)
    _randomise_scales(net)
    _check_arch(net, code_space, code_space.min_arch(), _batches())


# --------------------------------------------------------------------------- the pieces
TINY = """\
space tiny
input image {16, 32} channels 3
classes 4
stem conv { kernel 3  stride 2  width 8 }
stage s1 {
  downsample mbconv { kernel 3  expand 2  stride 2  shortcut project }
  dim {8, 16}
  depth 1..3
  block nasvit_transformer { head_dim 4 }
}
head mbpool { width 16  expand 2 }
"""


def test_switchable_scaling_sets_per_width_and_depth():
    space = sl.loads(TINY)
    torch.manual_seed(0)
    net = build_supernet(space).eval()
    first = net.stages[0].blocks[0]
    assert sorted(first.sets) == [(w, d) for w in (8, 16) for d in (1, 2, 3)]
    assert sorted(net.stages[0].blocks[2].sets) == [(8, 3), (16, 3)]  # slot 2 runs only at depth 3
    assert first.scales.shape == (6, 2, 16)
    assert torch.all(first.scales == 1e-4)  # CaiT's initial value
    _randomise_scales(net)
    arch = {"input.resolution": 32, "s1.dim": 16, "s1.depth": 2}
    block = net.extract(arch).stages[0][1]
    expected = first.scales[first.sets[(16, 2)]]
    assert torch.equal(block.scale_attn, expected[0]) and torch.equal(block.scale_mlp, expected[1])
    # another depth runs the first layer with another set: its output changes
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        a = net.extract(arch).stages[0][:2](net.stem(x, net.resolve(arch).stem))
        b = net.extract({**arch, "s1.depth": 3}).stages[0][:2](net.stem(x, net.resolve(arch).stem))
    assert not torch.allclose(a, b)


def test_scaling_sets_get_gradients_only_for_the_arch():
    space = sl.loads(TINY)
    net = build_supernet(space)
    arch = {"input.resolution": 16, "s1.dim": 8, "s1.depth": 1}
    net(torch.randn(2, 3, 16, 16), arch).sum().backward()
    first = net.stages[0].blocks[0]
    grad = first.scales.grad
    used = first.sets[(8, 1)]
    assert grad[used, :, :8].abs().sum() > 0
    assert grad[used, :, 8:].abs().sum() == 0
    assert all(grad[i].abs().sum() == 0 for i in range(len(first.sets)) if i != used)


def test_elastic_kernel_is_a_centred_view():
    conv = ElasticKernelConv2d(8, 8, 5, depthwise=True)
    w = conv._weight(8, 6, 3)
    assert w.untyped_storage().data_ptr() == conv.weight.untyped_storage().data_ptr()
    assert torch.equal(w, conv.weight[:6, :, 1:4, 1:4])


@pytest.mark.parametrize("res", (16, 32))
def test_resolution_is_a_dimension(res):
    space = sl.loads(TINY)
    net = build_supernet(space).eval()
    arch = {"input.resolution": res, "s1.dim": 16, "s1.depth": 3}
    assert net.input_shape(arch) == (3, res, res)
    x = torch.randn(1, 3, res, res)
    with torch.no_grad():
        assert torch.allclose(net(x, arch), net.extract(arch)(x), atol=1e-6)
    side = res // 4  # the attention's map side: Shaw's tables are read at the centre
    assert net.extract(arch).stages[0][1].rpe_v.shape == (2 * side - 1, 4)
    with pytest.raises(ValueError, match="expected input"):
        net(torch.randn(1, 3, 48 - res, 48 - res), arch)


def test_nasvit_transformer_refuses_a_class_token():
    bad = TINY.replace("head mbpool { width 16  expand 2 }", "head linear { pool cls }")
    with pytest.raises(sl.SpaceError, match="class token"):
        sl.loads(bad)


def test_training_validates_each_arch_after_recalibrating_batchnorm(tmp_path, monkeypatch):
    from spacelang.compiler import train as training
    from spacelang.compiler.data import load_data

    space = sl.loads(TINY.replace("channels 3", "channels 1"))
    seen = []
    real = training.evaluate

    def spy(net, archs, loader, **kw):
        seen.append(kw.get("bn_batches"))
        return real(net, archs, loader, **kw)

    monkeypatch.setattr(training, "evaluate", spy)
    cfg = training.TrainConfig.for_data("synthetic", epochs=1, batch_size=16, warmup_epochs=0)
    data = load_data("synthetic", space.input_shape(space.max_arch()), space.classes)
    training.train(space, cfg, str(tmp_path / "run"), progress=False, data=data, log=lambda _: None)
    assert seen and all(b for b in seen)


@pytest.mark.parametrize("fields", ["head_dim 4", "head_dim 4  rpe bias  windows 2"])
def test_inference_mode_then_training_step(fields):
    """Cached offset tables first built under inference mode still serve a training step."""
    from spacelang.compiler.ops import nasvit_transformer
    nasvit_transformer.offsets.cache_clear()
    space = sl.loads(TINY.replace("{ head_dim 4 }", "{ %s }" % fields).replace("{16, 32}", "32"))
    net = build_supernet(space)
    arch = space.max_arch()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        net.eval()(x, arch)
    net.train()(x, arch).sum().backward()
    assert net.stages[0].blocks[0].q.weight.grad is not None
