"""Multi-architectural sampling (compiler/multiarch.py, compiler/ops/masked.py): one masked forward
of the union network computes, for every sub-batch, exactly what its subnet computes alone —
outputs, token logits and the gradients of the mean loss."""
import copy
import os
import random
import time

import pytest
import torch
import torch.nn.functional as F

import spacelang as sl
from spacelang.errors import CompileError

from conftest import EXAMPLES, SPACES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: ViT-ResNAS-Tiny scaled down: conv tokenizer (elastic conv width too), RSR, optional blocks,
#: class-token head with the token-labelling classifier
RESNAS = """\
space resnas_small
input image 16 channels 3
classes 5
stem conv_stem { width {4, 8}  patch 2 }
stage s1 {
  dim {8, 16}
  repeat 2 {
    block transformer          { heads 1..2  head_dim 4  hidden 8..24 step 8 }
    block transformer optional { heads 1..2  head_dim 4  hidden 8..24 step 8 }
  }
}
stage s2 {
  downsample rsr
  dim {16, 24}
  block transformer          { heads 2..4 step 2  head_dim 4  hidden 16..32 step 16 }
  block transformer optional { heads 2..4 step 2  head_dim 4  hidden 16..32 step 16 }
}
head linear { pool cls  token_label true }
"""

#: AutoFormer-T scaled down, with its relative position tables on
AUTOFORMER = """\
space autoformer_small
input image 16 channels 3
classes 5
stem patch_embed { patch 4 }
stage encoder {
  dim   8..16 step 8
  depth 2..3
  block transformer { heads 1..2  head_dim 8  mlp_ratio {2, 3}  rel_pos true  rel_dist 2 }
}
head linear { pool cls  token_label true }
"""

#: elastic head dim: heads re-laid per sample, per-sample attention scale; layer scale, fc_norm
HEAD_DIM = """\
space head_dim_small
input image 16 channels 3
classes 5
stem patch_embed { patch 4 }
stage encoder {
  dim   {8, 16}
  depth 1..2
  block transformer { heads 1..3  head_dim {2, 4}  mlp_ratio {1, 2}  rel_pos true  rel_dist 2  layer_scale 0.5 }
}
head linear { pool avg  class_token true  fc_norm true  pre_logits true }
"""

#: Swin-like: fixed (shifted) windows, elastic widths, patch merging, patch norm
SWIN = """\
space swin_small
input image 16 channels 3
classes 5
stem patch_embed { patch 2  norm true  pos none }
stage s1 {
  dim {8, 16}
  depth 1..2
  block transformer { heads 1..2  head_dim 4  mlp_ratio {2, 3}  window 4 }
}
stage s2 {
  downsample patch_merging
  dim {16, 24}
  depth 1..2
  block transformer { heads 2..3  head_dim 4  mlp_ratio {2, 3}  window 2 }
}
head linear { pool avg  token_label true }
"""

#: As-ViT-like attention splits and a patch_embed re-tokenising transition
SPLITS = """\
space splits_small
input image 16 channels 3
classes 5
stem patch_embed { patch 2 }
stage s1 {
  dim {8, 16}
  depth 1..2
  block transformer { heads 1..2  head_dim 4  mlp_ratio {1, 2}  splits 2 }
}
stage s2 {
  downsample patch_embed { patch 2 }
  dim {16, 24}
  block transformer { heads 1..2  head_dim 4  mlp_ratio {1, 2} }
}
head linear { pool avg }
"""

CASES = {
    "resnas": RESNAS,
    "autoformer": AUTOFORMER,
    "head_dim": HEAD_DIM,
    "swin": SWIN,
    "splits": SPLITS,
    "digits": os.path.join(EXAMPLES, "digits.space"),
    "digits_resnas": os.path.join(EXAMPLES, "digits-resnas.space"),
}


def load(case: str):
    text = CASES[case]
    return sl.load(text) if os.path.exists(text) else sl.loads(text)


