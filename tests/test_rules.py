"""Training rules (compiler/rules/): every registered rule trains, resumes exactly and gives the
same weights on 2 Gloo processes as on one with the whole batch; NASViT's gradient projection
(Eq. 1), conflict ratio, in-place distillation losses and weak recipe."""
from __future__ import annotations

import csv
import os

import pytest

torch = pytest.importorskip("torch")

import spacelang as sl  # noqa: E402
from spacelang.cli import main  # noqa: E402
from spacelang.compiler.rules import RULES, create_rule, rule_names  # noqa: E402

from test_distributed import COMMON, SPACE, torchrun, single, weights  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: the nasvit rule's gradient combinations worth running end to end
VARIANTS = {name: [{}] for name in rule_names()}
VARIANTS["nasvit"] = [{"prioritize": "sub"}, {"prioritize": "sub", "projection": "tensor"},
                      {"prioritize": "sup"}, {"prioritize": "none", "kd": "alpha"}]
CASES = [pytest.param(name, kw, id=name + "".join(f"-{v}" for v in kw.values()))
         for name in rule_names() for kw in VARIANTS[name]]
# 2 processes cost ~45 s a case: the first nasvit variant always runs; uniform and sandwich are
# also covered by tests/test_distributed.py, the other variants are slow
DIST_CASES = [pytest.param(*c.values, id=c.id, marks=() if c.id == "nasvit-sub" else pytest.mark.slow)
              for c in CASES]


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.space"
    path.write_text(SPACE)
    return str(path)


def _cfg(rule, **kw):
    from spacelang.compiler.train import TrainConfig
    base = dict(epochs=3, batch_size=16, warmup_epochs=1, lr=1e-2, drop_path=0.1, rule=rule, sandwich_k=1)
    base.update(kw)
    return TrainConfig.for_data("synthetic", **base)


def _log(rundir):
    with open(os.path.join(rundir, "log.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_the_registry_holds_the_papers_rules():
    assert {"uniform", "sandwich", "nasvit"} <= set(RULES)
    assert all(cls.name == name for name, cls in RULES.items())


@pytest.mark.parametrize("name", rule_names())
def test_every_rule_is_named_in_the_train_help(name, capsys):
    assert main(["train", "--help"]) == 0
    assert f"{name} —" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("name,kw", CASES)
def test_rule_trains_and_logs_its_conflict_ratio(tiny, tmp_path, name, kw):
    from spacelang.compiler.train import train
    run = str(tmp_path / "run")
    res = train(sl.load(tiny), _cfg(name, **kw), run, progress=False)
    rows = _log(run)
    assert res.epoch == 3 and len(rows) == 3
    assert all(float(r["loss"]) == float(r["loss"]) for r in rows)  # finite, not NaN
    if RULES[name].measures_conflict:
        assert all(0 <= float(r["conflict"]) <= 100 and 0 <= float(r["conflict_raw"]) <= 100 for r in rows)
    else:
        assert all(r["conflict"] == "" and r["conflict_raw"] == "" for r in rows)
    archs = create_rule(_cfg(name, **kw)).archs(sl.load(tiny), 0, 7, sl.load(tiny).sample)
    assert archs == create_rule(_cfg(name, **kw)).archs(sl.load(tiny), 0, 7, sl.load(tiny).sample)  # (seed, step)


@pytest.mark.parametrize("name,kw", CASES)
def test_resume_is_exact(tiny, tmp_path, name, kw):
    from spacelang.compiler import checkpoint as ckpt
    from spacelang.compiler.train import train
    cfg = _cfg(name, **kw)
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    train(sl.load(tiny), cfg, full, progress=False)
    train(sl.load(tiny), cfg, part, progress=False, stop_after=1)
    train(sl.load(tiny), cfg, part, resume=True, progress=False)
    a, b = ckpt.load(full), ckpt.load(part)
    assert a.epoch == b.epoch == 3 and a.state["config"] == b.state["config"]
    for k in a.weights:
        assert torch.equal(a.weights[k], b.weights[k]), k
    for k, v in a.optimizer["state"].items():
        for n, t in v.items():
            assert torch.equal(torch.as_tensor(t), torch.as_tensor(b.optimizer["state"][k][n])), (k, n)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]  # noqa: E731
    assert strip(_log(full)) == strip(_log(part))


@pytest.mark.parametrize("name,kw", DIST_CASES)
def test_two_processes_equal_one_with_twice_the_batch(tiny, tmp_path, name, kw):
    """Every rule is deterministic given (seed, step): 2 Gloo ranks × 8 = 1 process × 16.  For
    nasvit this checks that each gradient group is summed over the ranks before the projection."""
    flags = ["--rule", name, "--sandwich-k", "1"] + [x for k, v in kw.items() for x in (f"--{k}", v)]
    two, one = str(tmp_path / "two"), str(tmp_path / "one")
    r2 = torchrun(2, "train", tiny, "-o", two, "--batch-size", "8", *flags, *COMMON)
    assert r2.returncode == 0, r2.stderr[-3000:]
    r1 = single("train", tiny, "-o", one, "--batch-size", "16", *flags, *COMMON)
    assert r1.returncode == 0, r1.stderr[-3000:]
    w2, w1 = weights(two), weights(one)
    worst = max(float((w2[k] - w1[k]).abs().max()) for k in w1)
    assert worst < 1e-5, worst
    l1, l2 = _log(one), _log(two)
    for col in ("acc_largest", "conflict_raw"):  # the ratio comes from the reduced gradients
        assert [r[col] for r in l1] == [r[col] for r in l2], col


# ---------------------------------------------------------------------------------------------- projection
def _pair(seed=0, n=(5, 7, 3)):
    g = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.zeros(k)) for k in n]
    total = sum(n)
    return params, torch.randn(total, generator=g), torch.randn(total, generator=g)


