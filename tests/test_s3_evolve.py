"""S3 space evolution: E-T error, linear trends, the update of Eq. 8 and the in-place rewrite.

The synthetic tables are full factorial designs with errors linear in the trending subspaces'
values, so every choice's E-T error is exactly linear and the expected number of steps is known:
w = c·(max − min) (x is min-max normalised), steps = trunc(w/τ).
"""
from __future__ import annotations

import itertools
import json
import os
import random

import pytest

import spacelang as sl
from spacelang.cli import main
from spacelang.search import et_error as E
from spacelang.search import rewrite as R
from spacelang.search.s3_evolve import evolve_space, fit_trend, shift, steps_for
from spacelang.search.s3_loop import run_s3

from conftest import EXAMPLES

TINY = """\
# A tiny space for the S3 tests.
space tiny
input image 32 channels 3
classes 10

stem patch_embed { patch 4 }     # 8×8 tokens

stage s1 {
  dim   {32, 48, 64} step 16     # the stage width
  depth 1..2
  block transformer {
    heads     {1, 2}
    head_dim  16
    mlp_ratio {2, 3, 4} step 1   # written once, chosen per block
  }
}

# a second stage
stage s2 {
  downsample patch_merging
  dim {64, 96}
  depth 1..2
  block transformer { heads {2, 4}  head_dim 16  mlp_ratio {2, 3} }
}

head linear { pool avg }
"""


@pytest.fixture(scope="module")
def tiny():
    return sl.loads(TINY, "tiny.space")


def build_arch(space, assignment: dict) -> dict:
    """An arch with every instance of a subspace set to ``assignment[subspace name]`` (else its lowest)."""
    subs = E.subspaces(space)

    def value_for(path):
        for s in subs:
            if path in s.paths:
                return assignment.get(s.name, s.choices[0])
        return space.dim(path).choices[0]

    gates = {st.depth.path: value_for(st.depth.path) for st in space.stages if hasattr(st.depth, "path")}
    arch = {p: gates.get(p, value_for(p)) for p in space.active_paths(gates)}
    return space.validate(arch)


def factorial(space, factors: dict, error) -> list[dict]:
    """Rows of a full factorial design over ``factors`` (subspace name -> values)."""
    names = list(factors)
    rows = []
    for combo in itertools.product(*(factors[n] for n in names)):
        a = dict(zip(names, combo))
        rows.append({"arch": build_arch(space, a), "error": error(a)})
    return rows


def changed_lines(old: str, new: str) -> list[tuple[str, str]]:
    """(old line, new line) pairs of a line-for-line diff (the rewriter never adds or removes lines)."""
    a, b = old.splitlines(), new.splitlines()
    assert len(a) == len(b)
    return [(x, y) for x, y in zip(a, b) if x != y]


# ------------------------------------------------------------------------------- decomposition

def test_subspaces_one_per_written_choice_set(tiny):
    names = [s.name for s in E.subspaces(tiny)]
    assert names == ["s1.dim", "s1.depth", "s1.*.heads", "s1.*.mlp_ratio",
                     "s2.dim", "s2.depth", "s2.*.heads", "s2.*.mlp_ratio"]
    mlp = next(s for s in E.subspaces(tiny) if s.name == "s1.*.mlp_ratio")
    assert mlp.paths == ("s1.0.mlp_ratio", "s1.1.mlp_ratio") and mlp.stage == "s1" and mlp.field == "mlp_ratio"


def test_weights_are_fractions_of_active_blocks(tiny):
    mlp = next(s for s in E.subspaces(tiny) if s.name == "s1.*.mlp_ratio")
    arch = build_arch(tiny, {"s1.depth": 2})
    arch["s1.0.mlp_ratio"], arch["s1.1.mlp_ratio"] = 2.0, 4.0
    assert E.weights(mlp, arch) == {2.0: 0.5, 4.0: 0.5}
    one = build_arch(tiny, {"s1.depth": 1, "s1.*.mlp_ratio": 3.0})
    assert E.weights(mlp, one) == {3.0: 1.0}


def test_top_tier_is_weighted_top_k():
    members = [(10.0, 1.0), (12.0, 1.0), (11.0, 0.5), (20.0, 1.0)]
    assert E.top_mass_mean(members, 1.5) == pytest.approx((10 + 0.5 * 11) / 1.5)
    assert E.top_mass_mean(members, 50) == pytest.approx((10 + 12 + 5.5 + 20) / 3.5)


