"""Samplers, resource bands and the memoised cost: determinism, band membership, refusals."""
import collections
import json
import os
import random
import subprocess
import sys
import time

import pytest

import spacelang as sl
from spacelang.cost import cost as exact_cost
from spacelang.search import (Bounds, ConstrainedSampler, CostCache, InfeasibleError, SandwichSampler,
                              UniformSampler, WhereError)
from spacelang.cost_range import CostRange

from conftest import ROOT, SPACES

SMALL = """
space small
input image 32 channels 3
classes 10
stem patch_embed { patch 8 }
stage s {
  dim 32..64 step 16
  depth 1..3
  block transformer { heads 1..2  head_dim 16  mlp_ratio {2, 4} }
}
head linear { pool cls }
"""

OPTIONAL = """
space opt
input image 32 channels 3
classes 10
stem patch_embed { patch 8 }
stage s {
  dim {32, 48}
  let g = 1..2   # shared by the optional blocks only: a trunk choice that can go inactive
  repeat 2 {
    block transformer          { heads 1..2  head_dim 16  hidden 32..96 step 32 }
    block transformer optional { heads g  head_dim 16  hidden 32..96 step 32 }
  }
}
head linear { pool cls }
"""


def _load(name):
    path = os.path.join(SPACES, name + ".space")
    if not os.path.exists(path):
        pytest.skip(f"{name}.space not written yet")
    try:
        return sl.load(path)
    except sl.SpaceError:
        pytest.skip(f"{name}.space does not check yet")


@pytest.fixture(scope="module")
def af_small():
    return _load("autoformer-small")


# ------------------------------------------------------------------------------ --where
@pytest.mark.parametrize("text, metric, lo, hi, ls, hs", [
    ("params<=23M", "params", None, 23_000_000, False, False),
    ("params >= 18M", "params", 18_000_000, None, False, False),
    ("flops<1.5G", "flops", None, 1_500_000_000, False, True),
    ("18M<=params<=23M", "params", 18_000_000, 23_000_000, False, False),
    ("23M > params >= 18M", "params", 18_000_000, 23_000_000, False, True),
    ("22.9M>=params", "params", None, 22_900_000, False, False),
    ("params<=18e6", "params", None, 18_000_000, False, False),
    ("flops <= 500K", "flops", None, 500_000, False, False),
])
def test_where_parses(text, metric, lo, hi, ls, hs):
    b = Bounds.parse(text)
    iv = b.intervals[metric]
    assert (iv.lo, iv.hi, iv.lo_strict, iv.hi_strict) == (lo, hi, ls, hs)


def test_where_combines_and_is_exact():
    b = Bounds.parse(["params>=18M, flops<=5G", "params<=23M and params<22.9M"])
    assert b.intervals["params"].lo == 18_000_000
    assert b.intervals["params"].hi == 22_900_000 and b.intervals["params"].hi_strict
    assert b.intervals["flops"].hi == 5_000_000_000
    # strict ends compare exactly against integer costs
    iv = Bounds.parse("params<22.9M").intervals["params"]
    assert iv.contains(22_899_999) and not iv.contains(22_900_000)
    assert iv.closed_int() == (None, 22_899_999)
    assert Bounds.parse("params>1.5").intervals["params"].closed_int() == (2, None)


@pytest.mark.parametrize("text", ["parms<=3M", "params<=", "params<=3X", "18M<=params>=3M", "params", "",
                                  "params<=3M flops", "__import__('os')"])
def test_where_rejects(text):
    with pytest.raises(WhereError):
        Bounds.parse(text)


# ------------------------------------------------------------------------------ cost cache
def test_cost_cache_matches_exact_cost_on_every_space():
    names = sorted(f[:-6] for f in os.listdir(SPACES) if f.endswith(".space"))
    checked = 0
    for name in names:
        try:
            space = sl.load(os.path.join(SPACES, name + ".space"))
        except sl.SpaceError:
            continue
        cache = CostCache(space)
        rng = random.Random(7)
        archs = [space.min_arch(), space.max_arch()] + [space.sample(rng) for _ in range(25)]
        for a in archs:
            assert cache(a) == exact_cost(space, a), (name, a)
            assert cache(a) == exact_cost(space, a)  # from the memo this time
        checked += 1
    for text in (SMALL, OPTIONAL):
        space = sl.loads(text)
        cache = CostCache(space)
        rng = random.Random(1)
        for _ in range(30):
            a = space.sample(rng)
            assert cache(a) == exact_cost(space, a)
    assert checked >= 1


