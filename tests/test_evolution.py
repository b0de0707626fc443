"""Evolution, random search and Pareto fronts on synthetic objectives."""
import json
import os
import random
import statistics

import pytest

import spacelang as sl
from spacelang.errors import SearchError
from spacelang.cost import cost as exact_cost
from spacelang.search import Bounds, EvolutionConfig, crossover, mutate, random_search, run_evolution
from spacelang.search.evolution import PRESETS, autoformer, dim_class, s3, vit_resnas
from spacelang.search.pareto import dominates, pareto_front, pareto_front_n

from conftest import SPACES

AF = """
space af
input image 32 channels 3
classes 10
stem patch_embed { patch 8 }
stage encoder {
  dim 32..96 step 16
  depth 4..8
  block transformer { heads 1..4  head_dim 16  mlp_ratio 2..4 step 0.5 }
}
head linear { pool cls }
constraint params <= 600K
"""

MULTI = """
space multi
input image 32 channels 3
classes 10
stem patch_embed { patch 4 }
stage s1 {
  dim {16, 32}
  depth 1..3
  block transformer { heads 1..2  head_dim 8  mlp_ratio {2, 4}  window {4, 8} }
}
stage s2 {
  downsample patch_merging
  dim {32, 48}
  repeat 2 {
    block transformer          { heads 1..2  head_dim 8  hidden 32..96 step 32 }
    block transformer optional { heads 1..2  head_dim 8  hidden 32..96 step 32 }
  }
}
head linear { pool avg }
"""


def _spaces():
    out = [sl.loads(AF), sl.loads(MULTI)]
    for name in ("autoformer-small", "s3", "vit-resnas-tiny"):
        path = os.path.join(SPACES, name + ".space")
        if os.path.exists(path):
            try:
                out.append(sl.load(path))
            except sl.SpaceError:
                pass
    return out


def objective(space, seed):
    """A synthetic accuracy: minus the squared distance (in choice indices) to a hidden arch;
    inactive dimensions count at their distance from index 0 so depth matters too."""
    r = random.Random(10_000 + seed)
    target = {d.path: r.randrange(d.size) for d in space.dims}

    def evaluate(archs):
        out = []
        for a in archs:
            s = 0
            for d in space.dims:
                i = d.choices.index(a[d.path]) if d.path in a else 0
                s -= (i - target[d.path]) ** 2
            out.append(100.0 + s)
        return out
    return evaluate


# ------------------------------------------------------------------------------ operators
@pytest.mark.parametrize("space", _spaces(), ids=lambda s: s.name)
def test_mutation_and_crossover_are_always_valid(space):
    rng = random.Random(0)
    cfgs = [autoformer(), s3(), vit_resnas(), EvolutionConfig(p_depth=1.0, p_embed=1.0, p_mutate=1.0)]
    archs = [space.sample(rng) for _ in range(10)] + [space.max_arch(), space.min_arch()]
    for i in range(60):
        a, b = archs[rng.randrange(len(archs))], archs[rng.randrange(len(archs))]
        cfg = cfgs[i % len(cfgs)]
        m = mutate(space, a, rng, cfg)
        c = crossover(space, a, b, rng, cfg.crossover)
        for x in (m, c):
            assert space.validate(x) == x
            assert list(x) == sorted(x)
            exact_cost(space, x)  # buildable
        archs += [m, c]