def test_et_error_is_mean_of_expected_and_top_tier(tiny):
    sub = next(s for s in E.subspaces(tiny) if s.name == "s1.dim")
    rows = [E.Evaluated(build_arch(tiny, {"s1.dim": 32}), e) for e in (10, 20, 30, 40)]
    st = {c.value: c for c in E.et_errors(sub, rows, top_k=2)}
    assert st[32].q_e == 25 and st[32].q_t == 15 and st[32].et == 20 and st[32].n == 4
    assert st[48].et is None and st[48].n == 0


def test_constraints_and_foreign_rows_are_left_out(tiny):
    good = build_arch(tiny, {})
    rows = [{"arch": good, "error": 10, "params": 1}, {"arch": good, "error": 11, "params": 2 * 10**9},
            {"arch": {"s9.dim": 1}, "error": 5}, {"arch": good, "accuracy": 80.0}]
    space = sl.loads(TINY + "constraint params <= 1G\n")
    rf = E.feasible(space, rows)
    assert (len(rf.used), rf.invalid, rf.infeasible) == (2, 1, 1)
    assert sorted(e.error for e in rf.used) == [10, 20]


# ------------------------------------------------------------------------------- trends and steps

def test_fit_and_steps():
    stats = [E.ChoiceET(v, 1, 1.0, y, y, y) for v, y in ((2, 11.0), (3, 10.5), (4, 10.0))]
    t = fit_trend((2, 3, 4), stats)
    assert t.slope == pytest.approx(-1.0)
    assert steps_for(t.slope, 0.4) == -2            # toward zero
    assert steps_for(t.slope, 0.4, "floor") == -3
    assert steps_for(0.39, 0.4) == 0 and steps_for(-0.39, 0.4) == 0
    assert steps_for(-0.01, 0.4, "floor") == -1     # S3's literal floor moves any negative slope
    assert steps_for(0.8, 0.4) == 2
    assert shift(3.5, -2, 0.5, "float") == (4.5, None)
    assert shift(2, 3, 1, "int") == (None, "not positive")
    assert shift(4, 1, 0.5, "int") == (None, "not an integer")


@pytest.mark.parametrize("top_k", [50, 5])
def test_exactly_the_trending_subspaces_move(tiny, top_k):
    # error rises with s1.dim (+0.02 per channel: w = 0.64 → 1 step down) and falls with the s1
    # MLP ratio (−0.5 per unit: w = −1.0 → 2 steps up); s1.depth and s2's heads have no effect.
    factors = {"s1.dim": [32, 48, 64], "s1.*.mlp_ratio": [2.0, 3.0, 4.0], "s1.depth": [1, 2],
               "s2.*.heads": [2, 4], "s2.dim": [64, 96]}
    rows = factorial(tiny, factors, lambda a: 20 + 0.02 * a["s1.dim"] - 0.5 * a["s1.*.mlp_ratio"])
    ev = evolve_space(tiny, rows, top_k=top_k)
    by = {u.sub.name: u for u in ev.updates}
    assert by["s1.dim"].trend.slope == pytest.approx(0.64)
    assert by["s1.*.mlp_ratio"].trend.slope == pytest.approx(-1.0)
    assert (by["s1.dim"].k, by["s1.*.mlp_ratio"].k) == (1, -2)
    assert by["s1.dim"].new == (16, 32, 48)
    assert by["s1.*.mlp_ratio"].new == (4.0, 5.0, 6.0)
    assert {u.sub.name for u in ev.changed} == {"s1.dim", "s1.*.mlp_ratio"}
    for name in ("s1.depth", "s2.*.heads", "s2.dim"):
        assert by[name].trend.slope == pytest.approx(0.0, abs=1e-9) and by[name].k == 0
    # only the two lines move; their comments survive byte for byte
    assert changed_lines(TINY, ev.text) == [
        ("  dim   {32, 48, 64} step 16     # the stage width", "  dim   {16, 32, 48} step 16     # the stage width"),
        ("    mlp_ratio {2, 3, 4} step 1   # written once, chosen per block",
         "    mlp_ratio {4, 5, 6} step 1   # written once, chosen per block")]
    new = sl.loads(ev.text)
    assert new.dim("s1.dim").choices == (16, 32, 48)
    assert new.dim("s1.1.mlp_ratio").choices == (4.0, 5.0, 6.0)


