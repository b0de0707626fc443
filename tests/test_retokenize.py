"""Elastic patch_embed kernels, dilation, and progressive re-tokenization (As-ViT §4)."""
from __future__ import annotations

import csv
import itertools
import json
import os

import pytest

import spacelang as sl
from spacelang.cli import main
from spacelang.errors import OptionError, SpaceError

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore.nn")
import torch.nn.functional as F  # noqa: E402

from fvcounting import fvcore_flops, numel  # noqa: E402
from spacelang.compiler import build_supernet  # noqa: E402
from spacelang.compiler import retokenize as rt  # noqa: E402
from spacelang.compiler.ops.patch_embed import sub_window  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# As-ViT's stem and re-embedding, elastic kernels with odd and even differences, and dilation
ELASTIC = """\
space elastic_embed
input image 16 channels 3
classes 4
stem patch_embed {
  patch 4  kernel {4, 5, 6, 7, 8}  dilation {1, 2}  norm true  pos none
  padding (dilation * (kernel - 1) + 1 - patch + 1) // 2
}
stage s1 {
  dim {8, 16}
  block transformer { heads 2  qkv_dim dim  mlp_ratio 2 }
}
stage s2 {
  downsample patch_embed {
    patch 2  kernel {2, 3, 4}  dilation {1, 2}  pos none  norm_before true
    padding (dilation * (kernel - 1) + 1 - patch + 1) // 2
  }
  dim 16
  block transformer { heads 2  qkv_dim dim  mlp_ratio 2 }
}
head linear { pool avg }
"""

# a digits-sized As-ViT-like network (32×32 → 8×8 → 4×4 tokens) that a 3-phase schedule fits
TINY_ASVIT = """\
space tiny_asvit
input image 32 channels 1
classes 4
stem patch_embed {
  patch   4
  kernel  {4, 5}
  padding (kernel - patch + 1) // 2
  norm    true
  pos     none
}
stage s1 {
  dim 16
  block transformer { heads 2  qkv_dim dim  mlp_ratio 2  splits 2 }
}
stage s2 {
  downsample patch_embed { patch 2  kernel 3  padding (kernel - patch + 1) // 2  norm true  pos none  norm_before true }
  dim 32
  block transformer { heads 2  qkv_dim dim  mlp_ratio 2 }
}
head linear { pool avg }
"""

SCHEDULE = "1-2:16,5 3:8,2 4-:4,1"


def _arch(space, **given):
    arch = dict(space.max_arch())
    for k, v in given.items():
        arch[next(p for p in arch if p.endswith(k))] = v
    return space.validate(arch)


# ---------------------------------------------------------------------------------------------- elastic kernel
def _archs():
    space = sl.loads(ELASTIC)
    out = []
    for k1, d1, k2, d2 in itertools.product((4, 5, 7, 8), (1, 2), (2, 3), (1, 2)):
        a = dict(space.max_arch())
        a.update({"stem.kernel": k1, "stem.dilation": d1, "s2.downsample.kernel": k2, "s2.downsample.dilation": d2})
        out.append(a)
    return space, out


def test_elastic_kernel_and_dilation_extract_exactly_and_cost_is_fvcore():
    space, archs = _archs()
    assert {"stem.kernel", "s2.downsample.dilation"} <= {d.path for d in space.dims}
    torch.manual_seed(0)
    net = build_supernet(space).eval()
    x = torch.randn(2, 3, 16, 16)
    for a in archs[::3] + [archs[-1]]:
        with torch.no_grad():
            y, sub = net(x, a), net.extract(a).eval()
            assert (y - sub(x)).abs().max().item() <= 1e-5, a
        c = sl.cost(space, a)
        assert c.params == numel(sub), a
        assert c.flops == fvcore_flops(sub, torch.zeros(1, 3, 16, 16), sdpa=False), a


def test_sub_window_offset_is_half_the_difference_rounded_down():
    w = torch.arange(64.0).view(1, 1, 8, 8)
    assert torch.equal(sub_window(w, 8), w)
    assert torch.equal(sub_window(w, 5), w[..., 1:6, 1:6])   # odd difference: (8 - 5) // 2 = 1
    assert torch.equal(sub_window(w, 4), w[..., 2:6, 2:6])   # even difference: centred
    assert sub_window(w, 7).shape[-1] == 7 and sub_window(w, 7)[0, 0, 0, 0] == 0


@pytest.mark.parametrize("largest, stride", [(8, 4), (4, 2)])  # As-ViT's K1 at stride 4 and K2..4 at stride 2
def test_sub_kernel_sees_the_pixels_a_standalone_kernel_sees(largest, stride):
    """With As-ViT's padding (k − s + 1) // 2, the k-sub-window is the largest kernel with the other
    taps zeroed: each shared tap reads the same pixel as in the largest kernel."""
    torch.manual_seed(0)
    x, w = torch.randn(1, 2, 24, 24), torch.randn(3, 2, largest, largest)
    pad = lambda k: (k - stride + 1) // 2  # noqa: E731
    for k in range(stride, largest + 1):
        mask = torch.zeros(largest, largest)
        o = (largest - k) // 2
        mask[o:o + k, o:o + k] = 1
        a = F.conv2d(x, sub_window(w, k), stride=stride, padding=pad(k))
        b = F.conv2d(x, w * mask, stride=stride, padding=pad(largest))
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5), k


