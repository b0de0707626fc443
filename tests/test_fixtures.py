"""Golden fixtures: valid spaces are canonical (format to themselves) and load; each invalid
space reports exactly the diagnostics in its ``.expected`` file: the whole rendered output as the
CLI prints it (``file:line:col: error: message``, the source line, the caret line, the hint
line), with the path as the test passes it.

To regenerate an expected file after a deliberate change of a message, write
``SpaceError.render()`` of the fixture plus a newline, and review the difference by eye."""
import glob
import os

import pytest

import spacelang as sl
from spacelang.fmt import format_source

from conftest import ROOT

VALID = sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "valid", "*.space")))
INVALID = sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "invalid", "*.space")))


def _rel(path: str) -> str:
    return os.path.relpath(path, ROOT)


def test_fixture_sets_are_not_empty():
    assert len(VALID) >= 4 and len(INVALID) >= 15


@pytest.mark.parametrize("path", VALID, ids=lambda p: os.path.basename(p))
def test_valid_fixture_is_canonical(path):
    text = open(path, encoding="utf-8").read()
    assert format_source(text, _rel(path)) == text


@pytest.mark.parametrize("path", VALID, ids=lambda p: os.path.basename(p))
def test_valid_fixture_loads(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    space = sl.load(_rel(path))
    assert space.size() >= 1
    assert not [w for w in space.warnings if w.severity == "error"]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: os.path.basename(p))
def test_invalid_fixture_reports_expected(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    rel = _rel(path)
    expected_file = path[: -len(".space")] + ".expected"
    assert os.path.exists(expected_file), f"{rel} has no .expected file"
    expected = open(expected_file, encoding="utf-8").read()
    assert expected.strip(), f"{expected_file} is empty"
    with pytest.raises(sl.SpaceError) as info:
        sl.load(rel)
    assert info.value.render() + "\n" == expected


def test_expected_files_all_have_a_space():
    for exp in glob.glob(os.path.join(ROOT, "tests", "fixtures", "invalid", "*.expected")):
        assert os.path.exists(exp[: -len(".expected")] + ".space"), exp


def test_every_grammar_feature_is_in_the_valid_fixtures():
    """The valid fixtures together use every construct of the grammar."""
    text = "\n".join(open(p, encoding="utf-8").read() for p in VALID)
    for needle in ("template ", "repeat ", " optional", "depth ", "downsample ", "let ", "min(", "max(",
                   "//", " step ", "..", "constraint params", "constraint flops", "K\n", "M ", "G\n",
                   "true", "false", "input image {", "  let "):
        assert needle in text, needle
    import re
    assert re.search(r"\d+\.\d+\.\.\d+\.\d+ step", text), "a float range"
    assert re.search(r"^\s*#", text, re.M) and re.search(r"\S\s+#", text), "full-line and end-of-line comments"
