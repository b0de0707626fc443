"""REINFORCE topology search (As-ViT Algorithm 1): policy, reward, convergence, exact resume."""
import json
import math
import os

import pytest

from spacelang.errors import SearchError
from spacelang.search.reinforce import Policy, normalised_change, run_reinforce
from spacelang.space import load, loads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOY = """\
space toy
input image 16 channels 3
classes 4
stem patch_embed { patch 4 }
stage s1 {
  dim {8, 16, 24, 32}
  depth 1..3
  block transformer { heads {1, 2}  head_dim 4  mlp_ratio {2, 3, 4} }
}
head linear { pool avg }
"""


def toy_score(arch):
    """Best arm: dim 32, depth 3, heads 2 in every block, mlp_ratio 2 in every block."""
    s = arch["s1.dim"] / 32 + arch["s1.depth"] / 3
    for k, v in arch.items():
        if k.endswith(".heads"):
            s += 0.3 * (v == 2)
        if k.endswith(".mlp_ratio"):
            s += 0.3 * (v == 2)
    return {"score": s}


def test_uniform_policy_entropy_of_asvit_table1_is_15_3():
    space = load(os.path.join(ROOT, "spaces", "asvit-topology.space"))
    assert Policy(space).entropy() == pytest.approx(15.33, abs=0.01)


def test_gradient_is_onehot_minus_probabilities_for_active_dims_only():
    import random
    space = loads(TOY)
    policy = Policy(space)
    arch = policy.sample(random.Random(0))
    g = policy.gradient(arch)
    assert set(g) == set(arch)
    for path, v in arch.items():
        assert g[path].sum() == pytest.approx(0.0)
        assert g[path][space.dim(path).choices.index(v)] == pytest.approx(1 - 1 / space.dim(path).size)


def test_reward_is_the_range_normalised_change():
    assert normalised_change([3.0]) == 0.0
    assert normalised_change([1.0, 3.0]) == pytest.approx(1.0)
    assert normalised_change([1.0, 5.0, 3.0]) == pytest.approx(-0.5)
    assert normalised_change([2.0, 2.0]) == 0.0


def test_policy_gradient_converges_to_the_best_arm():
    space = loads(TOY)
    r = run_reinforce(space, toy_score, steps=300, seed=1, lr=0.1, objectives={"score": 1})
    assert r.best["s1.dim"] == 32 and r.best["s1.depth"] == 3
    assert all(r.best[f"s1.{i}.heads"] == 2 and r.best[f"s1.{i}.mlp_ratio"] == 2 for i in range(3))
    assert r.entropy[-1] < r.entropy[0] - 2


def test_resume_is_exact(tmp_path):
    space = loads(TOY)
    full = run_reinforce(space, toy_score, steps=30, seed=3, out_dir=str(tmp_path / "a"), objectives={"score": 1})
    calls = []

    def interrupting(arch):
        calls.append(arch)
        if len(calls) == 12:
            raise KeyboardInterrupt
        return toy_score(arch)

    with pytest.raises(KeyboardInterrupt):
        run_reinforce(space, interrupting, steps=30, seed=3, out_dir=str(tmp_path / "b"), objectives={"score": 1})
    resumed = run_reinforce(space, toy_score, steps=30, seed=3, out_dir=str(tmp_path / "b"), objectives={"score": 1})
    assert resumed.rows == full.rows and resumed.best == full.best and resumed.entropy == full.entropy
    a = (tmp_path / "a" / "results.jsonl").read_text()
    assert a == (tmp_path / "b" / "results.jsonl").read_text() and len(a.splitlines()) == 30
    assert json.loads((tmp_path / "b" / "best.json").read_text())["arch"] == full.best


def test_another_runs_state_is_refused(tmp_path):
    space = loads(TOY)
    run_reinforce(space, toy_score, steps=3, seed=0, out_dir=str(tmp_path), objectives={"score": 1})
    with pytest.raises(SearchError, match="different search"):
        run_reinforce(space, toy_score, steps=3, seed=1, out_dir=str(tmp_path), objectives={"score": 1})


def test_missing_or_infinite_scores_are_search_errors():
    space = loads(TOY)
    with pytest.raises(SearchError, match="no 'ntk_condition'"):
        run_reinforce(space, lambda a: {"length_distortion": 1.0}, steps=2)
    with pytest.raises(SearchError, match="inf"):
        run_reinforce(space, lambda a: {"score": math.inf}, steps=2, objectives={"score": 1})