def test_no_trend_leaves_the_text_identical(tiny):
    rng = random.Random(1)
    archs = [tiny.sample(rng) for _ in range(200)]
    flat = evolve_space(tiny, [{"arch": a, "error": 12.5} for a in archs])
    assert flat.text == TINY and not flat.changed
    noisy = evolve_space(tiny, [{"arch": a, "error": 12.5 + rng.gauss(0, 0.05)} for a in archs])
    assert noisy.text == TINY and not noisy.changed


def test_upward_direction_and_downward_direction(tiny):
    factors = {"s2.dim": [64, 96], "s2.*.mlp_ratio": [2.0, 3.0]}
    # error falls with s2.dim by 1.0 over its set → 2 steps of 64 up; rises with mlp by 0.5 → 1 step down
    rows = factorial(tiny, factors, lambda a: 30 - (a["s2.dim"] - 64) / 32 + 0.5 * (a["s2.*.mlp_ratio"] - 2))
    ev = evolve_space(tiny, rows)
    by = {u.sub.name: u for u in ev.updates}
    assert by["s2.dim"].new == (192, 224)
    assert by["s2.*.mlp_ratio"].new == (1.5, 2.5)  # γ: S3's MLP-ratio step 0.5
    assert ev.new_space.dim("s2.0.mlp_ratio").choices == (1.5, 2.5)


def test_never_empty_when_every_shifted_choice_is_not_positive(tiny):
    # depth 1..2, strongly worse when deeper: w = 3 → 7 steps down → every choice ≤ 0
    rows = factorial(tiny, {"s1.depth": [1, 2]}, lambda a: 10 + 3 * a["s1.depth"])
    ev = evolve_space(tiny, rows)
    u = next(u for u in ev.updates if u.sub.name == "s1.depth")
    assert u.k == 7 and u.new == (1,)
    assert changed_lines(TINY, ev.text) == [("  depth 1..2", "  depth {1}")]
    assert ev.new_space.dim("s1.depth").choices == (1,)


WINDOWS = """\
space win
input image 32 channels 3
classes 10
stem patch_embed { patch 4  pos none }   # 8×8 tokens
stage s1 {
  dim 32
  depth 2
  block transformer { heads 2  head_dim 16  mlp_ratio 4  window {4, 8} step 2 }  # 6 does not fit 8×8
}
stage s2 {
  downsample patch_merging
  dim 64
  block transformer { heads 2  head_dim 16  mlp_ratio 4  window {1, 2} step 1 }  # 4×4 map
}
head linear { pool avg }
"""


def test_checker_drops_windows_that_no_longer_fit():
    space = sl.loads(WINDOWS)
    # bigger windows are better in both stages: w = −0.5 → one step up
    rows = factorial(space, {"s1.*.window": [4, 8], "s2.*.window": [1, 2]},
                     lambda a: 10 - 0.5 * (a["s1.*.window"] == 8) - 0.5 * (a["s2.*.window"] == 2))
    ev = evolve_space(space, rows)
    by = {u.sub.name: u for u in ev.updates}
    # s1: {4, 8} → {6, 10}; 6 neither divides 8 nor covers the map, 10 ≥ 8 is global attention
    assert by["s1.*.window"].new == (10,)
    assert [v for v, _ in by["s1.*.window"].dropped] == [6]
    assert "does not divide" in by["s1.*.window"].dropped[0][1]
    # s2 (4×4): {1, 2} → {2, 3}; 3 dropped
    assert by["s2.*.window"].new == (2,)
    sl.loads(ev.text)


def test_never_empty_when_the_checker_rejects_every_shifted_choice():
    text = WINDOWS.replace("window {1, 2} step 1", "window {2} step 1").replace(
        "window {4, 8} step 2", "window {2, 4} step 1")
    space = sl.loads(text)
    rows = factorial(space, {"s1.*.window": [2, 4]}, lambda a: 10 - 0.5 * (a["s1.*.window"] == 4))
    ev = evolve_space(space, rows)
    u = next(u for u in ev.updates if u.sub.name == "s1.*.window")
    # {2, 4} → {3, 5}: neither fits 8×8; the valid value nearest to where the trend points is 4
    assert u.k == -1 and u.new == (4,) and "nearest" in u.note
    assert ev.new_space.dim("s1.0.window").choices == (4,)


