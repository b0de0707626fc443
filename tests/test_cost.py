"""The analytic cost model against the things it claims to count exactly.

- timm's reference models (``pretrained=False``): params equal ``sum(numel)`` and FLOPs equal
  fvcore's ``FlopCountAnalysis`` at batch 1, from the bundled fixed-model spaces;
- the compiler's extracted subnets, for random archs of every transformer space in spaces/ and
  of small inline spaces that exercise the rarer fields (rel_pos, windows, RSR, overlapping
  re-tokenisation);
- conv, mbconv and mbpool also against small reference modules with the structure their cost
  functions document (their compiled ops are covered by the registry tests);
- the papers' numbers that docs/counting.md quotes.

fvcore's counting (with its fused-attention handle) lives in ``fvcounting.py``, shared with the
registry tests.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

import spacelang as sl
from spacelang import kinds
from spacelang.cost import Cost, breakdown, cost, format_breakdown, netspec_cost
from spacelang.kinds import Context

from conftest import ROOT, SPACES
from fvcounting import fvcore_flops, numel

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore.nn")
nn = torch.nn


# --------------------------------------------------------------------------- helpers
def _build_supernet():
    try:
        from spacelang.compiler import build_supernet
    except ImportError:
        try:  # until the compiler package re-exports it
            from spacelang.compiler.supernet import build_supernet
        except ImportError:
            pytest.skip("the compiler (spacelang.compiler.build_supernet) is not available")
    return build_supernet


def layer(kind: str, fields: dict, **ctx):
    """The normalised layer (the kind's typed class), defaults filled by the kind."""
    k = kinds.get(kind)
    full = {n: f.default for n, f in k.fields.items() if not f.required}
    full.update(fields)
    return k.normalize(full, Context(**ctx))


@pytest.fixture(autouse=True)
def _one_thread():
    # the CI machine has 2 cores shared with other jobs; fvcore's trace is single-threaded anyway
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- timm references
TIMM = [
    ("deit-tiny", "deit_tiny_patch16_224"),
    ("deit-small", "deit_small_patch16_224"),
    ("swin-tiny", "swin_tiny_patch4_window7_224"),
]


@pytest.mark.parametrize("space_name,timm_name", TIMM)
def test_timm_reference(space_name, timm_name):
    timm = pytest.importorskip("timm")
    space = sl.load(os.path.join(SPACES, f"{space_name}.space"))
    assert space.size() == 1
    c = cost(space, space.max_arch())
    model = timm.create_model(timm_name, pretrained=False).eval()
    x = torch.zeros(1, 3, 224, 224)
    # timm's swin does the relative-position gather, the shift's roll and the mask add itself:
    # fvcore ignores all three, and so does the cost model
    assert c.params == numel(model)
    assert c.flops == fvcore_flops(model, x)


def test_sdpa_handle_counts_what_explicit_matmuls_count():
    timm = pytest.importorskip("timm")
    from timm.layers import set_fused_attn, use_fused_attn

    before = use_fused_attn()
    set_fused_attn(False)
    try:
        explicit = timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=64).eval()
    finally:
        set_fused_attn(before)
    x = torch.zeros(1, 3, 64, 64)
    assert fvcore_flops(explicit, x, sdpa=False) == fvcore_flops(explicit, x)
    space = sl.loads(open(os.path.join(SPACES, "deit-tiny.space")).read().replace(
        "input image 224", "input image 64"), filename="deit-tiny-64.space")
    assert cost(space, space.max_arch()).flops == fvcore_flops(explicit, x, sdpa=False)


# --------------------------------------------------------------------------- compiler subnets
#: spaces at 224×224: few archs where a subnet is large (fvcore traces at a few seconds each)
SUBNET_SPACES = {
    "autoformer-tiny": 2, "autoformer-small": 1, "autoformer-base": 1, "s3": 2,
    "vit-resnas-tiny": 2, "vit-resnas-small": 1, "deit-tiny": 1, "deit-small": 1, "swin-tiny": 1,
}

_SUPERNETS: dict = {}


def _supernet(key, space):
    # one supernet per space for the whole module: building the large ones costs seconds
    if key not in _SUPERNETS:
        _SUPERNETS.clear()
        _SUPERNETS[key] = _build_supernet()(space)
    return _SUPERNETS[key]


def _check_subnets(key, space, archs):
    net = _supernet(key, space)
    for arch in archs:
        sub = net.extract(arch).eval()
        c = cost(space, arch)
        x = torch.zeros(1, *space.input_shape(arch))
        assert c.params == numel(sub), arch
        assert c.flops == fvcore_flops(sub, x, sdpa=False), arch