def test_global_projection_is_eq_1():
    from spacelang.compiler.rules.gradients import combine
    _, sup, sub = _pair()
    sup = sup - 2 * (sup @ sub) / (sub @ sub) * sub  # make them conflict
    assert sup @ sub < 0
    new_sup, new_sub = combine(sup, sub, "sub", "global")
    assert torch.equal(new_sub, sub)
    want = sup - (sup @ sub) / (sub @ sub) * sub
    assert torch.allclose(new_sup, want) and abs(float(new_sup @ sub)) < 1e-5
    s2, u2 = combine(sup, sub, "sup", "global")  # prioritise the supernet: ∇sub is projected
    assert torch.equal(s2, sup) and abs(float(u2 @ sup)) < 1e-5
    agree = sup + 3 * sub
    assert torch.equal(combine(agree, sub, "sub", "global")[0], agree)  # no conflict: unchanged
    assert combine(sup, sub, "none", "global") == (sup, sub)


def test_tensor_projection_leaves_no_conflicting_tensor():
    from spacelang.compiler.rules.gradients import Segments, combine, conflicts
    params, sup, sub = _pair(seed=3, n=(4, 6, 8, 2, 9))
    seg = Segments(params)
    assert conflicts(sup, sub, seg)[0] > 0
    for prio in ("sub", "sup"):
        s, u = combine(sup, sub, prio, "tensor", seg)
        assert conflicts(s, u, seg) == (0, 5)
    # only the conflicting tensors change
    s, _ = combine(sup, sub, "sub", "tensor", seg)
    dots = seg.dots(sup, sub)
    for i, d in enumerate(dots):
        block = seg.ids == i
        assert torch.equal(s[block], sup[block]) == bool(d >= 0)


