"""The formatter: canonical layout, comments kept where they were, proofs, and the CLI."""
import glob
import os
import stat
import subprocess
import sys

import pytest

import spacelang.fmt as F
from spacelang.diagnostics import SpaceError
from spacelang.fmt import format_source
from spacelang.parser import parse

from conftest import ROOT, SPACES

MESSY = """

# header comment

space   x   # after name
input image {192,224} channels 3
classes 10
let a = min(b,   # inside an expression
   4) // 2
let bb=2 # bb



template tt transformer { heads 3 mlp_ratio 4 }
stem patch_embed   # before the brace
{ patch 16 }
stage s { # open
  dim 3
  depth {1,2}  # d
  let q = -(a*2) - -3 + (a - (bb-1))

  block tt
  block transformer optional { heads 3 # h
     mlp_ratio 4.0 }
  repeat 2 { block t { } }   # rep
  repeat 2 { # r
     block t
     # in rep
  }
  # end of stage
}
head linear {} # h
constraint params <= 1.5M
# trailing
"""

MESSY_FORMATTED = """# header comment

space x     # after name
input image {192, 224} channels 3
classes 10
# inside an expression
let a  = min(b, 4) // 2
let bb = 2  # bb

template tt transformer { heads 3  mlp_ratio 4 }
# before the brace
stem patch_embed { patch 16 }
stage s {       # open
  dim   3
  depth {1, 2}  # d
  let q = -(a * 2) - -3 + (a - (bb - 1))

  block tt
  block transformer optional {
    heads     3            # h
    mlp_ratio 4.0
  }
  repeat 2 { block t {} }  # rep
  repeat 2 {               # r
    block t
    # in rep
  }
  # end of stage
}
head linear {}             # h
constraint params <= 1.5M
# trailing
"""


def _comments(text):
    return [c.text for c in parse(text).comments]


def test_messy_file_formats_to_the_canonical_layout():
    out = format_source(MESSY)
    assert out == MESSY_FORMATTED
    assert format_source(out) == out
    assert _comments(out) == _comments(MESSY)


@pytest.mark.parametrize("expr, canon", [
    ("(a + b) * c", "(a + b) * c"),
    ("a + (b * c)", "a + b * c"),
    ("a - (b - c)", "a - (b - c)"),
    ("(a - b) - c", "a - b - c"),
    ("a - (b + c)", "a - (b + c)"),
    ("a // (b * c)", "a // (b * c)"),
    ("(a * b) // c", "a * b // c"),
    ("-(a * b)", "-(a * b)"),
    ("(-a) * b", "-a * b"),
    ("a * -3", "a * -3"),
    ("a - -3", "a - -3"),
    ("- - a", "--a"),
    ("--3", "3"),
    ("max((a), min(b, (c + 1)), 2)", "max(a, min(b, c + 1), 2)"),
    ("((((a))))", "a"),
    ("a % (b % c)", "a % (b % c)"),
    ("1.50", "1.5"),
    ("1e-5 * 2", "1e-05 * 2"),
    ("2.0E3", "2000.0"),
    ("007", "7"),
])
def test_expressions_get_minimal_parentheses(expr, canon):
    out = format_source(f"space x\nlet v = {expr}\n")
    assert out == f"space x\nlet v = {canon}\n"


@pytest.mark.parametrize("value, canon", [
    ("{ 1,2 , 3, }", "{1, 2, 3}"),
    ("{7,14}step 7", "{7, 14} step 7"),
    ("1 .. 4", "1..4"),
    ("0.5..1.0 step 0.25", "0.5..1.0 step 0.25"),
    ("-2..2", "-2..2"),
    ("{true, false}", "{true, false}"),
    ("{cls,avg}", "{cls, avg}"),
    ("{-1.5, 2}", "{-1.5, 2}"),
])
def test_values(value, canon):
    assert format_source(f"space x let v = {value}") == f"space x\nlet v = {canon}\n"


def test_long_block_goes_one_field_per_line_aligned():
    fields = "  ".join(f"field_{i} {i * 1000}" for i in range(12))
    out = format_source(f"space x stage s {{ block transformer {{ {fields} }} }}")
    lines = out.splitlines()
    assert lines[2] == "  block transformer {"
    assert lines[3] == "    field_0  0"
    assert lines[13] == "    field_10 10000"
    assert lines[-2] == "  }"


def test_short_block_goes_on_one_line_and_consecutive_ones_align():
    src = "space x stage s { repeat 2 { block transformer { heads 1 }\nblock transformer optional {heads 2} } }"
    assert format_source(src) == (
        "space x\nstage s {\n  repeat 2 {\n"
        "    block transformer          { heads 1 }\n"
        "    block transformer optional { heads 2 }\n  }\n}\n")


