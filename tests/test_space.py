"""The Space API: exact sizes, sampling, validation, extreme archs, input shapes, a light `check`."""
import itertools
import os
import random
import subprocess
import sys
import time

import pytest

import spacelang as sl

from conftest import ROOT, SPACES

TINY = os.path.join(SPACES, "autoformer-tiny.space")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "valid")

HEAD = "space t\ninput image 32 channels 3\nclasses 10\nstem patch_embed { patch 16 }\n"
TAIL = "head linear { pool cls }\n"


def brute_size(space) -> int:
    """Distinct canonical archs over every assignment of every dimension (small spaces only)."""
    dims = list(space.dims)
    seen = set()
    for values in itertools.product(*[d.choices for d in dims]):
        full = dict(zip([d.path for d in dims], values))
        canon = {p: full[p] for p in space.active_paths(full)}
        assert space.validate(canon) == dict(sorted(canon.items()))
        seen.add(tuple(sorted(canon.items())))
    return len(seen)


@pytest.fixture(scope="module")
def tiny():
    return sl.load(TINY)


def test_autoformer_tiny_size(tiny):
    assert tiny.size() == 3 * (4 ** 12 + 4 ** 13 + 4 ** 14)


def test_optional_blocks_counted_exactly():
    space = sl.loads(HEAD + """stage s {
  dim 16
  repeat 2 {
    block transformer          { heads {1, 2}  head_dim 8  mlp_ratio 1 }
    block transformer optional { heads {1, 2}  head_dim 8  mlp_ratio 1 }
  }
}
""" + TAIL)
    assert space.size() == 2 * 3 * 2 * 3 == brute_size(space)


def test_a_let_shared_by_optional_blocks_counts_once_when_used():
    space = sl.loads(HEAD + """stage s {
  dim 16
  let r = {1, 2, 4}
  block transformer          { heads 1  head_dim 8  mlp_ratio 1 }
  block transformer optional { heads 1  head_dim 8  mlp_ratio r }
  block transformer optional { heads 1  head_dim 8  mlp_ratio r }
}
""" + TAIL)
    # both skipped: 1 arch (r inactive); otherwise 3 presence patterns × 3 values of r
    assert space.size() == 1 + 3 * 3 == brute_size(space)


def test_a_space_let_used_only_beyond_a_depth():
    space = sl.loads(HEAD + """let r = {1, 2}
stage s {
  dim   16
  depth {1, 2, 3}
  block transformer { heads 1  head_dim 8  mlp_ratio 1 }
  block transformer { heads {1, 2}  head_dim 8  mlp_ratio 1 }
  block transformer { heads 1  head_dim 8  mlp_ratio r }
}
""" + TAIL)
    assert space.size() == 1 + 2 + 2 * 2 == brute_size(space)


@pytest.mark.parametrize("name", ["global.space", "hierarchical.space", "convnet.space"])
def test_fixture_sizes_match_brute_force(name):
    space = sl.load(os.path.join(FIXTURES, name))
    assert space.size() == brute_size(space)


def test_sample_is_deterministic_with_a_seed(tiny):
    a = [tiny.sample(random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    archs = [tiny.sample(random.Random(seed)) for seed in range(20)]
    assert len({tuple(sorted(x.items())) for x in archs}) > 1
    for x in archs:
        assert tiny.validate(x) == x
        assert list(x) == sorted(x)  # canonical: sorted keys
    with pytest.raises(TypeError):
        tiny.sample(7)


def test_validate_names_the_path(tiny):
    arch = tiny.max_arch()
    cases = [
        ({k: v for k, v in arch.items() if k != "encoder.3.heads"}, "encoder.3.heads", "missing"),
        ({**arch, "encoder.depth": 12}, "encoder.12.heads", "beyond depth 12"),
        ({**arch, "encoder.0.heads": 5}, "encoder.0.heads", "5 is not one of {3, 4}"),
        ({**arch, "encoder.0.haeds": 3}, "encoder.0.haeds", "did you mean encoder.0.heads?"),
        ({**arch, "encoder.0.heads": True}, "encoder.0.heads", "not one of"),
    ]
    for bad, path, words in cases:
        with pytest.raises(sl.ArchError) as info:
            tiny.validate(bad)
        assert info.value.path == path and words in str(info.value), str(info.value)
    with pytest.raises(sl.ArchError):
        tiny.validate([1, 2])


def test_max_and_min_arch(tiny):
    hi, lo = tiny.max_arch(), tiny.min_arch()
    assert hi["encoder.depth"] == 14 and hi["encoder.dim"] == 240
    assert all(hi[f"encoder.{i}.heads"] == 4 and hi[f"encoder.{i}.mlp_ratio"] == 4.0 for i in range(14))
    assert lo["encoder.depth"] == 12 and lo["encoder.dim"] == 192
    assert "encoder.12.heads" not in lo and "encoder.13.heads" in hi
    assert tiny.validate(hi) == hi and tiny.validate(lo) == lo
    opt = sl.load(os.path.join(FIXTURES, "templates.space"))
    assert opt.max_arch()["s1.1.present"] is True and opt.min_arch()["s1.1.present"] is False


def test_input_shape():
    space = sl.load(os.path.join(FIXTURES, "hierarchical.space"))
    for res in (112, 224):
        arch = {**space.min_arch(), "input.resolution": res}
        assert space.input_shape(arch) == (3, res, res)


def test_check_is_fast_and_never_imports_torch():
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "spacelang", "check", TINY],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-2000:]
    imported = [ln.rsplit("|", 1)[-1].strip() for ln in r.stderr.splitlines() if ln.startswith("import time:")]
    assert imported and not [m for m in imported if m.split(".")[0] in ("torch", "timm", "fvcore")]
    assert "ok" in r.stdout
    assert elapsed < 5, f"check took {elapsed:.1f} s"