@pytest.mark.parametrize("name", sorted(SUBNET_SPACES))
def test_compiler_subnets(name):
    space = sl.load(os.path.join(SPACES, f"{name}.space"))
    rng = random.Random(f"cost-{name}")
    archs = [space.sample(rng) for _ in range(SUBNET_SPACES[name])]
    _check_subnets(name, space, archs)


INLINE = {
    # AutoFormer's 2-D relative position tables; 4×4 tokens with distances clipped at 2
    "relpos": """
space relpos
input image 64 channels 3
classes 10
stem patch_embed { patch 16 }
stage encoder {
  dim 32..48 step 16
  depth 1..2
  block transformer { heads 1..2  head_dim 16  mlp_ratio {2, 3}  rel_pos true  rel_dist 2 }
}
head linear { pool cls }
""",
    # elastic (shifted) windows, a window covering the map, patch merging, average pooling
    "windows": """
space windows
input image 32 channels 3
classes 10
stem patch_embed { patch 2  norm true  pos none }
stage s1 {
  dim {16, 24}
  depth 1..2
  block transformer { heads 1..2  head_dim 8  mlp_ratio {2, 4}  window {4, 8} }
}
stage s2 {
  downsample patch_merging
  dim {32, 40}
  depth 2
  block transformer { heads 2  head_dim 8  mlp_ratio 2  window {4, 16}  qkv_bias false }
}
head linear { pool avg }
""",
    # ViT-ResNAS's convolutional tokenizer and residual spatial reduction
    "resnas": """
space resnas
input image 56 channels 3
classes 10
stem conv_stem { width 8  patch 7 }
stage s1 {
  dim {16, 24}
  block transformer { heads 1..2  head_dim 8  hidden 32..48 step 16 }
  block transformer optional { heads 1  head_dim 8  hidden 32 }
}
stage s2 {
  downsample rsr
  dim {32, 40}
  block transformer { heads 2  head_dim 8  hidden 64 }
}
head linear { pool cls }
""",
    # overlapping patch embedding as stem and as a re-tokenising transition (As-ViT)
    "retoken": """
space retoken
input image 32 channels 3
classes 10
stem patch_embed { patch 4  kernel 7  norm true  pos none }
stage s1 {
  dim {16, 24}
  block transformer { heads 2  head_dim 8  mlp_ratio 2 }
}
stage s2 {
  downsample patch_embed { patch 2  kernel 3  norm true  pos none }
  dim 32
  block transformer { heads 2  head_dim 16  mlp_ratio {2, 3} }
}
head linear { pool avg  norm false }
""",
}


@pytest.mark.parametrize("name", sorted(INLINE))
def test_compiler_subnets_inline(name):
    space = sl.loads(INLINE[name], filename=f"{name}.space")
    rng = random.Random(f"cost-{name}")
    archs = [space.max_arch(), space.min_arch()] + [space.sample(rng) for _ in range(3)]
    _check_subnets(name, space, archs)


# --------------------------------------------------------------------------- kinds without an op
def _bn_act(c):
    return [nn.BatchNorm2d(c), nn.SiLU()]


