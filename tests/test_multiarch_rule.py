"""ViT-ResNAS's ``multiarch`` training rule: sub-batches by global sample index, one masked
forward/backward whose gradient is the per-subnet gradients' sum, the sampling warm-up
(Appendix C), token labelling with patch-wise CutMix/Mixup switching (§2.4), exact resume, the
CLI and its refusals.  Training, resume and 2 processes against 1 without token labels are also
run by the registry-parametrised tests of ``tests/test_rules.py``."""
from __future__ import annotations

import csv
import os
import random

import pytest

torch = pytest.importorskip("torch")

import spacelang as sl  # noqa: E402
from spacelang.cli import main  # noqa: E402
from spacelang.errors import CompileError, OptionError  # noqa: E402

from conftest import EXAMPLES  # noqa: E402
from test_distributed import COMMON, single, torchrun, weights  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: ViT-ResNAS at 8×8: conv tokenizer, 4×4 tokens, RSR to a 2×2 last stage, token-labelling head
RESNAS = """space tiny_resnas
input image 8 channels 1
classes 4
stem conv_stem { width 4  patch 1 }
stage s1 {
  dim {8, 16}
  block transformer          { heads 1..2  head_dim 4  hidden {8, 16} }
  block transformer optional { heads 1..2  head_dim 4  hidden {8, 16} }
}
stage s2 {
  downsample rsr
  dim {16, 24}
  block transformer          { heads 1..2  head_dim 4  hidden {16, 32} }
  block transformer optional { heads 1..2  head_dim 4  hidden {16, 32} }
}
head linear { pool cls  token_label true }
"""
#: no BatchNorm (patch embedding): the sub-batches are independent, the equivalence exact
PLAIN = RESNAS.replace("stem conv_stem { width 4  patch 1 }", "stem patch_embed { patch 2 }") \
    .replace("s2 {\n  downsample rsr", "s2 {\n  downsample patch_merging").replace("pool cls", "pool avg")


@pytest.fixture
def resnas(tmp_path):
    path = tmp_path / "tiny-resnas.space"
    path.write_text(RESNAS)
    return str(path)


def _log(run: str) -> list[dict]:
    import csv
    with open(os.path.join(run, "log.csv"), newline="") as f:
        return list(csv.DictReader(f))


def _cfg(**kw):
    from spacelang.compiler.train import TrainConfig
    base = dict(epochs=3, batch_size=16, warmup_epochs=1, lr=1e-2, drop_path=0.1, rule="multiarch", na=3)
    base.update(kw)
    return TrainConfig.for_data("synthetic", **base)


# ---------------------------------------------------------------------------------------------- the step
def reference_forward_multi(net, x, archs, assign, tokens=False):
    """The slow, obvious multi-arch pass: ``net(x[assign == g], archs[g])`` scattered back."""
    logits = token_logits = None
    for g, arch in enumerate(archs):
        idx = (assign == g).nonzero().squeeze(1)
        if len(idx) == 0:
            continue
        lo, tok = net(x[idx], arch, tokens=True) if tokens else (net(x[idx], arch), None)
        if logits is None:
            logits = lo.new_zeros((len(x),) + lo.shape[1:])
            token_logits = tok.new_zeros((len(x),) + tok.shape[1:]) if tokens else None
        logits = logits.index_copy(0, idx, lo)
        if tokens:
            token_logits = token_logits.index_copy(0, idx, tok)
    return (logits, token_logits) if tokens else logits


def _context(net, x, y, offset=0, step=0):
    from spacelang.compiler.distributed import SINGLE
    from spacelang.compiler.precision import grad_scaler
    from spacelang.compiler.rules import StepContext
    return StepContext(net, x, y, torch.nn.CrossEntropyLoss(), 1.0, "cpu", "none", grad_scaler("cpu", "none"),
                       SINGLE, list(net.parameters()), labels=y, offset=offset, step=step)


