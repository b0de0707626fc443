"""As-ViT attention splits: equal to attention run window by window (naive reference)."""
import pytest

torch = pytest.importorskip("torch")

from spacelang.compiler.ops import functional as Fn  # noqa: E402
from spacelang.compiler.ops.split_attention import split_attention, split_window  # noqa: E402
from spacelang.errors import CompileError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _attention(dim: int, heads: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(3 * dim, dim, generator=g) / dim ** 0.5
    proj = torch.randn(dim, dim, generator=g) / dim ** 0.5

    def attend(x):
        q, k, v = Fn.split_qkv(x @ qkv.T, heads, dim // heads)
        return Fn.attend(q, k, v, (dim // heads) ** -0.5) @ proj.T
    return attend


def _naive(x, size, splits, attend):
    """Gather each window's tokens by index, attend, scatter back."""
    b, _, c = x.shape
    side = size // splits
    out = torch.empty_like(x)
    for wy in range(splits):
        for wx in range(splits):
            idx = torch.tensor([(wy * side + r) * size + wx * side + col for r in range(side) for col in range(side)])
            out[:, idx] = attend(x[:, idx])
    return out


@pytest.mark.parametrize("size,splits", [(8, 2), (8, 4), (12, 3), (6, 1), (4, 4)])
def test_split_attention_equals_per_window_reference(size, splits):
    attend = _attention(16, 2)
    x = torch.randn(2, size * size, 16, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(split_attention(x, size, splits, attend), _naive(x, size, splits, attend))


def test_windows_do_not_see_each_other():
    attend = _attention(8, 2)
    x = torch.randn(1, 64, 8)
    y = x.clone()
    y[0, 0] += 5.0  # token (0, 0): window (0, 0) of a 2×2 split of the 8×8 map
    a, b = split_attention(x, 8, 2, attend), split_attention(y, 8, 2, attend)
    changed = (a - b).abs().sum(-1)[0].view(8, 8) > 0
    assert changed[:4, :4].all() and not changed[4:, :].any() and not changed[:, 4:].any()


def test_splits_one_is_global_attention():
    attend = _attention(8, 2)
    x = torch.randn(2, 36, 8)
    torch.testing.assert_close(split_attention(x, 6, 1, attend), attend(x))


def test_a_map_the_splits_do_not_divide_is_refused():
    assert split_window(56, 8) == 7
    with pytest.raises(CompileError, match="do not divide the 7×7"):
        split_window(7, 2)


# --------------------------------------------------------------------------- compiled in the transformer op
SPLITS = """\
space splits
input image 32 channels 3
classes 5
stem patch_embed { patch 4  kernel {4, 6}  padding (kernel - patch + 1) // 2  norm true  pos none }
stage s1 {
  dim 16
  depth 1..2
  block transformer { heads {1, 2}  qkv_dim dim  mlp_ratio 2  splits {1, 2, 4} }
}
stage s2 {
  downsample patch_embed { patch 2  kernel 3  padding 1  norm true  pos none }
  dim 32
  block transformer { heads 2  qkv_dim dim  mlp_ratio 3  splits {1, 2} }
}
head linear { pool avg }
"""


def _archs(space, n, seed=0):
    import random
    rng = random.Random(seed)
    return [{**space.sample(rng), "stem.kernel": 6} for _ in range(n)]  # the supernet's kernel (not elastic)


def test_supernet_and_extracted_subnet_compute_the_same_split_attention():
    from spacelang.compiler import build_supernet
    from spacelang.space import loads
    space = loads(SPLITS)
    torch.manual_seed(0)
    net = build_supernet(space).eval()
    x = torch.randn(2, 3, 32, 32)
    seen = set()
    for arch in _archs(space, 12):
        seen.add((arch["s1.0.splits"], arch["s2.0.splits"]))
        sub = net.extract(arch).eval()
        with torch.no_grad():
            torch.testing.assert_close(net(x, arch), sub(x), rtol=1e-5, atol=1e-6)
    assert {s for s, _ in seen} >= {2, 4}


def test_split_attention_cost_equals_fvcore_on_extracted_subnets():
    pytest.importorskip("fvcore.nn")
    from fvcounting import fvcore_flops, numel
    from spacelang.compiler import build_supernet
    from spacelang.cost import cost
    from spacelang.space import loads
    space = loads(SPLITS)
    net = build_supernet(space).eval()
    for arch in _archs(space, 4, seed=1) + [{**space.max_arch(), "stem.kernel": 6}]:
        sub = net.extract(arch).eval()
        c = cost(space, arch)
        assert c.params == numel(sub), arch
        assert c.flops == fvcore_flops(sub, torch.zeros(1, 3, 32, 32), sdpa=False), arch


def test_asvit_topology_compiles_and_its_seed_topology_costs_what_fvcore_counts():
    pytest.importorskip("fvcore.nn")
    import os
    from conftest import SPACES
    from fvcounting import fvcore_flops, numel
    from spacelang.compiler.proxies import build_network
    from spacelang.cost import cost
    from spacelang.space import load
    space = load(os.path.join(SPACES, "asvit-topology.space"))
    seed = {"stem.kernel": 8, "s2.downsample.kernel": 4, "s3.downsample.kernel": 4, "s4.downsample.kernel": 4,
            "s1.split": 2, "s2.split": 1, "s3.split": 1, "s1.ffn": 3, "s2.ffn": 2, "s3.ffn": 4, "s4.ffn": 6,
            "final_heads": 32}  # As-ViT Table 4
    sub = build_network(space, seed, 0).eval()
    c = cost(space, seed)
    assert c.params == numel(sub)
    assert c.flops == fvcore_flops(sub, torch.zeros(1, 3, 224, 224), sdpa=False)


def test_asvit_topology_supernet_runs_and_extracts_its_split_archs():
    """`spacelang compile spaces/asvit-topology.space` builds; archs with splits 2/4/8 run and extract exactly."""
    import os
    import random
    from conftest import SPACES
    from spacelang.compiler import build_supernet
    from spacelang.space import load
    space = load(os.path.join(SPACES, "asvit-topology.space"))
    torch.manual_seed(0)
    net = build_supernet(space).eval()
    x = torch.randn(1, 3, 224, 224)
    rng = random.Random(0)
    for s1 in (2, 8):
        arch = {**space.sample(rng), "s1.split": s1}  # elastic kernels included (sub-windows of the largest)
        with torch.no_grad():
            torch.testing.assert_close(net(x, arch), net.extract(arch).eval()(x), rtol=1e-4, atol=1e-5)
