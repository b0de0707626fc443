"""Supernet training: the loss falls, checkpoints hold no pickle, and a resumed run is exact."""
from __future__ import annotations

import csv
import json
import os
import random

import pytest

torch = pytest.importorskip("torch")

import spacelang as sl  # noqa: E402
from spacelang.cli import main  # noqa: E402

from conftest import TINY  # noqa: E402



pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.space"
    path.write_text(TINY)
    return str(path)


def _cfg(**kw):
    from spacelang.compiler.train import TrainConfig
    base = dict(epochs=4, batch_size=16, warmup_epochs=1, lr=1e-2, drop_path=0.1)
    base.update(kw)
    return TrainConfig.for_data("synthetic", **base)


def _log(rundir):
    with open(os.path.join(rundir, "log.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_loss_decreases(tiny, tmp_path):
    from spacelang.compiler.train import train
    run = str(tmp_path / "run")
    res = train(sl.load(tiny), _cfg(epochs=6), run, progress=False)
    rows = _log(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"]) - 0.2
    assert res.epoch == 6 and res.val_acc_max > 50  # 4 classes: chance is 25 %


def test_checkpoint_is_safetensors_and_json(tiny, tmp_path):
    from safetensors.torch import load_file
    from spacelang.compiler import checkpoint as ckpt
    from spacelang.compiler.train import train
    run = str(tmp_path / "run")
    train(sl.load(tiny), _cfg(epochs=1), run, progress=False)
    d = os.path.join(run, "checkpoint")
    assert sorted(os.listdir(d)) == ["log.csv", "optimizer.safetensors", "space.space", "state.json",
                                     "weights.safetensors"]
    with open(os.path.join(d, "state.json")) as f:
        state = json.load(f)  # plain JSON, no pickle anywhere
    import hashlib
    assert set(state["files"]) == set(os.listdir(d)) - {"state.json"}
    for name, digest in state["files"].items():  # every file's sha256 is recorded
        assert hashlib.sha256(open(os.path.join(d, name), "rb").read()).hexdigest() == digest
    assert state["epoch"] == 1 and state["step"] == 4
    assert isinstance(state["rng"]["torch"], list) and all(isinstance(v, int) for v in state["rng"]["torch"][:16])
    assert state["sampler"]["kind"] == "uniform"
    assert state["space_sha256"] == ckpt.sha256(open(tiny).read())
    with open(os.path.join(d, "space.space")) as f:
        assert f.read() == TINY
    weights = load_file(os.path.join(d, "weights.safetensors"))
    assert weights and all(isinstance(v, torch.Tensor) for v in weights.values())
    load_file(os.path.join(d, "optimizer.safetensors"))
    for name in os.listdir(d):  # no pickle protocol header in any file
        with open(os.path.join(d, name), "rb") as f:
            assert not f.read(2).startswith(b"\x80")
    assert not os.path.exists(d + ".tmp") and not os.path.exists(d + ".old")


def test_checkpoint_of_another_weight_layout_is_refused(tiny, tmp_path):
    from spacelang.compiler import checkpoint as ckpt
    from spacelang.compiler.supernet import WEIGHT_LAYOUT
    from spacelang.compiler.train import train
    run = str(tmp_path / "run")
    train(sl.load(tiny), _cfg(epochs=1), run, progress=False)
    assert ckpt.load(run).state["weight_layout"] == WEIGHT_LAYOUT
    path = os.path.join(run, "checkpoint", "state.json")
    with open(path) as f:
        state = json.load(f)
    state["weight_layout"] = WEIGHT_LAYOUT + 1  # as if written by a build whose ops store weights differently
    with open(path, "w") as f:
        json.dump(state, f)
    from spacelang.errors import CheckpointError
    with pytest.raises(CheckpointError, match="weight layout"):
        ckpt.load(run)


@pytest.mark.parametrize("sampler", ["uniform", "sandwich"])
def test_resume_is_exact(tiny, tmp_path, sampler):
    from spacelang.compiler import checkpoint as ckpt
    from spacelang.compiler.train import train
    space = sl.load(tiny)
    cfg = _cfg(epochs=3, sampler=sampler, sandwich_k=1)
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    train(space, cfg, full, progress=False)
    train(space, cfg, part, progress=False, stop_after=1)          # "killed" after epoch 1
    assert ckpt.load(part).epoch == 1
    train(sl.load(tiny), cfg, part, resume=True, progress=False)   # a fresh process would do the same
    a, b = ckpt.load(full), ckpt.load(part)
    assert a.epoch == b.epoch == 3 and a.step == b.step
    assert a.weights.keys() == b.weights.keys()
    for k in a.weights:
        assert torch.equal(a.weights[k], b.weights[k]), k
    for k, v in a.optimizer["state"].items():
        for name, t in v.items():
            assert torch.equal(torch.as_tensor(t), torch.as_tensor(b.optimizer["state"][k][name])), (k, name)
    # wall time and throughput are the only columns a resumed run may change
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]  # noqa: E731
    assert strip(_log(full)) == strip(_log(part))


def test_sandwich_trains_max_and_min(tiny):
    from spacelang.compiler.train import sample_archs
    space = sl.load(tiny)
    archs = sample_archs(space, "sandwich", seed=0, step=5, k=2)
    assert archs[0] == space.max_arch() and archs[1] == space.min_arch() and len(archs) == 4
    # per-step seeding: the same step gives the same archs, whatever ran before
    assert sample_archs(space, "sandwich", 0, 5, 2) == archs
    assert len({json.dumps(sample_archs(space, "uniform", 0, t)[0], sort_keys=True) for t in range(20)}) > 1


def test_cli_compile_then_train_equals_train(tiny, tmp_path):
    from spacelang.compiler import checkpoint as ckpt
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    args = ["--data", "synthetic", "--epochs", "2", "--batch-size", "16", "--no-progress", "--warmup-epochs", "1"]
    assert main(["compile", tiny, "-o", a]) == 0
    assert ckpt.load(a).epoch == 0 and ckpt.load(a).optimizer is None
    assert main(["train", tiny, "-o", a, "--resume"] + args) == 0
    assert main(["train", tiny, "-o", b] + args) == 0
    wa, wb = ckpt.load(a).weights, ckpt.load(b).weights
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_cli_resume_rejects_other_space(tiny, tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["compile", tiny, "-o", run]) == 0
    other = tmp_path / "other.space"
    other.write_text(TINY.replace("{8, 16}", "{8, 12, 16}"))
    assert main(["train", str(other), "-o", run, "--resume", "--data", "synthetic", "--epochs", "1",
                 "--no-progress"]) == 2
    assert "another space" in capsys.readouterr().err


def test_random_shift_keeps_shape_and_content():
    from spacelang.compiler.train import random_shift
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    y = random_shift(x, 1, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert torch.equal(random_shift(x, 0, torch.Generator()), x)
    # every output pixel comes from the (edge-padded) input
    assert set(y.flatten().tolist()) <= set(x.flatten().tolist())


def test_optimizer_state_roundtrip():
    from spacelang.compiler.checkpoint import optimizer_from_safe, optimizer_to_safe
    p = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    tensors, meta = optimizer_to_safe(opt.state_dict())
    json.dumps(meta)
    opt2 = torch.optim.AdamW([torch.nn.Parameter(p.detach().clone())], lr=0.1)
    opt2.load_state_dict(optimizer_from_safe(tensors, json.loads(json.dumps(meta))))
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert opt2.param_groups[0]["betas"] == opt.param_groups[0]["betas"]


def test_rng_state_roundtrip():
    import numpy as np
    from spacelang.compiler.checkpoint import rng_state, set_rng_state
    s = json.loads(json.dumps(rng_state()))
    a = (torch.rand(3), np.random.rand(), random.random())
    set_rng_state(s)
    b = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_cli_train_refuses_to_overwrite(tiny, tmp_path, capsys):
    run = str(tmp_path / "run")
    args = ["train", tiny, "--data", "synthetic", "-o", run, "--epochs", "1", "--batch-size", "16", "--no-progress"]
    assert main(args) == 0
    assert main(args) == 2 and "--resume" in capsys.readouterr().err
    assert main(["compile", tiny, "-o", run]) == 2
    assert main(args + ["--force"]) == 0


def test_evaluate_recalibrates_batchnorm_without_touching_rng():
    from spacelang.compiler import build_supernet
    from spacelang.compiler.data import load_data
    from spacelang.compiler.evaluate import evaluate, has_batchnorm
    space = sl.loads(TINY.replace("stem patch_embed { patch 2 }", "stem conv_stem { width {4, 8}  patch 2 }"))
    net = build_supernet(space, drop_path=0.5)
    assert has_batchnorm(net)
    data = load_data("synthetic", (1, 8, 8), 4)
    batches = list(data.train_loader(16, 0, 0))
    bn = next(m for m in net.modules() if "BatchNorm" in type(m).__name__)
    before = bn.running_mean.clone()
    state = torch.get_rng_state()
    archs = [space.min_arch(), space.max_arch()]
    accs = evaluate(net, archs, data.eval_loader("val"), bn_batches=batches)
    assert torch.equal(state, torch.get_rng_state())  # drop path stayed off during recalibration
    assert len(accs) == 2 and all(0 <= a <= 100 for a in accs)
    assert not torch.equal(before, bn.running_mean) and bn.momentum == 0.1 and net.training  # mode restored
    # the statistics are the plain average over the batches: recalibrating twice gives the same
    evaluate(net, archs[1:], data.eval_loader("val"), bn_batches=batches)
    once = bn.running_mean.clone()
    evaluate(net, archs[1:], data.eval_loader("val"), bn_batches=batches)
    assert torch.allclose(once, bn.running_mean)


def test_bn_batches_are_chosen_once_for_every_evaluator():
    """search, evolve and eval share one helper: the first batches of epoch 0 under the run's settings."""
    from spacelang.compiler import build_supernet
    from spacelang.compiler.bn import BN_BATCHES, bn_batches
    from spacelang.compiler.data import load_data
    data = load_data("synthetic", (1, 8, 8), 4)
    assert bn_batches(build_supernet(sl.loads(TINY)), data, {"batch_size": 16}) is None  # LayerNorm only
    space = sl.loads(TINY.replace("stem patch_embed { patch 2 }", "stem conv_stem { width {4, 8}  patch 2 }"))
    got = bn_batches(build_supernet(space), data, {"batch_size": 8, "seed": 3})
    want = list(data.train_loader(8, 3, 0))[:BN_BATCHES]
    assert len(got) == BN_BATCHES and all(torch.equal(a[0], b[0]) for a, b in zip(got, want))
