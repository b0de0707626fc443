"""Greedy auto-scaling (As-ViT Algorithm 2) and the fixed .space files it writes."""
import json
import os

import pytest

from spacelang.cost import cost
from spacelang.errors import SearchError
from spacelang.search.autoscale import Network, Scaler, rank_sum_choice, ranks, run_autoscale
from spacelang.search.fixspace import fixed_source, fixed_space
from spacelang.space import load, loads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASVIT = os.path.join(ROOT, "spaces", "asvit-topology.space")
DIGITS_ASVIT = os.path.join(ROOT, "examples", "digits-asvit.space")
#: Table 4's seed topology
SEED = {"stem.kernel": 8, "s2.downsample.kernel": 4, "s3.downsample.kernel": 4, "s4.downsample.kernel": 4,
        "s1.split": 2, "s2.split": 1, "s3.split": 1, "s1.ffn": 3, "s2.ffn": 2, "s3.ffn": 4, "s4.ffn": 6, "final_heads": 32}
DIGITS_SEED = {"final_heads": 8, "stem.kernel": 6, "s1.split": 2, "s1.ffn": 3, "s2.downsample.kernel": 3,
               "s2.split": 1, "s2.ffn": 4, "s3.downsample.kernel": 3, "s3.ffn": 6}


def fake_evaluate(space):
    """A deterministic stand-in for the proxies: L_E grows with width, κ with depth."""
    net = space.resolve(space.min_arch())
    width = sum(st.dim * len(st.blocks) for st in net.stages)
    depth = sum(len(st.blocks) * (i + 1) for i, st in enumerate(net.stages))
    return {"length_distortion": width / 100, "ntk_condition": depth}


def test_ranks_share_ties_and_rank_sum_picks_the_first_best():
    assert ranks([3.0, 1.0, 3.0, 2.0], descending=True) == [1.5, 4.0, 1.5, 3.0]
    assert ranks([3.0, 1.0, 2.0], descending=False) == [3.0, 1.0, 2.0]
    rows = [{"le": 1.0, "k": 5.0}, {"le": 3.0, "k": 9.0}, {"le": 2.0, "k": 1.0}, {"le": 3.0, "k": 9.0}]
    best, sums = rank_sum_choice(rows, {"le": 1, "k": -1})
    assert best == 2 and sums == [6.0, 5.0, 4.0, 5.0]


def test_widths_stay_divisible_by_every_stages_heads():
    s = Scaler(load(ASVIT), SEED)
    assert (s.unit, s.ratios, s.heads, s.seed) == (4, [1, 2, 4, 8], [4, 8, 16, 32], Network(32, (1, 1, 1, 1)))
    assert [s.widen(32, f) for f in (1.05, 1.1, 1.15, 1.2)] == [36, 36, 36, 40]
    assert s.widen(88, 1.2) == 104  # 105.6 → nearest multiple of 4
    cands = s.candidates(Network(88, (3, 1, 4, 2)), (1.05, 1.2))
    assert len(cands) == 8 and cands[0][:2] == (1.05, 0) and cands[4][:2] == (1.2, 0)
    for _, _, net in cands:
        assert all(w % h == 0 for w, h in zip(s.widths(net), s.heads))


def test_fixed_file_of_asvit_small_keeps_the_text_and_has_one_arch():
    space = load(ASVIT)
    text = fixed_source(space, SEED, widths=[88, 176, 352, 704], depths=[3, 1, 4, 2], name="asvit_small",
                        header="As-ViT-S (Table 4)")
    assert text.startswith("# As-ViT-S (Table 4)\n#\n# As-ViT topology search space.")
    assert "let final_heads = 32\n" in text and "  dim 88                 # C\n  depth 3\n" in text
    small = fixed_space(space, SEED, widths=[88, 176, 352, 704], depths=[3, 1, 4, 2], name="asvit_small")
    assert small.size() == 1 and small.name == "asvit_small"
    # the authors' code's 28.78M exactly, and spaces/reference/asvit-s.space's count
    assert cost(small, small.min_arch()).params == 28_775_328
    reference = load(os.path.join(ROOT, "spaces", "reference", "asvit-s.space"))
    assert cost(small, small.min_arch()) == cost(reference, reference.min_arch())


def test_a_dimension_written_once_with_two_values_cannot_be_fixed():
    space = loads("""space t
input image 16 channels 3
classes 4
stem patch_embed { patch 4 }
stage s1 {
  dim 16
  depth 2
  block transformer { heads {1, 2}  head_dim 8  mlp_ratio 2 }
}
head linear { pool avg }
""")
    with pytest.raises(SearchError, match="written once"):
        fixed_source(space, {"s1.0.heads": 1, "s1.1.heads": 2})
    assert "heads 2  head_dim" in fixed_source(space, {"s1.0.heads": 2, "s1.1.heads": 2})


def test_scaling_loop_stops_at_the_limit_and_resumes(tmp_path):
    space = load(DIGITS_ASVIT)
    calls = []

    def counting(s):
        calls.append(s)
        return fake_evaluate(s)
    r = run_autoscale(space, DIGITS_SEED, counting, 700_000, str(tmp_path), plot=False)
    params = [row["params"] for row in r.rows]
    assert params[-1] >= 700_000 > params[-2] and params == sorted(params)
    assert len(calls) == 1 + 16 * 0 + 12 * (len(r.rows) - 1)  # 4 factors × 3 stages per step
    for row in r.rows[1:]:
        cands = row["candidates"]
        best = min(cands, key=lambda c: c["rank_sum"])
        assert (row["choice"]["factor"], row["choice"]["stage"]) == (best["factor"], best["stage"])
    for row in r.rows:
        fixed = load(str(tmp_path / f"step_{row['step']:02d}.space"))
        assert fixed.size() == 1 and cost(fixed, fixed.min_arch()).params == row["params"]
    saved = json.loads((tmp_path / "trajectory.json").read_text())
    assert [s["depths"] for s in saved["steps"]] == [row["depths"] for row in r.rows]
    assert (tmp_path / "trajectory.md").read_text().count("\n") == len(r.rows) + 2
    again = run_autoscale(space, DIGITS_SEED, lambda s: pytest.fail("resumed run re-scored"), 700_000,
                          str(tmp_path), plot=False)
    assert again.rows == r.rows
    with pytest.raises(SearchError, match="another scaling run"):
        run_autoscale(space, DIGITS_SEED, fake_evaluate, 900_000, str(tmp_path), plot=False)


def test_scale_command_end_to_end(tmp_path, capsys):
    pytest.importorskip("torch")
    from spacelang.cli import main
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({**DIGITS_SEED, "s1.split": 1}))
    out = tmp_path / "out"
    rc = main(["scale", DIGITS_ASVIT, "--arch", str(seed), "--until", "params=430K", "-o", str(out),
               "--inits", "1", "--threads", "1", "--factors", "1.2"])
    assert rc == 0, capsys.readouterr().err
    assert (out / "trajectory.png").stat().st_size > 0 and (out / "step_01.space").exists()
    assert main(["scale", DIGITS_ASVIT, "--arch", str(seed), "--until", "flops=1G", "-o", str(out)]) == 2