def test_dilation_sizes_and_refusals():
    def stem(fields, size=32):
        return sl.loads(f"space t\ninput image {size} channels 1\nclasses 2\nstem patch_embed {{ {fields} }}\n"
                        f"stage s {{ dim 8  block transformer {{ heads 1  qkv_dim 8  mlp_ratio 1 }} }}\n"
                        f"head linear {{ pool avg }}\n")
    f = stem("patch 4  stride 16  dilation 5  pos none").resolve({}).stem.fields
    assert (f.size, f.padding) == (2, 0)           # floor((32 - 5·3 - 1) / 16) + 1; the kernel (4) < stride is fine
    f = stem("patch 4  stride 8  dilation 2  padding 1  pos none").resolve({}).stem.fields
    assert f.size == (32 + 2 - 2 * 3 - 1) // 8 + 1
    with pytest.raises(SpaceError, match="kernel 4 at dilation 12 spans 37 pixels, more than the 32×32 input with padding 0"):
        stem("patch 4  dilation 12  padding 0  pos none")
    with pytest.raises(SpaceError, match="kernel 2 is smaller than stride 4"):
        stem("patch 4  kernel 2  pos none")


def test_asvit_arch_with_a_smaller_first_kernel_runs_and_extracts():
    space = sl.load(os.path.join(os.path.dirname(__file__), "..", "examples", "digits-asvit.space"))
    torch.manual_seed(0)
    net = build_supernet(space).eval()
    x = torch.randn(2, *space.input_shape(space.max_arch()))
    for k1 in (4, 5, 6, 7):
        a = _arch(space, **{"stem.kernel": k1})
        with torch.no_grad():
            assert (net(x, a) - net.extract(a).eval()(x)).abs().max().item() <= 1e-5


def test_model_py_follows_the_sub_kernel_and_dilation(tmp_path):
    """model.py (export) writes both paths' dilation; the extracted sub-kernel weights load into it."""
    from spacelang.compiler.export import export_subnet
    from spacelang.compiler.export_formats import TOLERANCE
    space, archs = _archs()
    torch.manual_seed(0)
    net = build_supernet(space)
    arch = next(a for a in archs if a["stem.kernel"] == 5 and a["stem.dilation"] == 2
                and a["s2.downsample.kernel"] == 3 and a["s2.downsample.dilation"] == 2)
    export_subnet(space, net, arch, str(tmp_path / "out"), formats="pytorch")
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    for fmt, r in prov["parity"]["formats"].items():
        assert r["max_abs_diff"] <= TOLERANCE[fmt], fmt
    source = (tmp_path / "out" / "model.py").read_text()
    assert source.count("dilation=2") == 2 and "kernel=5" in source


# ---------------------------------------------------------------------------------------------- schedule
def test_parse_schedule():
    p = rt.parse_schedule("1-40:16,5 41-70:8,2   71-:4,1")
    assert [(q.first, q.last, q.stride, q.dilation) for q in p] == [(1, 40, 16, 5), (41, 70, 8, 2), (71, None, 4, 1)]
    assert [q.label for q in p] == ["16,5", "8,2", "4,1"] and str(p[2]) == "71-:4,1"
    one = rt.parse_schedule("1:8,2,1 2-:4,1")
    assert (one[0].last, one[0].padding, one[1].padding) == (1, 1, None)
    rt.check_covers(p, 300)


@pytest.mark.parametrize("text, message", [
    ("", "empty schedule"),
    ("1-40:16", "is not FIRST-LAST:STRIDE,DILATION"),
    ("1-40:16;5", "is not FIRST-LAST"),
    ("2-:4,1", "starts at epoch 2, not 1"),
    ("1-3:8,2 5-:4,1", "a gap"),
    ("1-3:8,2 3-:4,1", "an overlap"),
    ("1-:8,2 5-:4,1", "runs to the end"),
    ("1-0:8,2", "has no epochs"),
    ("1-:0,1", "at least 1"),
])
def test_parse_schedule_refuses(text, message):
    with pytest.raises(OptionError, match=message) as e:
        rt.parse_schedule(text)
    assert "\n" not in e.value.message


def test_schedule_must_cover_the_run():
    with pytest.raises(OptionError, match="epochs 4-10 are in no phase"):
        rt.check_covers(rt.parse_schedule("1-3:8,2"), 10)
    with pytest.raises(OptionError, match="starts after the run's 2 epochs"):
        rt.check_covers(rt.parse_schedule("1-2:8,2 3-:4,1"), 2)