# ------------------------------------------------------------------------------- the rewriter

def _render(text, values, gamma=None, default=None, field="x"):
    from spacelang.parser import parse
    tree = parse(text)
    (key, node), = [(k, n) for k, n in R.value_nodes(tree).items()]
    return R.rewrite(text, tree, [R.Edit(key, tuple(values), gamma, default)])


@pytest.mark.parametrize("before, values, gamma, default, after", [
    ("let x = {7, 14}", (14, 21), 7, None, "let x = {14, 21}"),
    ("let x = { 7,14 }", (14, 21), 7, None, "let x = { 14,21 }"),
    ("let x = {7, 14} step 7", (14,), 7, None, "let x = {14} step 7"),
    ("let x = 3..4", (4, 5), 1, 1, "let x = 4..5"),
    ("let x = 192..240 step 24", (216, 240, 264), 24, None, "let x = 216..264 step 24"),
    ("let x = 2..4 step 2", (4,), 2, None, "let x = {4} step 2"),
    ("let x = 1..3", (1, 3), 1, None, "let x = {1, 3} step 1"),
    ("let x = 1..3", (2, 3), 1, None, "let x = 2..3"),
    ("let x = {3, 3.5, 4}", (3.5, 4.0, 4.5), 0.5, 0.5, "let x = {3.5, 4, 4.5}"),
    ("let x = {3.0, 3.5}", (3.5, 4.0), 0.5, 0.5, "let x = {3.5, 4.0}"),
    ("let x = 3..4 step 0.5", (3.5, 4.0, 4.5), 0.5, None, "let x = 3.5..4.5 step 0.5"),
    ("let x = {8, 16}", (16, 32), 8, None, "let x = {16, 32} step 8"),   # the gap changed: keep γ
    ("let x = {7,  # small\n  14,  # large }\n}", (14, 21), 7, None, "let x = {14,  # small\n  21,  # large }\n}"),
    ("let x = {7,  # small\n  14  # large\n}", (14,), 7, 7, "let x = {14  # small\n  # large\n}"),
    ("let x = {7, 14, 21}", (14, 21), 7, 7, "let x = {14, 21}"),
])
def test_rewrite_keeps_the_authors_form(before, values, gamma, default, after):
    prefix = "# c1\nspace t  # c2\n"
    assert _render(prefix + before + "   # tail\n", values, gamma, default) == prefix + after + "   # tail\n"


def test_shared_text_is_one_subspace_and_is_rewritten_once():
    text = """\
space shared
input image 32 channels 3
classes 10
template tb transformer { heads 2  head_dim 16  mlp_ratio {2, 3} }   # shared by both stages
stem patch_embed { patch 4 }
stage s1 {
  dim 32
  depth 3
  block tb
}
stage s2 {
  downsample patch_merging
  dim 64
  block tb
}
head linear { pool avg }
"""
    space = sl.loads(text)
    subs = {s.name: s for s in E.subspaces(space)}
    assert set(subs) == {"*.*.mlp_ratio"} and subs["*.*.mlp_ratio"].stages == ("s1", "s2")
    rows = factorial(space, {"*.*.mlp_ratio": [2.0, 3.0]}, lambda a: 10 - a["*.*.mlp_ratio"])
    ev = evolve_space(space, rows)
    assert changed_lines(text, ev.text) == [
        ("template tb transformer { heads 2  head_dim 16  mlp_ratio {2, 3} }   # shared by both stages",
         "template tb transformer { heads 2  head_dim 16  mlp_ratio {3, 4} }   # shared by both stages")]


# ------------------------------------------------------------------------------- the example space

def _digits_rows(space, n=240, seed=0):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a = space.sample(rng)
        m = [v for p, v in a.items() if p.startswith("s1.") and p.endswith(".mlp_ratio")]
        err = 15 - 1.5 * (sum(m) / len(m) - 3) + 0.1 * (a["s2.dim"] - 48) / 16 * 10 + rng.gauss(0, 0.2)
        rows.append({"arch": a, "error": err, "accuracy": 100 - err})
    return rows