def test_projection_stays_exact_on_large_tensors():
    """float32 sums over 10⁵ elements err by more than the cosine tolerance: sums are float64."""
    from spacelang.compiler.rules.gradients import Segments, combine, conflicts
    params, sup, sub = _pair(seed=5, n=(200_000, 3))
    sup[:200_000] -= 0.02 * sub[:200_000] + 0.3 * sup[:200_000]  # a mild conflict in the large tensor
    seg = Segments(params)
    assert conflicts(sup, sub, seg)[0] >= 1
    for scope in ("tensor", "global"):
        s, u = combine(sup, sub, "sub", scope, seg)
        assert float(torch.dot(s.double(), u.double())) >= -1e-6 * float(s.norm() * u.norm())
    assert conflicts(*combine(sup, sub, "sub", "tensor", seg), seg)[0] == 0


def test_conflict_ratio_leaves_out_unused_tensors():
    from spacelang.compiler.rules.gradients import Segments, conflicts
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3)]
    sup = torch.tensor([1.0, 0, 1, 1, 0, 0])
    sub = torch.tensor([-1.0, 0, 1, 0, 5, 5])
    assert conflicts(sup, sub, Segments(params)) == (1, 2)  # tensor 3 has no ∇sup: undefined


def test_prioritize_sub_per_tensor_drives_the_logged_conflict_ratio_to_zero(tiny, tmp_path):
    """Table 7 (d): with the projection per tensor, no tensor's update conflicts, by construction."""
    from spacelang.compiler.train import train
    run = str(tmp_path / "run")
    train(sl.load(tiny), _cfg("nasvit", prioritize="sub", projection="tensor", sandwich_k=2, epochs=2), run,
          progress=False)
    rows = _log(run)
    assert all(r["conflict"] == "0.00" for r in rows)
    assert any(float(r["conflict_raw"]) > 0 for r in rows)  # there was something to resolve


# ---------------------------------------------------------------------------------------------- distillation
def test_kl_distillation_is_kl_of_the_teacher_to_the_student():
    from spacelang.compiler.rules.kd import kl_divergence
    s, t = torch.randn(6, 5), torch.randn(6, 5)
    p, q = t.softmax(1), s.softmax(1)
    assert torch.allclose(kl_divergence(s, t), (p * (p.log() - q.log())).sum(1).mean(), atol=1e-6)
    assert float(kl_divergence(t, t)) == pytest.approx(0, abs=1e-6)


def _alpha_div(s, t, alpha):
    p, q = t.softmax(1), s.softmax(1)
    if alpha == 1.0:
        return (p * (p.log() - q.log())).sum(1)
    return (q * ((p / q) ** alpha - 1)).sum(1) / (alpha * (alpha - 1))


def test_alpha_divergence_value_and_gradient_without_clipping():
    """Logits close together (no importance weight reaches the clip): the value is the larger of
    D₋₁ and D₁ per sample, the gradient that of the exact divergence."""
    from spacelang.compiler.rules.kd import alpha_divergence
    g = torch.Generator().manual_seed(0)
    t = 0.3 * torch.randn(8, 4, generator=g)
    s = (t + 0.3 * torch.randn(8, 4, generator=g)).requires_grad_(True)
    got = alpha_divergence(s, t)
    got.backward()
    s2 = s.detach().clone().requires_grad_(True)
    want = torch.maximum(_alpha_div(s2, t, -1.0), _alpha_div(s2, t, 1.0)).mean()
    want.backward()
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    assert torch.allclose(s.grad, s2.grad, atol=1e-6)
    assert float(alpha_divergence(t, t)) == pytest.approx(0, abs=1e-6)