def test_samples_go_to_arch_global_index_mod_na(monkeypatch):
    """Local sample j of a slice at offset o trains arch (o + j) mod N_a."""
    from spacelang.compiler.rules import create_rule
    from spacelang.compiler.supernet import build_supernet
    space = sl.loads(PLAIN)
    net = build_supernet(space)
    seen = {}

    def spy(x, archs, assign, tokens=False):
        seen["assign"] = assign.tolist()
        return torch.zeros(len(x), 4, requires_grad=True)
    monkeypatch.setattr(net, "forward_multi", spy, raising=False)
    rule = create_rule(_cfg(na=3))
    rule.step(_context(net, torch.randn(5, 1, 8, 8), torch.zeros(5, dtype=torch.long), offset=8),
              rule.archs(space, 0, 0, space.sample))
    assert seen["assign"] == [2, 0, 1, 2, 0]


@pytest.mark.parametrize("tokens", [False, True])
def test_one_pass_gradient_is_the_per_subnet_gradients(tokens):
    """The rule's gradient equals that of the per-arch forwards on the sub-batches (the mean
    over the batch of the per-sample losses), whatever computes the masked pass."""
    from spacelang.compiler.rules import create_rule
    from spacelang.compiler.supernet import build_supernet
    from spacelang.compiler import tokenlabel as tl
    space = sl.loads(PLAIN)
    torch.manual_seed(0)
    net = build_supernet(space)
    cfg = _cfg(na=4, token_label=tokens, mixup=0.8, cutmix=1.0, label_smoothing=0.1, drop_path=0.0)
    rule = create_rule(cfg)
    archs = rule.archs(space, 0, 3, space.sample)
    x, y = torch.randn(10, 1, 8, 8), torch.randint(0, 4, (10,))
    rule.step(_context(net, x, y, step=3), archs)
    got = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    assign = torch.arange(10) % 4
    if tokens:
        draw = tl.draw_mix(tl.mix_rng(cfg.seed, 3), 2, 0.8, 1.0)
        xm, target, token_target = tl.mix_batch(x, y, draw, 2, 4, 0.1)
        logits, tok = reference_forward_multi(net, xm, archs, assign, tokens=True)
        loss = (tl.soft_cross_entropy(logits, target) + tl.soft_cross_entropy(tok, token_target).mean(1)).mean()
    else:
        loss = torch.nn.functional.cross_entropy(reference_forward_multi(net, x, archs, assign), y)
    loss.backward()
    for g, p in zip(got, net.parameters()):
        want = p.grad if p.grad is not None else torch.zeros_like(p)
        assert torch.allclose(g, want, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------------------------------------- warm-up
def test_warmup_ranges_open_from_the_largest_subnet():
    from spacelang.compiler.rules.warmup import open_choices, sample_warm, sampled_ranges, warmup_progress
    space = sl.load(os.path.join(EXAMPLES, "digits-resnas.space"))
    at0 = sampled_ranges(space, 0.0)
    assert all(v == (space.dim(p).hi,) for p, v in at0.items())  # the largest choice alone
    assert {sample_warm(space, random.Random(i), 0.0) == space.max_arch() for i in range(20)} == {True}
    mid = sampled_ranges(space, 0.5)
    assert mid["s1.0.heads"] == (3, 4) and mid["s1.dim"] == (48, 64) and mid["s1.1.present"] == (True,)
    assert sampled_ranges(space, 0.51)["s1.1.present"] == (False, True)
    assert sampled_ranges(space, 1.0) == {d.path: d.choices for d in space.dims}
    assert [open_choices(4, t) for t in (0, 0.25, 0.26, 0.75, 1.0)] == [1, 1, 2, 3, 4]
    assert (warmup_progress(0, 10), warmup_progress(5, 10), warmup_progress(15, 10), warmup_progress(3, 0)) == \
        (0.0, 0.5, 1.0, 1.0)
    for i in range(30):  # mid-warm-up archs are valid points that stay in the open ranges
        arch = sample_warm(space, random.Random(i), 0.5)
        assert space.validate(arch) == arch
        assert all(v in mid[p] for p, v in arch.items())
    # with every choice open the draws are space.sample's, draw for draw
    assert sample_warm(space, random.Random(7), 1.0) == space.sample(random.Random(7))


def test_rule_warms_up_over_its_epochs():
    from spacelang.compiler.rules import create_rule
    space = sl.loads(RESNAS)
    rule = create_rule(_cfg(na=4, warmup_sampling=2))
    rule.setup(steps_per_epoch=5, total_steps=15)
    assert rule.archs(space, 0, 0, space.sample) == [space.max_arch()] * 4
    assert any(a != space.max_arch() for a in rule.archs(space, 0, 9, space.sample))
    assert rule.archs(space, 0, 10, space.sample) == [space.sample(r) for r in [_rng(0, 10)] for _ in range(4)]
    assert rule.archs(space, 1, 6, space.sample) == rule.archs(space, 1, 6, space.sample)


def _rng(seed, step):
    from spacelang.compiler.rules import step_rng
    return step_rng(seed, step)


# ---------------------------------------------------------------------------------------------- token labels
def test_patchwise_cutmix_labels_agree_with_the_pasted_box():
    """A hand-checked case: 4×4 token grid on 8×8 images, box rows 1..3, cols 0..2 (4 tokens of 16)."""
    from spacelang.compiler.tokenlabel import MixDraw, mix_batch
    x = torch.stack([torch.full((1, 8, 8), float(i)) for i in range(4)])
    y = torch.tensor([0, 1, 2, 3])
    draw = MixDraw("cutmix", 0.75, (1, 3, 0, 2))
    mixed, target, tokens = mix_batch(x, y, draw, grid=4, classes=4, smoothing=0.0)
    # image 0's partner is 1 (0 xor 1): pixels rows 2..5, cols 0..3 come from image 1
    assert torch.equal(mixed[0, 0, 2:6, 0:4], torch.ones(4, 4))
    assert float(mixed[0].sum()) == 16.0 and float(mixed[2, 0, 2:6, 0:4].mean()) == 3.0
    assert torch.allclose(target[0], torch.tensor([0.75, 0.25, 0, 0]))
    assert torch.allclose(target[3], torch.tensor([0, 0, 0.25, 0.75]))
    labels = tokens[0].argmax(-1).reshape(4, 4)
    assert labels.tolist() == [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    assert float(target[0, 0]) == pytest.approx(float((labels == 0).float().mean()))  # λ = area kept


def test_mixup_copies_the_mixed_label_to_every_token_and_smooths():
    from spacelang.compiler.tokenlabel import MixDraw, mix_batch
    x, y = torch.randn(3, 1, 8, 8), torch.tensor([0, 1, 2])
    mixed, target, tokens = mix_batch(x, y, MixDraw("mixup", 0.6), grid=2, classes=4, smoothing=0.2)
    assert torch.allclose(mixed[0], 0.6 * x[0] + 0.4 * x[1]) and torch.allclose(mixed[2], x[2])  # 2 has no partner
    off = 0.05
    assert torch.allclose(target[0], torch.tensor([0.6 * 0.8 + off, 0.4 * 0.8 + off, off, off]))
    assert torch.allclose(tokens, target[:, None, :].expand(3, 4, 4))
    # a slice at an odd offset pairs by global index: local 0 (global 5) with global 4, outside
    from spacelang.compiler.tokenlabel import partners
    assert partners(5, 4).tolist() == [0, 2, 1, 3] and partners(0, 4).tolist() == [1, 0, 3, 2]


def test_switching_is_drawn_from_the_step_seed():
    from spacelang.compiler.tokenlabel import draw_mix, mix_rng
    draws = [draw_mix(mix_rng(0, s), 4, 0.8, 1.0) for s in range(400)]
    assert draws == [draw_mix(mix_rng(0, s), 4, 0.8, 1.0) for s in range(400)]
    assert draws != [draw_mix(mix_rng(1, s), 4, 0.8, 1.0) for s in range(400)]
    share = sum(d.kind == "cutmix" for d in draws) / len(draws)
    assert 0.42 < share < 0.58  # switch probability 0.5
    for d in draws:
        if d.kind == "cutmix":
            r0, r1, c0, c1 = d.box
            assert 0 <= r0 <= r1 <= 4 and 0 <= c0 <= c1 <= 4
            assert d.lam == pytest.approx(1 - (r1 - r0) * (c1 - c0) / 16)
        else:
            assert 0 <= d.lam <= 1
    assert {draw_mix(mix_rng(0, s), 4, 0.0, 1.0).kind for s in range(20)} == {"cutmix"}
    assert {draw_mix(mix_rng(0, s), 4, 0.8, 0.0).kind for s in range(20)} == {"mixup"}
    assert draw_mix(mix_rng(0, 0), 4, 0.0, 0.0).kind == "none"


def test_the_loop_hands_a_self_mixing_rule_the_unmixed_labels(resnas, tmp_path, monkeypatch):
    from spacelang.compiler.rules.multiarch import MultiArch
    from spacelang.compiler.train import train
    seen = []
    real = MultiArch.step

    def spy(self, ctx, archs):
        seen.append(torch.equal(ctx.target, ctx.labels) and ctx.target.dtype == torch.long)
        return real(self, ctx, archs)
    monkeypatch.setattr(MultiArch, "step", spy)
    train(sl.load(resnas), _cfg(epochs=1, token_label=True, mixup=0.8, cutmix=1.0), str(tmp_path / "r"),
          progress=False)
    assert seen and all(seen)


# ---------------------------------------------------------------------------------------------- training
def test_token_labelled_warm_run_resumes_exactly(resnas, tmp_path):
    """Token labels, mixing and a warm-up that ends mid-run: stopped after epoch 1 and resumed,
    the weights, optimizer and log are an uninterrupted run's."""
    from spacelang.compiler import checkpoint as ckpt
    from spacelang.compiler.train import train
    cfg = _cfg(token_label=True, mixup=0.8, cutmix=1.0, warmup_sampling=1.5)
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    train(sl.load(resnas), cfg, full, progress=False)
    train(sl.load(resnas), cfg, part, progress=False, stop_after=1)
    train(sl.load(resnas), cfg, part, resume=True, progress=False)
    a, b = ckpt.load(full), ckpt.load(part)
    assert a.state["config"] == b.state["config"]
    assert (a.state["config"]["na"], a.state["config"]["token_label"], a.state["config"]["warmup_sampling"]) == \
        (3, True, 1.5)
    for k in a.weights:
        assert torch.equal(a.weights[k], b.weights[k]), k
    def log(run):
        with open(os.path.join(run, "log.csv"), newline="") as f:
            return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in csv.DictReader(f)]
    assert log(full) == log(part)


def test_cli_trains_and_resumes(resnas, tmp_path, capsys):
    from spacelang.compiler import checkpoint as ckpt
    run = str(tmp_path / "run")
    args = ["train", resnas, "-o", run, "--data", "synthetic", "--rule", "multiarch", "--na", "4", "--epochs", "2",
            "--batch-size", "16", "--warmup-sampling", "1", "--token-label", "--mixup", "0.8", "--no-progress"]
    assert main(args + ["--stop-after", "1"]) == 0
    assert ckpt.load(run).epoch == 1
    assert main(args + ["--resume"]) == 0
    err = capsys.readouterr().err
    assert "multiarch (4 subnets a step" in err and "token labelling with Mixup" in err
    cfg = ckpt.load(run).state["config"]
    assert ckpt.load(run).epoch == 2
    assert (cfg["rule"], cfg["na"], cfg["warmup_sampling"], cfg["token_label"]) == ("multiarch", 4, 1.0, True)


def test_multiarch_under_a_retokenization_schedule(tmp_path, capsys):
    """The masked pass runs each phase's network (the stem's stride and dilation rewritten)."""
    space = tmp_path / "plain.space"
    space.write_text(PLAIN)
    run = str(tmp_path / "run")
    assert main(["train", str(space), "-o", run, "--data", "synthetic", "--rule", "multiarch", "--na", "3",
                 "--epochs", "2", "--batch-size", "16", "--retokenize", "1:4,3 2-:2,1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "multiarch (3 subnets a step" in err and "saving" in err
    rows = _log(run)
    assert [r["phase"] for r in rows] == ["4,3", "2,1"]


@pytest.mark.slow  # digits at 32×32 through the example space (~15 s idle, a minute on a busy machine)
def test_cli_trains_the_example_space_on_digits(tmp_path, capsys):
    from spacelang.compiler import checkpoint as ckpt
    run = str(tmp_path / "run")
    space = os.path.join(EXAMPLES, "digits-resnas.space")
    assert main(["check", space]) == 0
    assert main(["train", space, "--data", "digits", "--rule", "multiarch", "--na", "4", "--epochs", "1",
                 "--batch-size", "256", "--warmup-sampling", "0.5", "--token-label", "--mixup", "0.8",
                 "--cutmix", "1.0", "-o", run, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "multiarch (4 subnets a step" in err and "token labelling with CutMix/Mixup switching" in err
    cfg = ckpt.load(run).state["config"]
    assert (cfg["rule"], cfg["na"], cfg["warmup_sampling"], cfg["token_label"]) == ("multiarch", 4, 0.5, True)


def test_refusals(resnas, tmp_path, capsys):
    from spacelang.compiler.rules import create_rule
    with pytest.raises(OptionError, match="N_a >= 1"):
        _cfg(na=0)
    with pytest.raises(OptionError, match="settings of --rule multiarch"):
        _cfg(rule="uniform", token_label=True)
    with pytest.raises(OptionError, match="settings of --rule multiarch"):
        _cfg(rule="sandwich", warmup_sampling=2)
    with pytest.raises(CompileError, match="token-labelling classifier") as e:
        create_rule(_cfg(token_label=True)).check_space(sl.loads(RESNAS.replace("  token_label true", "")))
    assert "head linear { token_label true }" in e.value.render()
    with pytest.raises(CompileError):  # searched kernels and attention splits cannot share a masked pass
        create_rule(_cfg()).check_space(sl.load(os.path.join(EXAMPLES, "digits-asvit.space")))
    args = ["--data", "synthetic", "--epochs", "1", "--no-progress"]
    plain = tmp_path / "plain.space"
    plain.write_text(RESNAS.replace("  token_label true", ""))
    assert main(["train", str(plain), "-o", str(tmp_path / "a"), "--rule", "multiarch", "--token-label", *args]) == 2
    err = capsys.readouterr().err
    assert "token_label true" in err and "Traceback" not in err
    assert main(["train", resnas, "-o", str(tmp_path / "b"), "--rule", "multiarch", "--na", "0", *args]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["train", resnas, "-o", str(tmp_path / "c"), "--token-label", *args]) == 2
    assert "settings of --rule multiarch" in capsys.readouterr().err


@pytest.mark.slow  # two training runs, one under torchrun (~45 s)
def test_token_labels_two_processes_equal_one_with_twice_the_batch(tmp_path):
    """Mix pairs, λ, boxes and sub-batches follow the global batch: 2 × 8 = 1 × 16."""
    path = tmp_path / "plain.space"
    path.write_text(PLAIN)
    flags = ["--rule", "multiarch", "--na", "3", "--token-label", "--mixup", "0.8", "--cutmix", "1.0",
             "--warmup-sampling", "0.5"]
    two, one = str(tmp_path / "two"), str(tmp_path / "one")
    r2 = torchrun(2, "train", str(path), "-o", two, "--batch-size", "8", *flags, *COMMON)
    assert r2.returncode == 0, r2.stderr[-3000:]
    r1 = single("train", str(path), "-o", one, "--batch-size", "16", *flags, *COMMON)
    assert r1.returncode == 0, r1.stderr[-3000:]
    w2, w1 = weights(two), weights(one)
    assert max(float((w2[k] - w1[k]).abs().max()) for k in w1) < 1e-5