def test_digits_s3_example_evolves_and_checks():
    path = os.path.join(EXAMPLES, "digits-s3.space")
    space = sl.load(path)
    ev = evolve_space(space, _digits_rows(space))
    moved = {u.sub.name: u for u in ev.changed}
    assert set(moved) == {"s1.*.mlp_ratio", "s2.dim"}
    assert moved["s1.*.mlp_ratio"].k < 0 and moved["s2.dim"].k > 0   # up and down
    assert all(u.new for u in ev.updates)
    diff = changed_lines(space.source, ev.text)
    assert [a.split()[0] for a, _ in diff] == ["mlp_ratio", "dim"]
    old_comments = [line[line.index("#"):] for line in space.source.splitlines() if "#" in line]
    new_comments = [line[line.index("#"):] for line in ev.text.splitlines() if "#" in line]
    assert old_comments == new_comments
    sl.loads(ev.text)


def test_cli_from_results(tmp_path, capsys):
    path = os.path.join(EXAMPLES, "digits-s3.space")
    space = sl.load(path)
    res = tmp_path / "results.jsonl"
    res.write_text("".join(json.dumps(r) + "\n" for r in _digits_rows(space)))
    out = tmp_path / "new.space"
    rep = tmp_path / "report"
    assert main(["evolve", path, "--from-results", str(res), "-o", str(out), "--report", str(rep), "--diff"]) == 0
    printed = capsys.readouterr().out
    assert "s1.*.mlp_ratio" in printed and "+    mlp_ratio" in printed
    assert main(["check", "-q", str(out)]) == 0
    report = json.loads((rep / "report.json").read_text())
    moved = [s["subspace"] for s in report["subspaces"] if s["changed"]]
    assert moved == ["s1.*.mlp_ratio", "s2.dim"]
    assert {p.name for p in rep.iterdir()} == {"report.md", "report.json", "choices.png", "errors_cdf.png"}
    assert "| `s2.dim` |" in (rep / "report.md").read_text()
    # a table from another space is refused
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"arch": {"x": 1}, "error": 1}) + "\n")
    assert main(["evolve", path, "--from-results", str(bad), "-o", str(out)]) == 2


# ------------------------------------------------------------------------------- the loop

def test_loop_with_a_synthetic_trainer(tmp_path, tiny):
    trained = []

    def train(space, directory):
        trained.append(space.dim("s1.0.mlp_ratio").choices)
        os.makedirs(directory, exist_ok=True)
        return {"space": space.name}

    def evaluate(space, model, archs):
        # a larger MLP ratio in s1 is always better: every iteration moves it up
        out = []
        for a in archs:
            m = [v for p, v in a.items() if p.startswith("s1.") and p.endswith(".mlp_ratio")]
            out.append({"accuracy": 80 + 0.5 * sum(m) / len(m)})
        return out

    logs = []
    res = run_s3(tiny, 2, str(tmp_path), train, evaluate, n_archs=60, plots=False, log=logs.append)
    assert trained[0] == (2.0, 3.0, 4.0) and len(trained) == 3
    assert trained[0][0] < trained[1][0] < trained[2][0]   # up in both steps, spacing kept
    assert all(len(t) == 3 for t in trained)
    for t in range(3):
        assert (tmp_path / f"iter{t}" / "space.space").exists()
        assert (tmp_path / f"iter{t}" / "results.jsonl").exists()
    assert (tmp_path / "iter0" / "report" / "report.md").exists()
    assert (tmp_path / "iter0" / "space.space").read_text() == TINY
    assert all("s1.*.mlp_ratio" in {u.sub.name for u in e.changed} for e in res.evolutions)
    rows = [json.loads(line) for line in (tmp_path / "iter1" / "results.jsonl").read_text().splitlines()]
    assert {"arch", "error", "accuracy", "params", "flops"} <= set(rows[0])
    # rerun: every iteration is reused, nothing is trained again
    trained.clear()
    run_s3(tiny, 2, str(tmp_path), train, evaluate, n_archs=60, plots=False, log=logs.append)
    assert trained == []
    assert (tmp_path / "summary.md").exists()


def test_max_steps_caps_the_move(tiny):
    rows = factorial(tiny, {"s1.*.mlp_ratio": [2.0, 3.0, 4.0]}, lambda a: 20 - 2 * a["s1.*.mlp_ratio"])
    u = next(u for u in evolve_space(tiny, rows, max_steps=1).updates if u.sub.name == "s1.*.mlp_ratio")
    assert u.k == -1 and u.new == (3.0, 4.0, 5.0) and "capped" in u.note