class _SE(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.reduce, self.expand = nn.Conv2d(c, r, 1), nn.Conv2d(r, c, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)  # mean pooling: fvcore counts nothing
        return x * torch.sigmoid(self.expand(torch.relu(self.reduce(s))))


def _mbconv_ref(f):
    from spacelang.kinds.mbconv import se_width

    mods = []
    if f.hidden != f.in_dim:
        mods += [nn.Conv2d(f.in_dim, f.hidden, 1, bias=False), *_bn_act(f.hidden)]
    k = f.kernel
    mods += [nn.Conv2d(f.hidden, f.hidden, k, f.stride, k // 2, groups=f.hidden, bias=False),
             *_bn_act(f.hidden)]
    if f.se:
        mods.append(_SE(f.hidden, se_width(f.hidden)))
    mods += [nn.Conv2d(f.hidden, f.dim, 1, bias=False), nn.BatchNorm2d(f.dim)]
    return nn.Sequential(*mods)


class _MBPool(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(f.in_dim, f.width, 1, bias=False), *_bn_act(f.width))
        self.fc = nn.Linear(f.width, f.classes)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


CONV_CASES = [
    ("conv", dict(kernel=3, stride=2, width=16), lambda f: nn.Sequential(
        nn.Conv2d(f.in_dim, f.dim, f.kernel, f.stride, f.kernel // 2, bias=False),
        *_bn_act(f.dim))),
    ("mbconv", dict(kernel=5, expand=4, se=True, stride=2), _mbconv_ref),
    ("mbconv", dict(kernel=3, expand=1, se=False, stride=1), _mbconv_ref),
    ("mbconv", dict(kernel=3, expand=6, se=True, stride=1), _mbconv_ref),
    ("mbpool", dict(width=64), _MBPool),
]


@pytest.mark.parametrize("kind,fields,ref", CONV_CASES, ids=[f"{k}-{i}" for i, (k, *_) in enumerate(CONV_CASES)])
def test_conv_kinds_against_documented_structure(kind, fields, ref):
    f = layer(kind, fields, in_dim=16, dim=24, in_size=14, classes=10)
    model = ref(f).eval()
    x = torch.zeros(1, f.in_dim, f.in_size, f.in_size)
    params, flops = kinds.get(kind).cost(f)
    assert params == numel(model)
    assert flops == fvcore_flops(model, x)


# --------------------------------------------------------------------------- the model itself
def test_cost_arithmetic():
    a, b = Cost(1, 10), Cost(2, 20)
    assert a + b == Cost(3, 30)
    assert sum([a, b]) == Cost(3, 30)
    with pytest.raises(TypeError):
        a + 1


def test_every_kind_has_a_cost():
    assert all(k.cost is not None for k in kinds.KINDS.values())


def test_breakdown_sums_to_total_and_names_layers():
    space = sl.load(os.path.join(SPACES, "vit-resnas-tiny.space"))
    arch = space.sample(random.Random(0))
    net = space.resolve(arch)
    rows = breakdown(net)
    assert sum(Cost(r.params, r.flops) for r in rows) == netspec_cost(net)
    assert rows[0].path == "stem" and rows[-1].path == "head"
    assert "s2.downsample" in [r.path for r in rows]
    assert {r.path for r in rows if r.kind == "transformer"} == {
        f"{st.name}.{b.index}" for st in net.stages for b in st.blocks}
    assert format_breakdown(rows).splitlines()[-1].split()[1:] == [f"{netspec_cost(net).params:,}",
                                                                   f"{netspec_cost(net).flops:,}"]


def test_macs_convention_drops_only_the_norms():
    space = sl.load(os.path.join(SPACES, "deit-tiny.space"))
    arch = space.max_arch()
    full, macs = cost(space, arch), cost(space, arch, convention="macs")
    assert full.params == macs.params
    # 12 blocks × 2 LayerNorms + the final one, 197 tokens × 192 channels × 5
    assert full.flops - macs.flops == 25 * 197 * 192 * 5
    with pytest.raises(ValueError, match="convention"):
        cost(space, arch, convention="gmacs")


def test_cost_model_imports_no_torch():
    code = "import sys, spacelang.cost, spacelang.kinds; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# --------------------------------------------------------------------------- the papers' numbers
def _autoformer_t():
    # AutoFormer's released subnet experiments/subnet/AutoFormer-T.yaml: embed 192, depth 13
    return sl.load(os.path.join(ROOT, "examples", "autoformer-t-subnet.space"))


def test_documented_paper_numbers():
    t = _autoformer_t()
    assert cost(t, t.max_arch()) == Cost(5_768_104, 1_288_342_592)  # paper: 5.7M, 1.3G
    r = sl.load(os.path.join(SPACES, "vit-resnas-tiny.space"))
    arch = {"s1.dim": 176, "s2.dim": 352, "s3.dim": 704}
    table6 = {"s1": [(3, 704), (3, 576), (3, 640), (4, 576), (4, 704)],
              "s2": [(10, 1408), (8, 1408), (8, 1280), (8, 1408), (10, 1280), (10, 1024)],
              "s3": [(10, 2560), (10, 1792), (10, 2816), (8, 2816), (8, 2560)]}
    for st, blocks in table6.items():
        for i, (h, hidden) in enumerate(blocks):
            arch[f"{st}.{i}.heads"], arch[f"{st}.{i}.hidden"] = h, hidden
        for i in (1, 3, 5):
            arch[f"{st}.{i}.present"] = i < len(blocks)
    # paper: 41M params, 1.8G MACs; vit-search's MAC estimator (one class token) gives exactly this
    assert cost(r, arch, convention="macs") == Cost(40_793_552, 1_782_630_272)
