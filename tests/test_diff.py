"""The semantic diff: dimensions, choices, derived fields, kinds, constraints, sizes."""
import json
import os
import subprocess
import sys

import spacelang as sl
from spacelang.diff import diff_spaces

from conftest import ROOT, SPACES

TINY = os.path.join(SPACES, "autoformer-tiny.space")
SMALL = os.path.join(SPACES, "autoformer-small.space")

BASE = """space v
input image 224 channels 3
classes 10
stem patch_embed { patch 16 }
stage encoder {
  dim   192..240 step 24
  depth 2..4
  block transformer { heads 3..4  head_dim 64  qkv_dim heads * head_dim  mlp_ratio {3.5, 4} }
}
head linear { pool cls }
constraint params <= 9M
"""


def _diff(a_text, b_text):
    return diff_spaces(sl.loads(a_text, "a.space"), sl.loads(b_text, "b.space"))


def test_identical_and_equivalent_spaces_have_no_differences():
    d = _diff(BASE, BASE)
    assert d.identical and "no semantic differences" in d.render()
    # a different spelling of the same space: a constant let, names inlined, choices reordered
    same = BASE.replace("head_dim 64  qkv_dim heads * head_dim", "head_dim hd  qkv_dim heads * (2 * 32)") \
        .replace("mlp_ratio {3.5, 4}", "mlp_ratio {4, 3.5}").replace("classes 10", "classes 10\nlet hd = 64")
    assert _diff(BASE, same).identical


def test_choices_changed_collapse_per_block():
    d = _diff(BASE, BASE.replace("heads 3..4", "heads 3..5"))
    (e,) = d.sections["choices_changed"]
    assert (e.path, e.blocks, e.old, e.new) == ("encoder.*.heads", [0, 1, 2, 3], "{3, 4}", "{3, 4, 5}")
    assert "encoder.*.heads  blocks 0–3  {3, 4} → {3, 4, 5}" in d.render()
    assert d.b_size > d.a_size


def test_dimensions_added_and_removed_with_the_fixed_value():
    d = _diff(BASE, BASE.replace("mlp_ratio {3.5, 4}", "mlp_ratio 4  rel_pos {false, true}"))
    added = {e.path: e for e in d.sections["dimensions_added"]}
    removed = {e.path: e for e in d.sections["dimensions_removed"]}
    assert added["encoder.*.rel_pos"].blocks == [0, 1, 2, 3]
    assert added["encoder.*.rel_pos"].note == "was false"  # the kind's default
    assert removed["encoder.*.mlp_ratio"].note == "now 4"
    assert d.a_size == d.b_size


def test_derived_expression_changed():
    d = _diff(BASE, BASE.replace("head_dim 64", "head_dim 32"))
    fields = {e.path: e for e in d.sections["fields_changed"]}
    assert (fields["encoder.*.qkv_dim"].old, fields["encoder.*.qkv_dim"].new) == ("heads * 64", "heads * 32")
    assert (fields["encoder.*.head_dim"].old, fields["encoder.*.head_dim"].new) == ("64", "32")


def test_kinds_layers_and_constraints():
    b = BASE.replace("head linear { pool cls }", "head mbpool { width 64 }") \
        .replace("depth 2..4", "depth 2..5").replace("constraint params <= 9M", "constraint flops <= 2G")
    d = _diff(BASE, b)
    assert [(e.path, e.old, e.new) for e in d.sections["kinds_changed"]] == [("head", "linear", "mbpool")]
    assert [e.path for e in d.sections["layers_added"]] == ["encoder.4"]
    assert [e.path for e in d.sections["constraints_added"]] == ["flops <= 2G"]
    assert [e.path for e in d.sections["constraints_removed"]] == ["params <= 9M"]
    assert any(e.path == "encoder.depth" for e in d.sections["choices_changed"])


def test_sizes_and_ratio_of_the_library_spaces():
    a, b = sl.load(TINY), sl.load(SMALL)
    d = diff_spaces(a, b)
    assert (d.a_size, d.b_size) == (a.size(), b.size())
    assert abs(d.ratio - b.size() / a.size()) < 1e-9 * d.ratio
    paths = {e.path for e in d.sections["choices_changed"]}
    assert {"encoder.dim", "encoder.*.heads", "encoder.*.mlp_ratio"} <= paths


def test_cli_text_and_json():
    r = subprocess.run([sys.executable, "-m", "spacelang", "diff", TINY, SMALL], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "choices changed" in r.stdout and "encoder.*.heads" in r.stdout and "subnets" in r.stdout
    r = subprocess.run([sys.executable, "-m", "spacelang", "diff", "--json", TINY, SMALL], capture_output=True,
                       text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["a"]["subnets"] == sl.load(TINY).size() and out["b"]["subnets"] == sl.load(SMALL).size()
    heads = next(e for e in out["choices_changed"] if e["path"] == "encoder.*.heads")
    assert heads["blocks"] == list(range(14)) and heads["new"] == "{5, 6, 7}"


def test_cli_error_exits_2(tmp_path):
    bad = tmp_path / "bad.space"
    bad.write_text("space x\n")
    r = subprocess.run([sys.executable, "-m", "spacelang", "diff", TINY, str(bad)], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr and str(bad) in r.stderr