def test_mutation_probabilities_and_depth_changes():
    space = sl.loads(AF)
    rng = random.Random(1)
    a = space.sample(rng)
    assert mutate(space, a, rng, EvolutionConfig(p_depth=0, p_embed=0, p_mutate=0)) == a
    grown = shrunk = 0
    for _ in range(200):
        m = mutate(space, a, rng, EvolutionConfig(p_depth=1.0, p_embed=0, p_mutate=0))
        assert m["encoder.depth"] != a["encoder.depth"]
        assert m["encoder.dim"] == a["encoder.dim"]
        n = min(a["encoder.depth"], m["encoder.depth"])
        for i in range(n):  # surviving blocks keep their values
            assert m[f"encoder.{i}.heads"] == a[f"encoder.{i}.heads"]
        grown += m["encoder.depth"] > a["encoder.depth"]
        shrunk += m["encoder.depth"] < a["encoder.depth"]
        assert len(m) == 2 + 2 * m["encoder.depth"]
    assert grown and shrunk
    m = mutate(space, a, rng, EvolutionConfig(p_depth=0, p_embed=1.0, p_mutate=0))
    assert m["encoder.dim"] != a["encoder.dim"] and {k: v for k, v in m.items() if k != "encoder.dim"} == \
        {k: v for k, v in a.items() if k != "encoder.dim"}
    assert dim_class(space, "encoder.depth") == "depth" and dim_class(space, "encoder.dim") == "embed"
    assert dim_class(space, "encoder.0.heads") == "other"


def test_block_crossover_takes_whole_blocks():
    space = sl.loads(MULTI)
    rng = random.Random(2)
    a = space.max_arch()
    b = space.complete(lambda d: d.hi, lambda d: d.lo)  # every block present, every value lowest
    assert set(a) == set(b)
    for _ in range(50):
        c = crossover(space, a, b, rng, "block")
        for blk in ("s1.0", "s1.1", "s2.0", "s2.2"):
            keys = [k for k in c if k.startswith(blk + ".") and not k.endswith("present")]
            src = {k: c[k] == a[k] for k in keys}
            assert len(set(src.values())) <= 1, (blk, c)


# ------------------------------------------------------------------------------ search
SMALL_CFG = EvolutionConfig(population=20, generations=8, parents=5, mutations=10, crossovers=10)


def test_evolution_is_deterministic_deduplicated_and_in_band():
    space = sl.loads(AF)
    ev = objective(space, 0)
    band = Bounds.parse("200K<=params")
    r1 = run_evolution(space, ev, SMALL_CFG, seed=5, bounds=band)
    r2 = run_evolution(space, ev, SMALL_CFG, seed=5, bounds=band)
    assert r1.history == r2.history
    keys = [json.dumps(r["arch"], sort_keys=True) for r in r1.history]
    assert len(keys) == len(set(keys)) == SMALL_CFG.budget
    for r in r1.history:
        c = exact_cost(space, r["arch"])
        assert 200_000 <= c.params <= 600_000
        assert (r["params"], r["flops"]) == (c.params, c.flops)
    assert r1.best["score"] == max(r["score"] for r in r1.history)
    curve = r1.best_per_generation()
    assert len(curve) == SMALL_CFG.generations + 1 and curve == sorted(curve)
    assert run_evolution(space, ev, SMALL_CFG, seed=6, bounds=band).history != r1.history


def test_evolution_beats_random_search_at_equal_budget():
    space = sl.loads(AF)
    evo, rnd = [], []
    for seed in range(4):
        ev = objective(space, seed)
        e = run_evolution(space, ev, SMALL_CFG, seed=seed)
        r = random_search(space, ev, len(e.history), seed=seed)
        assert len(r.history) == len(e.history) == SMALL_CFG.budget
        evo.append(e.best["score"])
        rnd.append(r.best["score"])
    # on this objective evolution's best is far ahead (typically by > 10 points per seed)
    assert statistics.mean(evo) > statistics.mean(rnd) + 3
    assert sum(e > r for e, r in zip(evo, rnd)) >= 3


class Killed(Exception):
    pass