def build(case: str, seed: int = 0):
    from spacelang.compiler import build_supernet
    torch.manual_seed(seed)
    space = load(case)
    net = build_supernet(space)
    with torch.no_grad():  # non-trivial norms and biases everywhere (masks must catch them) and
        for p in net.parameters():  # weights large enough for peaked attention (scales must matter)
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.5)
            else:
                p.mul_(10.0)
    return space, net


def draw(space, n: int, seed: int = 0) -> list[dict]:
    """The largest and the smallest arch, then random ones: every kind of difference at once."""
    rng = random.Random(seed)
    return ([space.max_arch(), space.min_arch()] + [space.sample(rng) for _ in range(n)])[:n]


def batch(net, archs, per: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c, r, _ = net.input_shape(archs[0])
    n = per * len(archs)
    x = torch.randn(n, c, r, r, generator=g)
    assign = torch.randperm(n, generator=g) % len(archs)
    y = torch.randint(0, net.space.classes, (n,), generator=g)
    return x, assign, y


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


def close(a, b) -> bool:
    """Within 1e-5 absolute, of the reference's scale when its entries exceed 1 (the weights are
    scaled up for peaked attention, so logits reach ~5 and float32 rounding grows with them)."""
    return max_diff(a, b) <= 1e-5 * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_sub_batch_computes_its_subnet(case):
    space, net = build(case)
    archs = draw(space, 4)
    x, assign, _ = batch(net, archs)
    tokens = space.head.fields.get("token_label") is not None
    with torch.no_grad():
        out = net.forward_multi(x, archs, assign, tokens=tokens)
        for g, arch in enumerate(archs):
            ref = net(x[assign == g], arch, tokens=tokens)
            if tokens:
                assert close(out[1][assign == g], ref[1])
                assert close(out[0][assign == g], ref[0])
            else:
                assert close(out[assign == g], ref)


def grads(net) -> dict:
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in net.named_parameters()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradients_are_the_weighted_sum_of_the_subnets(case):
    space, net = build(case)
    archs = draw(space, 3)
    x, assign, y = batch(net, archs, per=3)
    tokens = space.head.fields.get("token_label") is not None

    def loss_of(out, target):
        if tokens:
            logits, tok = out
            return F.cross_entropy(logits, target) + tok.square().mean()
        return F.cross_entropy(out, target)

    net.zero_grad()
    loss_of(net.forward_multi(x, archs, assign, tokens=tokens), y).backward()
    got = grads(net)
    want = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
    for g, arch in enumerate(archs):
        sel = assign == g
        net.zero_grad()
        (loss_of(net(x[sel], arch, tokens=tokens), y[sel]) * (sel.sum() / len(y))).backward()
        for n, v in grads(net).items():
            want[n] += v
    for n in want:
        scale = max(want[n].abs().max().item(), 1e-6)
        assert max_diff(got[n], want[n]) <= 1e-5 * scale + 1e-7, n


def test_one_arch_is_the_plain_forward():
    space, net = build("resnas")
    arch = space.sample(random.Random(3))
    x, _, _ = batch(net, [arch], per=4)
    with torch.no_grad():
        got = net.forward_multi(x, [arch], torch.zeros(len(x), dtype=torch.long))
        assert close(got, net(x, arch))


def test_more_archs_than_samples():
    """Archs without samples widen the union but change nothing (empty BatchNorm groups, empty rows)."""
    space, net = build("resnas")
    archs = draw(space, 5)
    x, _, _ = batch(net, archs[:1], per=3)
    assign = torch.tensor([1, 1, 3])
    with torch.no_grad():
        out = net.forward_multi(x, archs, assign)
        assert close(out[:2], net(x[:2], archs[1]))
        assert close(out[2:], net(x[2:], archs[3]))
        assert torch.isfinite(net.stem.bn1.running_mean).all() and torch.isfinite(net.stem.bn1.running_var).all()


def test_eval_mode_uses_the_running_statistics():
    space, net = build("resnas")
    net.eval()
    archs = draw(space, 3)
    x, assign, _ = batch(net, archs)
    with torch.no_grad():
        out = net.forward_multi(x, archs, assign)
        for g, arch in enumerate(archs):
            assert close(out[assign == g], net(x[assign == g], arch))


@pytest.mark.parametrize("widths", [(8, 8, 8), (4, 8, 8)])
def test_running_statistics_move_towards_the_mean_of_the_groups(widths):
    """Per channel, the step's update is the mean of the updates that the sub-batches whose stem
    width covers the channel make alone."""
    space, net = build("resnas")
    pool = draw(space, 40, seed=5)
    archs = []
    for w in widths:
        archs.append(next(a for a in pool if a["stem.width"] == w and a not in archs))
    x, assign, _ = batch(net, archs)
    alone = []
    for g, arch in enumerate(archs):
        copy_ = copy.deepcopy(net)
        with torch.no_grad():
            copy_(x[assign == g], arch)
        alone.append(copy_.stem.bn2)
    with torch.no_grad():
        net.forward_multi(x, archs, assign)
    covers = (torch.arange(8)[None, :] < torch.tensor(widths)[:, None]).float()
    for name in ("running_mean", "running_var"):
        want = (torch.stack([getattr(bn, name) for bn in alone]) * covers).sum(0) / covers.sum(0)
        assert max_diff(getattr(net.stem.bn2, name), want) <= 1e-6
    assert int(net.stem.bn2.num_batches_tracked) == 1


def test_token_logits_of_the_plain_forward_are_the_subnets():
    space, net = build("resnas")
    arch = space.sample(random.Random(1))
    x, _, _ = batch(net, [arch], per=3)
    sub = net.extract(arch)
    with torch.no_grad():
        logits, tok = net(x, arch, tokens=True)
        t = sub.stem(x)
        for stage in sub.stages:
            t = stage(t)
        assert close(tok, sub.head.token_logits(t))
        assert close(logits, sub(x))
        assert tok.shape == (3, 2 * 2, 5)  # the last stage's 2×2 patch tokens


def test_token_logits_need_the_token_label_head():
    space, net = build("digits")
    archs = draw(space, 2)
    x, assign, _ = batch(net, archs)
    with pytest.raises(CompileError, match="token-labelling"):
        net.forward_multi(x, archs, assign, tokens=True)
    with pytest.raises(CompileError, match="token-labelling"):
        net(x, archs[0], tokens=True)


def _refused(text: str, match: str):
    from spacelang.compiler.multiarch import check_multiarch
    with pytest.raises(CompileError, match=match) as e:
        check_multiarch(sl.loads(text))
    assert "\n" not in e.value.message and e.value.hint


def test_refuses_an_elastic_window():
    _refused(SWIN.replace("window 4", "window {2, 4}"), r"s1\.0\.window.*`window`")


def test_refuses_an_elastic_resolution():
    _refused(AUTOFORMER.replace("input image 16", "input image {16, 32}"), "input resolution")


def test_refuses_elastic_splits_and_patch():
    _refused(SPLITS.replace("splits 2", "splits {1, 2}"), "splits")
    _refused(AUTOFORMER.replace("patch 4", "patch {2, 4}"), "patch")


def test_refuses_nasvit_kinds():
    _refused(open(os.path.join(SPACES, "nasvit.space")).read(), r"kind '(conv|mbconv)' has no masked")


def test_accepts_the_shipped_width_spaces():
    from spacelang.compiler.multiarch import check_multiarch
    for path in ("vit-resnas-tiny.space", "vit-resnas-small.space", "autoformer-tiny.space"):
        check_multiarch(sl.load(os.path.join(SPACES, path)))


def test_rejects_a_bad_assignment():
    space, net = build("digits")
    archs = draw(space, 2)
    x, assign, _ = batch(net, archs)
    with pytest.raises(ValueError, match="assign"):
        net.forward_multi(x, archs, assign.int())
    with pytest.raises(ValueError, match="assign"):
        net.forward_multi(x, archs, assign[:-1])
    with pytest.raises(ValueError, match="outside"):
        net.forward_multi(x, archs, assign + 1)


def _masked_kinds():
    from spacelang.compiler.ops import get_op, registered
    return [k for k in registered() if getattr(get_op(k), "masked", False)]


@pytest.mark.parametrize("kind", _masked_kinds())
def test_every_masked_kind_is_exercised(kind):
    """A kind that declares a masked forward appears in a space the equivalence tests run."""
    users = [case for case in CASES if any(layer.kind == kind for layer in load(case).supernet_spec().layers)]
    assert users, f"no multiarch test space uses kind {kind!r}: add one to CASES"
    space, net = build(users[0])
    archs = draw(space, 3)
    x, assign, _ = batch(net, archs)
    with torch.no_grad():
        out = net.forward_multi(x, archs, assign)
        for g, arch in enumerate(archs):
            assert close(out[assign == g], net(x[assign == g], arch))


def test_vit_resnas_tiny_itself():
    space = sl.load(os.path.join(SPACES, "vit-resnas-tiny.space"))
    from spacelang.compiler import build_supernet
    torch.manual_seed(0)
    net = build_supernet(space)
    archs = [space.max_arch(), space.min_arch()]
    x = torch.randn(2, 3, 224, 224)
    assign = torch.tensor([1, 0])
    with torch.no_grad():
        out = net.forward_multi(x, archs, assign)
        assert close(out[1:], net(x[1:], archs[0]))
        assert close(out[:1], net(x[:1], archs[1]))


@pytest.mark.slow  # timing only (~10 s)
@pytest.mark.parametrize("case", ["digits", "digits_resnas", "resnas"])
def test_time_multiarch_step(case, capsys):
    """Printed, not asserted: one N_a = 16 multiarch step at batch 64 against the largest arch's
    step (forward + backward, alternating, the fastest of each); bench/ has the real bench."""
    space, net = build(case)
    archs = draw(space, 16, seed=2)
    x, assign, y = batch(net, archs, per=4)

    def step(fn):
        net.zero_grad()
        F.cross_entropy(fn(), y).backward()
        return fn

    def multi():
        return net.forward_multi(x, archs, assign)

    def largest():
        return net(x, space.max_arch())

    times = {multi: [], largest: []}
    for _ in range(5):
        for fn in times:
            t = time.perf_counter()
            step(fn)
            times[fn].append(time.perf_counter() - t)
    a, b = min(times[multi][1:]), min(times[largest][1:])
    with capsys.disabled():
        print(f"\n{case}: multiarch N_a=16 B=64 {a * 1e3:.1f} ms, largest arch {b * 1e3:.1f} ms, ratio {a / b:.2f}")


@pytest.mark.slow  # the shipped spaces at 224² (~1 min): the scaled-down CASES cover the same kinds in CI
@pytest.mark.parametrize("name", ["vit-resnas-tiny", "autoformer-tiny"])
def test_shipped_spaces_outputs_and_gradients(name):
    space = sl.load(os.path.join(SPACES, f"{name}.space"))
    from spacelang.compiler import build_supernet
    torch.manual_seed(0)
    net = build_supernet(space)
    archs = [space.max_arch(), space.min_arch(), space.sample(random.Random(1))]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 224, 224, generator=g)
    assign, y = torch.tensor([2, 0, 1]), torch.tensor([1, 2, 3])
    net.zero_grad()
    out = net.forward_multi(x, archs, assign)
    F.cross_entropy(out, y).backward()
    got = grads(net)
    want = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
    for k, arch in enumerate(archs):
        sel = assign == k
        net.zero_grad()
        ref = net(x[sel], arch)
        assert close(out[sel].detach(), ref.detach())
        (F.cross_entropy(ref, y[sel]) * (sel.sum() / len(y))).backward()
        for n, v in grads(net).items():
            want[n] += v
    for n in want:
        scale = max(want[n].abs().max().item(), 1e-6)
        assert max_diff(got[n], want[n]) <= 1e-5 * scale + 1e-7, n