# ------------------------------------------------------------------------------ uniform / sandwich
def test_uniform_is_deterministic_by_seed():
    space = sl.loads(SMALL)
    a = [UniformSampler(space, random.Random(3)).sample() for _ in range(5)]
    b = [UniformSampler(space, random.Random(3)).sample() for _ in range(5)]
    c = [UniformSampler(space, random.Random(4)).sample() for _ in range(5)]
    assert a == b and a != c
    with pytest.raises(TypeError):
        UniformSampler(space, 3)


def test_sandwich_gives_largest_smallest_and_k_random():
    space = sl.loads(SMALL)
    s = SandwichSampler(space, random.Random(0), k=2)
    steps = [s.step() for _ in range(20)]
    for step in steps:
        assert len(step) == 4
        assert step[0] == space.max_arch() and step[1] == space.min_arch()
        for a in step:
            assert space.validate(a) == a
    middles = {json.dumps(a, sort_keys=True) for st in steps for a in st[2:]}
    assert len(middles) > 5  # the random middles vary
    again = SandwichSampler(space, random.Random(0), k=2)
    assert [again.step() for _ in range(20)] == steps


# ------------------------------------------------------------------------------ constrained
def _assert_in_band(space, archs, bounds):
    for a in archs:
        assert space.validate(a) == a
        assert bounds.contains(exact_cost(space, a)), a


def test_constrained_rejection_in_band_and_deterministic(af_small):
    b = Bounds.parse("18M<=params<=23M")
    s = ConstrainedSampler(af_small, random.Random(0), b)
    archs = [s.sample() for _ in range(300)]
    assert s.stats["mode"] == "rejection"
    _assert_in_band(af_small, archs[:100], b & Bounds.from_space(af_small))
    again = ConstrainedSampler(af_small, random.Random(0), b)
    assert [again.sample() for _ in range(300)] == archs


@pytest.mark.parametrize("band", ["33.5M<=params", "params<=13.3M", "20M<=params<=20.1M"])
def test_constrained_narrow_band_switches_mode_and_stays_in_band(af_small, band):
    b = Bounds.parse(band)
    s = ConstrainedSampler(af_small, random.Random(1), b)
    t0 = time.perf_counter()
    archs = [s.sample() for _ in range(150)]
    assert time.perf_counter() - t0 < 20
    assert s.stats["mode"] == "trunk"
    _assert_in_band(af_small, archs, b)
    assert len({json.dumps(a, sort_keys=True) for a in archs}) > 100


def test_trunk_mode_matches_rejection_distribution(af_small):
    """Trunk mode is exact within a trunk and weighs trunks by a normal approximation: its
    marginals must agree with plain rejection sampling's (the exact conditional law)."""
    b = Bounds.parse("20M<=params<=20.5M")
    n = 500
    rej = ConstrainedSampler(af_small, random.Random(11), b, mode="rejection")
    trunk = ConstrainedSampler(af_small, random.Random(12), b, mode="trunk")
    ra = [rej.sample() for _ in range(n)]
    ta = [trunk.sample() for _ in range(n)]
    key = lambda a: (a["encoder.dim"], a["encoder.depth"])  # noqa: E731
    ca, cb = collections.Counter(map(key, ra)), collections.Counter(map(key, ta))
    tv = 0.5 * sum(abs(ca[k] - cb[k]) / n for k in set(ca) | set(cb))
    assert tv < 0.1
    heads = lambda xs: sum(a["encoder.0.heads"] for a in xs) / len(xs)  # noqa: E731
    assert abs(heads(ra) - heads(ta)) < 0.15


def test_constrained_with_optional_blocks_in_trunk_mode():
    space = sl.loads(OPTIONAL)
    lo, hi = space.cost_range()
    mid = (lo.params + hi.params) // 2
    b = Bounds.parse(f"{mid}<=params<={mid + 4000}")
    s = ConstrainedSampler(space, random.Random(0), b, mode="trunk")
    archs = [s.sample() for _ in range(100)]
    _assert_in_band(space, archs, b)
    assert any(a.get("s.1.present") is False for a in archs) or any(a.get("s.3.present") is False for a in archs)


