"""``spacelang count``: the range, and one arch's exact cost under both conventions."""
import json
import os

import spacelang as sl
from spacelang.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = os.path.join(ROOT, "spaces", "vit-resnas-tiny.space")
ARCH = os.path.join(ROOT, "spaces", "reference", "vit-resnas-t.arch.json")


def test_count_arch_gives_the_papers_macs_and_a_breakdown(capsys):
    assert main(["count", SPACE, "--arch", ARCH, "--convention", "macs", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["flops"] == 1_782_630_272  # ViT-ResNAS-Tiny, equal to the authors' estimator
    assert sum(r["flops"] for r in out["layers"]) == out["flops"]
    assert sum(r["params"] for r in out["layers"]) == out["params"]
    space = sl.load(SPACE)
    with open(ARCH) as f:
        arch = json.load(f)
    assert out["params"] == sl.cost(space, arch).params


def test_count_arch_accepts_a_best_json_and_refuses_a_foreign_arch(tmp_path, capsys):
    best = tmp_path / "best.json"
    with open(ARCH) as f:
        best.write_text(json.dumps({"arch": json.load(f), "accuracy": 1.0}))
    assert main(["count", SPACE, "--arch", str(best)]) == 0
    assert "40,793,552" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"encoder.dim": 192}))
    assert main(["count", SPACE, "--arch", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.json: error:" in err
