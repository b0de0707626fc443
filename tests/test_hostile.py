"""Hostile input: every case gives one clean diagnostic naming the file, exit 2, no traceback,
quickly — through the real command line (``python -m spacelang check``)."""
import subprocess
import sys
import time

import pytest

from conftest import ROOT

SPACE_HEAD = "space x\ninput image 224 channels 3\nclasses 10\nstem patch_embed { patch 16 }\n"
SPACE_TAIL = "head linear { pool cls }\n"


def _stage(dim: str, heads: str = "3") -> str:
    return SPACE_HEAD + f"stage s {{\n  dim {dim}\n  block transformer {{ heads {heads}  mlp_ratio 4 }}\n}}\n" + SPACE_TAIL


CASES = {
    "binary": lambda p: open(p, "wb").write(bytes(range(256)) * 8),
    "invalid_utf8": lambda p: open(p, "wb").write(b"space x\n# caf\xe9 \xff\xfe\n"),
    "nested_brackets_lines": lambda p: open(p, "w").write("space x\nlet a = " + "(\n" * 20_000 + "1" + ")\n" * 20_000),
    "nested_brackets_one_line": lambda p: open(p, "w").write("space x\nlet a = " + "[" * 20_000 + "\n"),
    "five_mb_line": lambda p: open(p, "w").write("space x\n# " + "a" * 5_000_000 + "\n"),
    "absurd_integer": lambda p: open(p, "w").write(_stage("192", "99999999999999999999999")),
    "huge_range": lambda p: open(p, "w").write(_stage("1..10000000000000")),
    "python_code": lambda p: open(p, "w").write("import torch\n\n\ndef f(x):\n    return torch.relu(x)\n"),
    "unary_minus_chain": lambda p: open(p, "w").write("space x\nlet a = " + "-" * 5000 + "1\n"),
    "empty": lambda p: open(p, "w").write(""),
}


def _run(*args, timeout=30):
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "spacelang", *args], capture_output=True, text=True,
                       cwd=ROOT, timeout=timeout)
    return r, time.perf_counter() - t0


def _assert_one_clean_diagnostic(r, path, elapsed):
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out[-2000:]
    assert r.returncode == 2, out[-2000:]
    heads = [ln for ln in r.stderr.splitlines() if ln.startswith(path + ":") and ": error: " in ln]
    assert len(heads) == 1, out[-2000:]
    assert elapsed < 5, f"took {elapsed:.1f} s"
    return heads[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_hostile_file(case, tmp_path):
    path = str(tmp_path / f"{case}.space")
    CASES[case](path)
    r, elapsed = _run("check", path)
    head = _assert_one_clean_diagnostic(r, path, elapsed)
    expect = {"binary": "binary file", "invalid_utf8": "not valid UTF-8", "nested_brackets_lines": "nested more than",
              "five_mb_line": "limited to", "absurd_integer": "has 23 digits", "huge_range": "10,000,000,000,000 values",
              "python_code": "a .space file starts with `space NAME`", "unary_minus_chain": "nested more than",
              "nested_brackets_one_line": "characters long", "empty": "empty file"}[case]
    assert expect in head, head


def test_check_directory(tmp_path):
    d = tmp_path / "dir.space"
    d.mkdir()
    r, elapsed = _run("check", str(d))
    assert "is a directory" in _assert_one_clean_diagnostic(r, str(d), elapsed)


def test_check_missing_file(tmp_path):
    path = str(tmp_path / "missing.space")
    r, elapsed = _run("check", path)
    assert "no such file" in _assert_one_clean_diagnostic(r, path, elapsed)


@pytest.mark.parametrize("case", ["binary", "invalid_utf8", "python_code", "absurd_integer"])
def test_fmt_hostile_file_is_left_alone(case, tmp_path):
    path = str(tmp_path / f"{case}.space")
    CASES[case](path)
    before = open(path, "rb").read()
    r, elapsed = _run("fmt", path)
    _assert_one_clean_diagnostic(r, path, elapsed)
    assert open(path, "rb").read() == before