@pytest.mark.parametrize("band, words", [
    ("params>=40M", ["40M <= params", "params <= 34M"]),                # space constraint clashes
    ("params<=10M", ["params <= 10M", "12.97M", "34.68M"]),             # below the smallest subnet
    ("flops>=9G", ["9G <= flops", "7.21G"]),                            # above the largest
    ("params>=20M, params<=19M", ["exclude each other"]),
])
def test_infeasible_band_is_refused_fast(af_small, band, words):
    t0 = time.perf_counter()
    with pytest.raises(InfeasibleError) as e:
        ConstrainedSampler(af_small, random.Random(0), Bounds.parse(band)).sample()
    assert time.perf_counter() - t0 < 2
    for w in words:
        assert w in str(e.value)
    assert "autoformer_small" in str(e.value) or "exclude" in str(e.value)


def test_jointly_infeasible_band_terminates(af_small):
    # each bound alone is inside the range; together no arch meets both
    t0 = time.perf_counter()
    with pytest.raises(InfeasibleError):
        ConstrainedSampler(af_small, random.Random(0), Bounds.parse("flops<=2.9G, params>=16M")).sample()
    assert time.perf_counter() - t0 < 10


def test_non_monotone_space_range_and_band():
    """As-ViT's split attention lowers FLOPs as `split` grows: the probed range must still
    contain every arch, and a band near the true minimum must be sampled, not refused."""
    space = _load("asvit-topology")
    cache = CostCache(space)
    r = CostRange(space, cache)
    rng = random.Random(0)
    flops = [cache(space.sample(rng)).flops for _ in range(300)]
    assert r.lo["flops"] <= min(flops) and max(flops) <= r.hi["flops"]
    assert r.directions["flops"]["s1.split"] == -1
    band = Bounds.parse(f"flops<={min(flops) + 2_000_000}")
    s = ConstrainedSampler(space, random.Random(0), band)
    _assert_in_band(space, [s.sample() for _ in range(30)], band)


def test_no_bounds_is_uniform():
    space = sl.loads(SMALL)
    s, rng = ConstrainedSampler(space, random.Random(5)), random.Random(5)
    assert [s.sample() for _ in range(5)] == [space.sample(rng) for _ in range(5)]


# ------------------------------------------------------------------------------ CLI
def _cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "spacelang", "sample", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_sample_band_fast_and_canonical():
    path = os.path.join(SPACES, "autoformer-small.space")
    if not os.path.exists(path):
        pytest.skip("autoformer-small.space not written yet")
    t0 = time.perf_counter()
    r = _cli(path, "-n", "2000", "--where", "18M<=params<=23M", "--seed", "0")
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2000
    space = sl.load(path)
    for line in lines[:50]:
        arch = json.loads(line)
        assert line == json.dumps(arch, sort_keys=True)
        assert 18e6 <= exact_cost(space, arch).params <= 23e6
    assert elapsed < 10  # about 1 s on an idle machine; generous for a loaded test machine
    again = _cli(path, "-n", "2000", "--where", "18M<=params<=23M", "--seed", "0")
    assert again.stdout == r.stdout


def test_cli_json_sandwich_and_errors(tmp_path):
    f = tmp_path / "small.space"
    f.write_text(SMALL)
    r = _cli(str(f), "-n", "2", "--sandwich", "1", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == 6
    space = sl.loads(SMALL)
    assert rows[0]["arch"] == space.max_arch() and rows[1]["arch"] == space.min_arch()
    for row in rows:
        c = exact_cost(space, row["arch"])
        assert (row["params"], row["flops"]) == (c.params, c.flops)
    t0 = time.perf_counter()
    bad = _cli(str(f), "-n", "5", "--where", "params>=1G")
    assert bad.returncode == 2 and time.perf_counter() - t0 < 10
    assert len(bad.stderr.strip().splitlines()) == 1 and "infeasible" in bad.stderr
    bad = _cli(str(f), "--where", "energy<3")
    assert bad.returncode == 2 and "unknown metric" in bad.stderr
