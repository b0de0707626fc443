"""Checks the checker used to miss (issue 8): exclusive constraints, integral derived values,
one diagnostic per mistake, fields that do nothing, exact constraint bounds."""
from fractions import Fraction

import pytest

import spacelang as sl
from spacelang.search.where import Bounds

BASE = """space t
input image 32 channels 3
classes 10
stem patch_embed {{ patch 4 }}
stage s1 {{
  dim {dim}
  depth 1..2
  block transformer {{ {block} }}
}}
head linear {{ pool avg }}
{extra}
"""


def space_text(dim="{192, 256}", block="heads 3  mlp_ratio 2", extra=""):
    return BASE.format(dim=dim, block=block, extra=extra)


def diagnostics(text):
    with pytest.raises(sl.SpaceError) as info:
        sl.loads(text, "t.space")
    return info.value.diagnostics


def test_constraints_that_exclude_each_other_are_an_error_at_the_second():
    text = space_text(extra="constraint params >= 9M\nconstraint params <= 6M")
    (d,) = [d for d in diagnostics(text) if d.severity == "error"]
    assert d.span.line == 12
    assert "excludes the earlier bounds on params" in d.message
    assert "9M <= params <= 6M" in d.hint


def test_each_constraint_alone_is_fine():
    sl.loads(space_text(extra="constraint params >= 1K"), "t.space")
    sl.loads(space_text(extra="constraint params <= 60M"), "t.space")


def test_division_that_is_whole_at_every_choice_is_accepted():
    space = sl.loads(space_text(block="heads dim / 64  mlp_ratio 2"), "t.space")
    assert {space.resolve(a).stages[0].blocks[0].fields.heads
            for a in (space.min_arch(), space.max_arch())} == {3, 4}


def test_division_that_is_not_whole_is_refused_with_the_hint():
    (d,) = diagnostics(space_text(dim="{192, 200}", block="heads dim / 64  mlp_ratio 2"))
    assert "takes an integer" in d.message and "3.125" in d.message
    assert d.hint == "use // for integer division"


def test_one_mistake_one_diagnostic():
    # heads 5 does not divide qkv_dim 64 in every block, depth and width: one span, one error
    diags = diagnostics(space_text(block="heads 5  qkv_dim 64  mlp_ratio 2"))
    assert len(diags) == 1, [d.render() for d in diags]


def test_fields_that_do_nothing_are_warned_about_at_the_field():
    space = sl.loads(space_text(block="heads 3  mlp_ratio 2  shift half  rel_dist 3"), "t.space")
    warned = sorted((w.span.col, w.message.split()[0]) for w in space.warnings)
    assert [name for _, name in warned] == ["shift", "rel_dist"]


def test_splits_that_do_not_divide_the_map_are_an_error():
    (d,) = diagnostics(space_text(block="heads 3  mlp_ratio 2  splits 3"))
    assert "splits" in d.message


def test_window_error_names_the_input_resolution():
    (d,) = diagnostics(space_text(block="heads 3  mlp_ratio 2  window 3"))
    assert "8×8" in d.message and "input 32" in d.message


def test_constraint_bounds_are_exact_and_agree_with_where():
    space = sl.loads(space_text(extra="constraint params <= 8.2M"), "t.space")
    (c,) = space.constraints
    assert c.bound == 8_200_000 and isinstance(c.bound, int)
    assert Bounds.from_space(space) == Bounds.parse("params<=8.2M")
    assert Fraction(c.bound) == Fraction(8_200_000)


def test_absurd_constraint_bound_is_a_diagnostic():
    (d,) = diagnostics(space_text(extra="constraint params <= 1e400"))
    assert "out of range" in d.message or "quantity" in d.message


def test_mlp_ratio_zero_is_refused_at_the_choice():
    (d,) = diagnostics(space_text(block="heads 3  mlp_ratio {0, 2}"))
    assert "0 hidden units" in d.message and d.span.col > 0
