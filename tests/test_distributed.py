"""Training and search under torchrun (Gloo, 2 CPU processes): the same weights as one process
with the whole batch, an arch check that catches desynchronised ranks, resume across world sizes,
search results independent of the world size, and options that survive torchrun's parser."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = """space tiny
input image 8 channels 1
classes 4
stem patch_embed { patch 2 }
stage s1 {
  dim {16, 24}
  depth 1..2
  block transformer { heads {1, 2}  head_dim 8  mlp_ratio 2 }
}
head linear { pool avg }
"""
# no drop path, no shift, no label smoothing: the only difference between the runs is who sums
COMMON = ["--data", "synthetic", "--epochs", "1", "--drop-path", "0", "--shift", "0", "--label-smoothing", "0",
          "--warmup-epochs", "0", "--threads", "1", "--no-progress", "--seed", "3"]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    env.pop("WORLD_SIZE", None)
    return env


def torchrun(n: int, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           "-m", "spacelang", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=ROOT)


def single(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spacelang", *args], capture_output=True, text=True,
                          timeout=240, env=_env(), cwd=ROOT)


def weights(run: str) -> dict:
    return load_file(os.path.join(run, "checkpoint", "weights.safetensors"))


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("dist") / "tiny.space"
    p.write_text(SPACE)
    return str(p)


@pytest.mark.parametrize("sampler", ["uniform", "sandwich"])
def test_two_processes_equal_one_with_twice_the_batch(space_file, tmp_path, sampler):
    two, one = str(tmp_path / "two"), str(tmp_path / "one")
    r2 = torchrun(2, "train", space_file, "-o", two, "--batch-size", "8", "--sampler", sampler, *COMMON)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "effective batch 16" in r2.stderr
    r1 = single("train", space_file, "-o", one, "--batch-size", "16", "--sampler", sampler, *COMMON)
    assert r1.returncode == 0, r1.stderr[-3000:]
    w2, w1 = weights(two), weights(one)
    assert w2.keys() == w1.keys()
    worst = max(float((w2[k] - w1[k]).abs().max()) for k in w1)
    # float sums in another order, amplified by AdamW where a gradient is float noise around 0:
    # measured 6e-8 (uniform) and 1.3e-6 (sandwich) after 4 steps
    assert worst < 1e-5, worst
    log1 = open(os.path.join(one, "log.csv")).read().splitlines()
    log2 = open(os.path.join(two, "log.csv")).read().splitlines()
    # the same accuracies (evaluation is sharded and the counts summed)
    col = log1[0].split(",").index("acc_largest")
    assert [r.split(",")[col] for r in log1[1:]] == [r.split(",")[col] for r in log2[1:]]


def test_desynchronised_sampler_is_caught(space_file, tmp_path):
    script = tmp_path / "desync.py"
    script.write_text(f"""
import os, random, sys
sys.path.insert(0, {ROOT!r})
import spacelang as sl
from spacelang.compiler.train import TrainConfig, train
from spacelang.errors import SpacelangError
space = sl.load({space_file!r})
rank = int(os.environ["RANK"])
draw = lambda rng: space.sample(random.Random(rng.random() + rank))  # a rank-dependent sampler
cfg = TrainConfig.for_data("synthetic", epochs=1, batch_size=8, drop_path=0.0)
try:
    train(space, cfg, {str(tmp_path / 'run')!r}, progress=False, sample=draw)
except SpacelangError as e:
    print(e.render(), file=sys.stderr)
    sys.exit(2)
""")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=_env(), cwd=ROOT)
    assert r.returncode != 0
    assert "the processes disagree on the archs of step 0" in r.stderr


@pytest.mark.slow  # five training runs (two under torchrun): `make test-all`
def test_resume_across_world_sizes(space_file, tmp_path):
    """2 processes × 8 for one epoch, then 1 process resumes (batch 16); and the other way round.
    Both equal an uninterrupted one-process run with batch 16."""
    args = ["--sampler", "uniform", *[a if a != "1" else "2" for a in COMMON]]  # 2 epochs
    ref = str(tmp_path / "ref")
    assert single("train", space_file, "-o", ref, "--batch-size", "16", *args).returncode == 0
    a = str(tmp_path / "a")
    r = torchrun(2, "train", space_file, "-o", a, "--batch-size", "8", "--stop-after", "1", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    r = single("train", space_file, "-o", a, "--resume", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming on 1 with batch 16" in r.stderr
    b = str(tmp_path / "b")
    assert single("train", space_file, "-o", b, "--batch-size", "16", "--stop-after", "1", *args).returncode == 0
    r = torchrun(2, "train", space_file, "-o", b, "--resume", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    w = weights(ref)
    for run in (a, b):
        got = weights(run)
        assert max(float((got[k] - w[k]).abs().max()) for k in w) < 1e-5


@pytest.mark.slow  # a training run and two searches (one under torchrun): `make test-all`
def test_search_results_do_not_depend_on_the_world_size(space_file, tmp_path):
    run = str(tmp_path / "run")
    assert single("train", space_file, "-o", run, "--batch-size", "16", *COMMON).returncode == 0
    s1, s2 = str(tmp_path / "s1"), str(tmp_path / "s2")
    common = ["--strategy", "random", "--evaluations", "6", "--no-plot", "--seed", "1"]
    r = single("search", run, "-o", s1, *common)
    assert r.returncode == 0, r.stderr[-3000:]
    r = torchrun(2, "search", run, "-o", s2, *common)
    assert r.returncode == 0, r.stderr[-3000:]

    def rows(d):
        return [json.loads(line) for line in open(os.path.join(d, "results.jsonl"))]
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("seconds", "time")} for r in rs]  # noqa: E731
    assert strip(rows(s1)) == strip(rows(s2))


def test_no_option_is_an_abbreviation_of_a_torchrun_option():
    """torchrun's parser takes abbreviations: `--num` would be read as its `--numa-binding`."""
    from torch.distributed.run import get_args_parser

    from spacelang.cli import COMMANDS, build_parser
    theirs = {o for a in get_args_parser()._actions for o in a.option_strings if o.startswith("--")}  # noqa: SLF001
    ours = set()
    parser = build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():  # noqa: SLF001
        for a in sub._actions:  # noqa: SLF001
            ours |= {o for o in a.option_strings if o.startswith("--") and o not in ("--help",)}
    # a proper prefix of one of theirs is taken as an abbreviation (an exact name passes through)
    clashes = sorted({o for o in ours for t in theirs if t.startswith(o) and t != o and o not in DEPRECATED_ALIASES})
    assert not clashes, f"options torchrun would take for its own: {clashes} (commands: {sorted(COMMANDS)})"


#: old spellings kept for single-process use (documented in docs/training.md)
DEPRECATED_ALIASES = {"--num"}


def test_bf16_autocast_trains_end_to_end_on_cpu(space_file, tmp_path):
    run = str(tmp_path / "bf16")
    r = single("train", space_file, "-o", run, "--batch-size", "16", "--amp", "bf16", *COMMON)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mixed precision bf16" in r.stderr
    w = weights(run)
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in w.values())  # fp32 master weights
    log = open(os.path.join(run, "log.csv")).read().splitlines()
    assert log[0].endswith("images_per_s") and float(log[1].split(",")[-1]) > 0


def test_fp16_on_cpu_is_refused_in_one_line(space_file, tmp_path):
    r = single("train", space_file, "-o", str(tmp_path / "x"), "--amp", "fp16", *COMMON)
    assert r.returncode == 2 and "needs a GPU" in r.stderr and "Traceback" not in r.stderr
