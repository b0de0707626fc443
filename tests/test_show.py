"""``spacelang show``: structure, every dimension with choices and scope, derived fields, size, cost."""
from __future__ import annotations

import glob
import json

import pytest

import spacelang as sl
from spacelang import cli

SPACES = sorted(glob.glob("spaces/*.space")) + sorted(glob.glob("examples/*.space"))


def _show(argv, capsys):
    code = cli.main(["show", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", SPACES)
def test_show_json_lists_every_dimension_and_the_size(path, capsys):
    space = sl.load(path)
    code, out, _ = _show([path, "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["name"] == space.name and info["subnets"] == space.size()
    assert [d["path"] for d in info["dimensions"]] == [d.path for d in space.dims]
    for d, dim in zip(info["dimensions"], space.dims):
        assert d["choices"] == list(dim.choices) and d["scope"] in ("space", "stage", "block")
    assert [s["name"] for s in info["stages"]] == [s.name for s in space.stages]
    lo, hi = space.cost_range()
    assert info["params"] == {"min": lo.params, "max": hi.params}
    assert info["flops"] == {"min": lo.flops, "max": hi.flops}


def test_show_text_of_autoformer_tiny(capsys):
    code, out, _ = _show(["spaces/autoformer-tiny.space"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "space autoformer_tiny  (spaces/autoformer-tiny.space)"
    assert "  stem    patch_embed  patch 16" in lines
    assert any(ln.split() == ["encoder.dim", "stage", "{192,", "216,", "240}", "step", "24"] for ln in lines)
    assert any(ln.split()[:3] == ["encoder.13.heads", "block", "{3,"] for ln in lines)
    from spacelang.ir import show
    qkv = sl.load("spaces/autoformer-tiny.space").stages[0].blocks[0].fields["qkv_dim"]
    assert "encoder.0.heads" in show(qkv) and f"  encoder.0.qkv_dim = {show(qkv)}" in lines  # a derived field
    assert "  params <= 9M" in lines
    assert "subnets  1,056,964,608 (1.057e+09)" in lines
    assert any(ln.startswith("params   5.27M – 10.4M") for ln in lines)


def test_show_of_a_broken_space_is_its_diagnostics(tmp_path, capsys):
    bad = tmp_path / "bad.space"
    bad.write_text("space x\n")
    code, out, err = _show([str(bad)], capsys)
    assert code == 2 and not out and "error" in err and "Traceback" not in err