def test_paper_dilation_rule():
    assert [rt.paper_dilation(s, 4, 4) for s in (16, 8, 4)] == [5, 2, 1]  # As-ViT Figure 4


def test_phase_spaces_follow_the_stem():
    space = sl.loads(TINY_ASVIT)
    phases = rt.parse_schedule(SCHEDULE)
    spaces = [rt.phase_space(space, p) for p in phases]
    assert spaces[-1] is space  # the stem's own (stride, dilation): the space itself
    for s, tokens in zip(spaces, (2, 4, 8)):
        for k in (4, 5):
            n = s.resolve(_arch(s, **{"stem.kernel": k}))
            assert n.stem.fields.size == tokens and n.stages[1].transition.fields.size == tokens // 2
    assert spaces[0].resolve(space.max_arch()).stem.fields.padding == (5 * 4 + 1 - 16 + 1) // 2


def test_a_phase_the_splits_cannot_take_is_refused_naming_it():
    space = sl.loads(TINY_ASVIT.replace("splits 2", "splits 4"))
    with pytest.raises(OptionError, match=r"phase 1-2:16,5 \(stride 16, dilation 5\): splits 4 does not divide"):
        rt.Retokenizer(space, build_supernet(space), SCHEDULE, 4)


def test_position_embeddings_are_resampled_under_a_phase():
    space = sl.loads(TINY_ASVIT.replace("pos     none", "pos     abs"))
    net = build_supernet(space)
    r = rt.Retokenizer(space, net, "1:8,2 2-:4,1", 2)
    view = r.net(0)
    assert list(view.parameters())[0] is list(net.parameters())[0]
    assert {id(p) for p in view.parameters()} == {id(p) for p in net.parameters()}
    out = view(torch.randn(2, 1, 32, 32), space.max_arch())
    assert out.shape == (2, 4)
    out.sum().backward()
    assert net.stem.pos_embed.grad is not None


# ---------------------------------------------------------------------------------------------- training
def _train(space_path, run, *extra):
    args = ["train", space_path, "--data", "synthetic", "--epochs", "4", "--batch-size", "16", "--no-progress",
            "--warmup-epochs", "1", "--retokenize", SCHEDULE, "-o", run, *extra]
    assert main(args) == 0


def _log(run):
    with open(os.path.join(run, "log.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_cli_trains_three_phases_and_counts_their_flops(tmp_path):
    path = tmp_path / "tiny.space"
    path.write_text(TINY_ASVIT)
    run = str(tmp_path / "run")
    _train(str(path), run)
    rows = _log(run)
    assert [r["phase"] for r in rows] == ["16,5", "16,5", "8,2", "4,1"]
    space = sl.loads(TINY_ASVIT)
    from spacelang.compiler.train import sample_archs
    spaces = [rt.phase_space(space, p) for p in rt.parse_schedule(SCHEDULE)]
    per_epoch = 4  # 64 synthetic images, batch 16
    for e, r in enumerate(rows):
        s = spaces[{"16,5": 0, "8,2": 1, "4,1": 2}[r["phase"]]]
        archs = [sample_archs(space, "uniform", 0, e * per_epoch + j)[0] for j in range(per_epoch)]
        assert int(r["train_flops"]) == sum(16 * sl.cost(s, a).flops for a in archs)
        assert int(r["train_flops_full"]) == sum(16 * sl.cost(space, a).flops for a in archs)
    summary = json.loads((tmp_path / "run" / "retokenize.json").read_text())
    assert summary["train_flops"] == sum(int(r["train_flops"]) for r in rows)
    assert 0.3 < summary["saving"] < 0.75
    assert [p["epochs"] for p in summary["phases"]] == [[1, 2], [3], [4]]


def test_resume_in_the_middle_of_a_phase_is_exact(tmp_path):
    from spacelang.compiler import checkpoint as ckpt
    path = tmp_path / "tiny.space"
    path.write_text(TINY_ASVIT)
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    _train(str(path), full)
    _train(str(path), part, "--stop-after", "1")            # stopped inside phase 1-2
    assert ckpt.load(part).epoch == 1
    assert main(["train", str(path), "-o", part, "--resume", "--no-progress"]) == 0
    a, b = ckpt.load(full), ckpt.load(part)
    assert a.state["config"]["retokenize"] == b.state["config"]["retokenize"] == SCHEDULE
    for k in a.weights:
        assert torch.equal(a.weights[k], b.weights[k]), k
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]  # noqa: E731
    assert strip(_log(full)) == strip(_log(part))


def test_cli_refuses_a_bad_schedule_in_one_line(tmp_path, capsys):
    path = tmp_path / "tiny.space"
    path.write_text(TINY_ASVIT)
    assert main(["train", str(path), "--data", "synthetic", "--epochs", "2", "--retokenize", "1-40:16",
                 "-o", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "phase '1-40:16' is not FIRST-LAST" in err and "Traceback" not in err