def test_worked_example_on_the_s3_space():
    """docs/s3-evolve.md: stage s3's MLP ratio moves up 2 × 0.5; s1's windows {7, 14} → {14, 21} keep {14}."""
    from conftest import SPACES
    path = os.path.join(SPACES, "s3.space")
    space = sl.load(path)
    mlp = {3.0: 25.0, 3.5: 24.5, 4.0: 24.1}
    rows = factorial(space, {"s3.*.mlp_ratio": [3.0, 3.5, 4.0], "s1.*.window": [7, 14]},
                     lambda a: mlp[a["s3.*.mlp_ratio"]] - 0.6 * (a["s1.*.window"] == 14))
    ev = evolve_space(space, rows)
    by = {u.sub.name: u for u in ev.updates}
    assert by["s3.*.mlp_ratio"].trend.slope == pytest.approx(-0.9)
    assert by["s3.*.mlp_ratio"].new == (4.0, 4.5, 5.0)
    assert by["s1.*.window"].new == (14,) and by["s1.*.window"].dropped[0][0] == 21
    assert {u.sub.name for u in ev.changed} == {"s3.*.mlp_ratio", "s1.*.window"}
    assert [b for _, b in changed_lines(space.source, ev.text)] == [
        "    window    {14} step 7", "    mlp_ratio {4, 4.5, 5} step 0.5"]


@pytest.mark.slow
def test_cli_full_loop_trains_with_the_compiler(tmp_path):
    """`evolve --iterations` wires the compiler's sandwich training and inherited-weight evaluation."""
    pytest.importorskip("torch")
    src = tmp_path / "micro.space"
    src.write_text("""\
space micro
input image 8 channels 1
classes 4
stem patch_embed { patch 2 }   # 4×4 tokens
stage s1 {
  dim   {8, 16} step 8
  depth 1..2
  block transformer { heads 1  head_dim 8  mlp_ratio {1, 2} step 1 }
}
head linear { pool avg }
""")
    out = tmp_path / "run"
    assert main(["evolve", str(src), "--iterations", "1", "--data", "synthetic", "--epochs", "1", "--archs", "4",
                 "--batch-size", "16", "--no-final-eval", "--no-plots", "-q", "-o", str(out)]) == 0
    assert (out / "iter0" / "space.space").read_text() == src.read_text()
    assert (out / "iter0" / "supernet").is_dir()
    rows = [json.loads(line) for line in (out / "iter0" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(0 <= r["error"] <= 100 for r in rows)
    sl.load(str(out / "iter1" / "space.space"))
    assert (out / "iter0" / "report" / "report.json").exists() and (out / "summary.md").exists()


def test_cli_from_results_reports_every_bad_row_by_line(tmp_path, capsys):
    path = os.path.join(EXAMPLES, "digits-s3.space")
    arch = sl.load(path).min_arch()
    res = tmp_path / "results.jsonl"
    res.write_text("\n".join([
        json.dumps({"arch": arch, "error": 10.0}),     # 1: good
        json.dumps({"arch": arch, "error": float("nan")}),  # 2: NaN (json writes NaN)
        json.dumps({"arch": arch, "error": -3}),       # 3: negative
        json.dumps({"arch": arch, "error": "12%"}),    # 4: a string
        "[1, 2, 3]",                                   # 5: not an object
        "{not json",                                   # 6: not JSON
        json.dumps({"arch": arch}),                    # 7: no error
    ]) + "\n")
    assert main(["evolve", path, "--from-results", str(res), "-o", str(tmp_path / "new.space")]) == 2
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith(f"{res}: error: 6 bad rows: line 2:")
    for n, why in [(2, "not a finite number"), (3, "outside 0..100"), (4, "not a number"), (5, "not a JSON object"),
                   (6, "not JSON"), (7, "no `error` or `accuracy`")]:
        assert f"line {n}: " in first and why in first, why
    assert "line 1:" not in first and "Traceback" not in err


def test_cli_from_results_into_an_existing_folder_is_one_clean_error(tmp_path, capsys):
    path = os.path.join(EXAMPLES, "digits-s3.space")
    res = tmp_path / "results.jsonl"
    res.write_text(json.dumps({"arch": sl.load(path).min_arch(), "error": 10.0}) + "\n")
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["evolve", path, "--from-results", str(res), "-o", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a folder" in err
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f] and os.listdir(folder) == []