def test_alpha_divergence_stays_finite_when_the_student_is_far_off():
    from spacelang.compiler.rules.kd import alpha_divergence
    s = torch.tensor([[20.0, -20.0, 0.0]], requires_grad=True)
    loss = alpha_divergence(s, torch.tensor([[-20.0, 20.0, 0.0]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


# ---------------------------------------------------------------------------------------------- recipe and CLI
def test_nasvit_recipe_presets_and_overrides():
    from spacelang.compiler.train import TrainConfig
    d = TrainConfig.for_data("digits", recipe="nasvit")
    assert (d.weight_decay, d.drop_path, d.mixup, d.cutmix, d.shift, d.auto_augment) == (0, 0, 0, 0, 1, None)
    f = TrainConfig.for_data("/some/folder", recipe="nasvit")
    assert f.auto_augment == "rand-m1-n1" and f.mixup == 0 and f.weight_decay == 0
    assert TrainConfig.for_data("digits", recipe="nasvit", weight_decay=0.01).weight_decay == 0.01  # flags win
    assert TrainConfig.for_data("digits").weight_decay == 0.05 and TrainConfig.for_data("digits").recipe == "deit"


def test_randaugment_goes_into_an_image_folders_training_transform(tmp_path):
    from PIL import Image

    from spacelang.compiler.data import load_data
    from spacelang.compiler.train import TrainConfig
    for split in ("train", "val"):
        for c in ("a", "b"):
            os.makedirs(tmp_path / split / c)
            for i in range(3):
                Image.new("RGB", (12, 12), (i * 40, 0, 0)).save(tmp_path / split / c / f"{i}.png")
    data = load_data(str(tmp_path), (3, 8, 8), 2, auto_augment="rand-m1-n1")
    ops = [type(t).__name__ for t in getattr(data.train, "dataset", data.train).transform.transforms]
    assert "RandAugment" in ops and "ColorJitter" not in ops
    assert ops.index("RandAugment") < next(i for i, o in enumerate(ops) if "ToTensor" in o)
    x, _ = data.train[0]
    assert tuple(x.shape) == (3, 8, 8)
    from spacelang.errors import OptionError
    with pytest.raises(OptionError, match="image folder"):
        TrainConfig.for_data("synthetic", epochs=1, auto_augment="rand-m1-n1")


def test_cli_nasvit_recipe_is_stored_and_sampler_is_an_alias(tiny, tmp_path, capsys):
    from spacelang.compiler import checkpoint as ckpt
    run = str(tmp_path / "run")
    args = ["--data", "synthetic", "--epochs", "1", "--batch-size", "16", "--no-progress"]
    assert main(["train", tiny, "-o", run, "--rule", "nasvit", "--recipe", "nasvit", "--kd", "alpha",
                 "--prioritize", "sup", *args]) == 0
    cfg = ckpt.load(run).state["config"]
    assert (cfg["rule"], cfg["recipe"], cfg["kd"], cfg["prioritize"], cfg["weight_decay"], cfg["drop_path"]) == \
        ("nasvit", "nasvit", "alpha", "sup", 0.0, 0.0)
    old = str(tmp_path / "old")
    assert main(["train", tiny, "-o", old, "--sampler", "sandwich", *args]) == 0
    assert ckpt.load(old).state["config"]["rule"] == "sandwich"
    capsys.readouterr()
    assert main(["train", tiny, "-o", str(tmp_path / "x"), "--sampler", "sandwich", "--rule", "uniform", *args]) == 2
    assert "disagree" in capsys.readouterr().err
    assert main(["train", tiny, "-o", str(tmp_path / "y"), "--rule", "nope", *args]) == 2
    err = capsys.readouterr().err
    assert "unknown training rule 'nope'" in err and "nasvit" in err and "Traceback" not in err


def test_old_checkpoint_config_names_its_rule_sampler():
    from spacelang.compiler.train import TrainConfig
    assert TrainConfig.from_json({"sampler": "sandwich", "epochs": 3}).rule == "sandwich"
    assert TrainConfig(rule="nasvit").sampler == "nasvit"


def test_nasvit_under_bf16_autocast_keeps_fp32_gradients(tiny, tmp_path):
    """The distillation runs in float32 on bf16 logits; the projected update lands in fp32 grads."""
    from spacelang.compiler import checkpoint as ckpt
    from spacelang.compiler.train import train
    run = str(tmp_path / "run")
    train(sl.load(tiny), _cfg("nasvit", amp="bf16", kd="alpha", epochs=1), run, progress=False)
    w = ckpt.load(run).weights
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in w.values())
    assert _log(run)[0]["conflict"] != ""
