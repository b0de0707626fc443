"""Predictor-guided search (NASViT Appendix C.1, Algorithm 2): features, the random-forest fit
and its held-out report, evolution on predicted accuracy, and `search --strategy predictor`."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

import spacelang as sl
from spacelang.search.predictor import (INACTIVE, PredictorConfig, encode, feature_names, fit_predictor,
                                        predicted_evolution, thin_front)
from spacelang.search.where import Bounds
from spacelang.util.archkey import arch_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits.space")


@pytest.fixture(scope="module")
def space():
    return sl.load(DIGITS)


def _score(space, arch) -> float:
    """A made-up accuracy that grows with the widths and depths (as a supernet's tends to)."""
    x = encode(space, [arch])[0]
    return float(50 + 3 * (x[x >= 0]).sum() + 0.5 * (x < 0).sum())


def test_one_column_per_dimension_and_inactive_dims_are_marked(space):
    small, big = space.min_arch(), space.max_arch()
    x = encode(space, [small, big])
    assert x.shape == (2, len(space.dims)) and feature_names(space) == [d.path for d in space.dims]
    assert (x[1] >= 0).all()  # the largest arch holds every dimension
    absent = [i for i, d in enumerate(space.dims) if d.path not in small]
    assert absent and all(x[0, i] == INACTIVE for i in absent)  # blocks beyond the smallest depth
    assert all(x[0, i] == 0 for i, d in enumerate(space.dims) if d.path in small)  # smallest choices first


def test_fit_reports_held_out_tau_and_rmse(space):
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(200)]
    accs = [_score(space, a) for a in archs]
    pred, fit = fit_predictor(space, archs, accs, trees=50, seed=1)
    assert fit["train"] == fit["held_out"] == 100
    import statistics
    assert fit["tau"] >= 0.6 and fit["rmse"] < 0.8 * statistics.pstdev(accs)  # beats predicting the mean
    again = fit_predictor(space, archs, accs, trees=50, seed=1)[1]
    assert again == fit  # a function of the seed
    from spacelang.errors import SearchError
    with pytest.raises(SearchError, match="at least 4"):
        fit_predictor(space, archs[:3], accs[:3])


def test_predicted_evolution_stays_in_band_skips_measured_and_is_seeded(space):
    rng = random.Random(1)
    measured = [space.sample(rng) for _ in range(60)]
    pred, _ = fit_predictor(space, measured, [_score(space, a) for a in measured], trees=20)
    cfg = PredictorConfig(population=40, iterations=3, parents=8, crossovers=10, mutations=10, bins=2)
    bounds = Bounds.parse(["params<=200K"])
    got = predicted_evolution(space, pred.predict, cfg, seed=3, bounds=bounds, exclude=measured)
    keys = [arch_json(r["arch"]) for r in got]
    assert len(keys) == len(set(keys)) and not set(keys) & {arch_json(a) for a in measured}
    assert 40 < len(got) <= 40 + 3 * 20
    assert all(r["params"] <= 200_000 for r in got) and {r["generation"] for r in got} == {0, 1, 2, 3}
    # the bred generations beat the random first one on predicted accuracy
    first = [r["predicted"] for r in got if r["generation"] == 0]
    last = [r["predicted"] for r in got if r["generation"] == 3]
    assert max(last) >= max(first) - 1e-9 and sum(last) / len(last) > sum(first) / len(first)
    again = predicted_evolution(space, pred.predict, cfg, seed=3, bounds=bounds, exclude=measured)
    assert [r["arch"] for r in again] == [r["arch"] for r in got]


def test_thin_front_keeps_both_ends():
    rows = [{"flops": f, "predicted": p} for f, p in [(1, 10), (2, 12), (3, 11), (4, 15), (5, 16), (6, 18), (7, 19)]]
    front = thin_front(rows, 3)
    assert [r["flops"] for r in front] == [1, 4, 7]  # front 1,2,4,5,6,7 thinned evenly
    assert len(thin_front(rows, 100)) == 6


def test_flags_map_onto_the_config():
    s = PredictorConfig.settings_from_flags(samples=64, generations=5, children=9, front=4)
    assert s == {"samples": 64, "iterations": 5, "crossovers": 5, "mutations": 4, "front": 4}
    assert PredictorConfig(**s).population == 1024 and PredictorConfig().iterations == 40


def test_the_library_imports_no_torch():
    code = "import sys, spacelang.search.predictor; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


SPACE = """space tiny
input image 8 channels 1
classes 4
stem patch_embed { patch 2 }
stage s1 {
  dim {8, 16}
  depth 1..3
  block transformer { heads {1, 2}  head_dim 4  mlp_ratio {1, 2} }
}
head linear { pool avg }
"""


def test_cli_predictor_search_marks_rows_and_resumes(tmp_path, capsys, one_torch_thread):
    pytest.importorskip("torch")
    from spacelang.cli import main
    space_file = tmp_path / "tiny.space"
    space_file.write_text(SPACE)
    run, out = str(tmp_path / "run"), str(tmp_path / "out")
    assert main(["train", str(space_file), "-o", run, "--data", "synthetic", "--epochs", "1", "--no-progress"]) == 0
    args = ["search", run, "-o", out, "--strategy", "predictor", "--samples", "12", "--population", "16",
            "--generations", "2", "--children", "8", "--front", "3", "--no-plot", "--seed", "2"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "Kendall tau" in err and "predicted evolution" in err
    rows = [json.loads(line) for line in open(os.path.join(out, "results.jsonl"))]
    measured = [r for r in rows if r.get("source") == "measured"]
    predicted = [r for r in rows if r.get("source") == "predicted"]
    assert len(measured) + len(predicted) == len(rows) and 12 < len(measured) <= 15 and predicted
    assert all("accuracy" in r for r in measured) and all("accuracy" not in r and "predicted_accuracy" in r
                                                          for r in predicted)
    report = json.load(open(os.path.join(out, "predictor.json")))
    assert {"fit", "front", "front_tau", "front_rmse", "candidates", "seconds", "settings"} <= set(report)
    assert report["fit"]["train"] == 6 and all({"predicted", "measured"} <= set(r) for r in report["front"])
    best = json.load(open(os.path.join(out, "best.json")))
    assert best["strategy"] == "predictor"
    assert main(args) == 0  # again: everything cached, the same result
    assert json.load(open(os.path.join(out, "best.json"))) == best
    again = [json.loads(line) for line in open(os.path.join(out, "results.jsonl"))]
    assert sorted(arch_json(r["arch"]) for r in again if r.get("source") == "measured") == \
        sorted(arch_json(r["arch"]) for r in measured)