@pytest.mark.parametrize("kill_at", [1, 4])
def test_killed_search_resumes_to_the_same_result(tmp_path, kill_at):
    space = sl.loads(MULTI)
    ev = objective(space, 1)
    band = Bounds.parse("flops>=1M")
    cfg = EvolutionConfig(population=12, generations=6, parents=4, mutations=6, crossovers=6, crossover="block")
    full = run_evolution(space, ev, cfg, seed=3, bounds=band)
    calls = []

    def dying(archs):
        calls.append(1)
        if len(calls) == kill_at + 1:
            raise Killed()
        return ev(archs)

    path = str(tmp_path / "state.json")
    with pytest.raises(Killed):
        run_evolution(space, dying, cfg, seed=3, bounds=band, state_path=path)
    state = json.load(open(path))
    assert state["generation"] == kill_at and not state["done"]
    resumed = run_evolution(space, ev, cfg, seed=3, bounds=band, state_path=path)
    assert resumed.history == full.history
    assert resumed.best == full.best
    assert json.load(open(path))["done"]
    # a finished state gives its result back without evaluating again
    assert run_evolution(space, lambda a: 1 / 0, cfg, seed=3, bounds=band, state_path=path).history == full.history
    with pytest.raises(SearchError, match="different search"):
        run_evolution(space, ev, cfg, seed=4, bounds=band, state_path=path)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_random_search_resumes(tmp_path):
    space = sl.loads(AF)
    ev = objective(space, 2)
    full = random_search(space, ev, 45, seed=1, batch=10)
    assert len(full.history) == 45 and full.generations == 5
    path = str(tmp_path / "rs.json")
    n = []

    def dying(archs):
        n.append(1)
        if len(n) == 3:
            raise Killed()
        return ev(archs)
    with pytest.raises(Killed):
        random_search(space, dying, 45, seed=1, batch=10, state_path=path)
    assert random_search(space, ev, 45, seed=1, batch=10, state_path=path).history == full.history


def test_tiny_space_terminates():
    space = sl.loads(AF.replace("dim 32..96 step 16", "dim 32").replace("depth 4..8", "depth 4")
                     .replace("heads 1..4", "heads 1").replace("mlp_ratio 2..4 step 0.5", "mlp_ratio {2, 4}"))
    assert space.size() == 16
    r = run_evolution(space, lambda archs: [1.0] * len(archs), SMALL_CFG, seed=0)
    keys = {json.dumps(x["arch"], sort_keys=True) for x in r.history}
    assert len(keys) == len(r.history) == 16


def test_evaluator_must_return_one_score_per_arch():
    space = sl.loads(AF)
    with pytest.raises(ValueError, match="scores"):
        run_evolution(space, lambda archs: [1.0], SMALL_CFG)


def test_presets_follow_the_papers():
    a = PRESETS["autoformer"]()
    assert (a.population, a.generations, a.parents, a.mutations, a.crossovers) == (50, 20, 10, 25, 25)
    assert (a.p_depth, a.p_mutate) == (0.2, 0.4)
    b = PRESETS["s3"]()
    assert (b.p_depth, b.p_embed, b.p_mutate, b.crossover) == (0.2, 0.2, 0.4, "block")
    c = PRESETS["vit-resnas"]()
    assert (c.population, c.generations, c.parents, c.mutations + c.crossovers) == (500, 20, 75, 150)
    assert c.p_mutate == c.p_depth == c.p_embed == 0.3
    assert a.budget == 50 + 20 * 50
    with pytest.raises(ValueError):
        EvolutionConfig(p_mutate=1.5)


# ------------------------------------------------------------------------------ pareto
def test_pareto_front():
    pts = [(1, 50.0), (2, 60.0), (2, 55.0), (3, 58.0), (4, 70.0), (5, 70.0), (0.5, float("nan"))]
    front = pareto_front(pts, cost=lambda p: p[0], score=lambda p: p[1])
    assert front == [(1, 50.0), (2, 60.0), (4, 70.0)]
    f2 = pareto_front_n(pts[:6], lambda p: p, maximize=(False, True))
    assert sorted(f2) == sorted(front)
    assert dominates((1, 2), (2, 2), (False, True)) and not dominates((1, 2), (1, 2), (False, True))
    space = sl.loads(AF)
    r = run_evolution(space, objective(space, 0), SMALL_CFG, seed=0)
    fr = r.pareto("params")
    assert fr[-1]["score"] == r.best["score"]
    for x in r.history:
        assert not any(dominates((-f["params"], f["score"]), (-x["params"], x["score"]), (True, True))
                       for f in fr if f is not x) or x not in fr