def test_a_comment_inside_a_block_keeps_it_on_several_lines():
    out = format_source("space x\nstem patch_embed { patch 16  # p\n}\n")
    assert out == "space x\nstem patch_embed {\n  patch 16  # p\n}\n"
    out = format_source("space x\nstem patch_embed { patch 16 }  # p\n")
    assert out == "space x\nstem patch_embed { patch 16 }  # p\n"


def test_blank_lines_collapse_to_one_and_none_at_the_edges():
    out = format_source("\n\n\nspace x\n\n\n\nclasses 3\nstage s {\n\n  dim 3\n\n\n  depth 2\n\n}\n\n\n")
    assert out == "space x\n\nclasses 3\nstage s {\n  dim 3\n\n  depth 2\n}\n"


def test_bodiless_and_empty_bodies_are_kept_apart():
    out = format_source("space x stage s { downsample rsr  downsample rsr {} block t  block t { } }")
    assert out == "space x\nstage s {\n  downsample rsr\n  downsample rsr {}\n  block t\n  block t {}\n}\n"


def test_comment_only_body_and_comment_between_keyword_and_brace():
    src = "space x\nstem patch_embed {\n  # nothing yet\n}\nstage s # c\n{\n}\n"
    out = format_source(src)
    assert out == "space x\nstem patch_embed {\n  # nothing yet\n}\n# c\nstage s {\n}\n"
    assert _comments(out) == _comments(src)


def test_crlf_and_tabs():
    out = format_source("space x\r\n\tclasses 3\t# c\r\n")
    assert out == "space x\nclasses 3  # c\n"


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(SPACES, "*.space"))), ids=os.path.basename)
def test_library_spaces_format_safely_and_stably(path):
    text = open(path, encoding="utf-8").read()
    out = format_source(text, path)  # the proofs run inside
    assert format_source(out, path) == out


def test_a_failed_proof_refuses_with_an_internal_error(monkeypatch):
    real = F.print_tree

    def lossy(tree):
        return "\n".join(ln for ln in real(tree).splitlines() if not ln.lstrip().startswith("#")) + "\n"
    monkeypatch.setattr(F, "print_tree", lossy)
    with pytest.raises(SpaceError) as info:
        format_source("space x\n# keep me\nclasses 3\n", "f.space")
    msg = info.value.diagnostics[0].message
    assert msg.startswith("internal error") and "comments" in msg


def test_a_changed_tree_refuses(monkeypatch):
    monkeypatch.setattr(F, "print_tree", lambda tree: "space x\nclasses 4\n")
    with pytest.raises(SpaceError, match="syntax tree differs"):
        format_source("space x\nclasses 3\n")


def test_syntax_errors_are_diagnostics():
    with pytest.raises(SpaceError) as info:
        format_source("space x\nstage {\n", "bad.space")
    assert info.value.diagnostics[0].render().startswith("bad.space:2:7: error:")


# ------------------------------------------------------------------ CLI

def _fmt(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "spacelang", "fmt", *args], capture_output=True, text=True,
                          cwd=ROOT, input=stdin, timeout=60)


def test_cli_rewrites_in_place_keeping_the_mode(tmp_path):
    p = tmp_path / "a.space"
    p.write_text(MESSY)
    os.chmod(p, 0o640)
    r = _fmt(str(p))
    assert r.returncode == 0, r.stderr
    assert p.read_text() == MESSY_FORMATTED
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640
    assert [f.name for f in tmp_path.iterdir()] == ["a.space"]  # no temporary left behind
    r = _fmt(str(p))
    assert r.returncode == 0 and r.stdout == ""


def test_cli_check_lists_files_and_writes_nothing(tmp_path):
    a, b = tmp_path / "a.space", tmp_path / "b.space"
    a.write_text(MESSY)
    b.write_text(MESSY_FORMATTED)
    r = _fmt("--check", str(a), str(b))
    assert r.returncode == 1
    assert str(a) in r.stdout and str(b) not in r.stdout
    assert a.read_text() == MESSY
    assert _fmt("--check", str(b)).returncode == 0


def test_cli_diff_prints_a_unified_diff(tmp_path):
    a = tmp_path / "a.space"
    a.write_text(MESSY)
    r = _fmt("--diff", str(a))
    assert r.returncode == 0
    assert "+++ " in r.stdout and "-space   x   # after name" in r.stdout and "+space x     # after name" in r.stdout
    assert a.read_text() == MESSY


def test_cli_parse_error_exits_2_and_leaves_the_file(tmp_path):
    a = tmp_path / "a.space"
    a.write_text("space x\nstage {\n")
    r = _fmt(str(a))
    assert r.returncode == 2 and f"{a}:2:7: error:" in r.stderr and "Traceback" not in r.stderr
    assert a.read_text() == "space x\nstage {\n"


def test_cli_stdin_to_stdout():
    r = _fmt("-", stdin=MESSY)
    assert r.returncode == 0 and r.stdout == MESSY_FORMATTED
