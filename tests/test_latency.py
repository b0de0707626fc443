"""Latency: time units in the language and in --where, layer enumeration, the predictor, the
correction and its error figures, profiles (building, refusing), the samplers' latency bands.

Timing-dependent results are never asserted on their value: the tests build profiles with one
sample per time on a tiny space and check structure and error reporting; predictions and bands
are tested on *synthetic* profiles whose per-layer times are a function of the layer's FLOPs.
"""
import json
import os
import random

import pytest

import spacelang
from spacelang import kinds as K
from spacelang.cli import main
from spacelang.errors import OptionError, SpaceError, WhereError
from spacelang.latency import (FORMAT, VERSION, CostWithLatency, LatencyPredictor, Profile, ProfileError,
                               fit_correction, heldout_error, layer_configs, layer_fields, layer_key,
                               machine_fingerprint)
from spacelang.search.costcache import CostCache
from spacelang.search.sampling import ConstrainedSampler
from spacelang.search.where import Bounds
from spacelang.util.quantity import parse_bound, parse_time

from conftest import EXAMPLES, SPACES

TINY = """
space tiny
input image 16 channels 1
classes 4
stem patch_embed { patch 4 }
stage s {
  dim {16, 32}
  depth 1..2
  block transformer { heads 1..2  head_dim 8  mlp_ratio {2, 4} }
}
head linear { pool avg }
"""

# every kind with an op, in every role: digits (patch_embed, transformer, patch_merging, linear),
# vit-resnas-tiny (conv_stem, rsr, class token); the larger ones only in slow runs
SHAPE_SPACES = ["digits", "vit-resnas-tiny", pytest.param("autoformer-tiny", marks=pytest.mark.slow),
                pytest.param("swin-tiny", marks=pytest.mark.slow)]


def synthetic_profile(space, a=1.0, b=0.0, scale=1e-6) -> Profile:
    """A profile whose layer times are ``scale × FLOPs + 0.01`` ms, measured on this machine."""
    data = {"format": FORMAT, "version": VERSION, "space": _identity(space), "source": space.source,
            "fingerprint": {**machine_fingerprint(), "threads": 1, "dtype": "float32", "batch": 1},
            "layers": [], "correction": {"a": a, "b_ms": b}, "heldout": heldout_error([], []),
            "timing": {"warmup": 0, "reps": 1, "min_sample_ms": 0, "clock": "cpu", "statistic": "median"}}
    for cfg in layer_configs(space).values():
        flops = K.get(cfg.kind).cost(cfg.layer, "fvcore")[1]
        data["layers"].append({"role": cfg.role, "kind": cfg.kind, "fields": layer_fields(cfg.layer),
                               "ms": scale * flops + 0.01})
    return Profile(data, "<synthetic>")


def _identity(space):
    from spacelang.compiler.identity import space_identity
    return space_identity(space)


def _write(tmp_path, name, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


# ------------------------------------------------------------------------------ units
@pytest.mark.parametrize("text, ms", [("20ms", 20), ("1.5s", 1500), ("800us", 0.8), ("800µs", 0.8), ("2e1ms", 20)])
def test_times_parse_exactly_in_milliseconds(text, ms):
    from fractions import Fraction
    assert parse_time(text) == Fraction(str(ms))


@pytest.mark.parametrize("metric, text, fragment", [
    ("latency", "20", "needs its unit"), ("latency", "20M", "needs its unit"),
    ("params", "20ms", "is a time"), ("latency", "20 minutes", "not a time")])
def test_bounds_refuse_a_unit_that_does_not_fit_the_metric(metric, text, fragment):
    with pytest.raises(WhereError, match=fragment):
        parse_bound(metric, text)


def test_constraint_latency_parses_and_the_checker_warns_that_it_needs_a_profile():
    space = spacelang.loads(TINY + "constraint latency <= 20ms\n")
    (c,) = space.constraints
    assert (c.metric, c.op, c.bound, str(c)) == ("latency", "<=", 20, "latency <= 20ms")
    (w,) = space.warnings
    assert w.severity == "warning" and "needs a latency profile" in w.message


@pytest.mark.parametrize("line, fragment", [("constraint latency <= 20", "needs its unit"),
                                            ("constraint params <= 20ms", "is a time")])
def test_constraint_with_the_wrong_unit_is_an_error_at_the_bound(line, fragment):
    with pytest.raises(SpaceError, match=fragment):
        spacelang.loads(TINY + line + "\n")


def test_contradicting_latency_constraints_are_an_error_in_milliseconds():
    with pytest.raises(SpaceError) as e:
        spacelang.loads(TINY + "constraint latency <= 20ms\nconstraint latency >= 30ms\n")
    assert "30ms <= latency <= 20ms" in e.value.render()


def test_where_reads_latency_bands():
    b = Bounds.parse("800us <= latency < 1.5s, params<=23M")
    iv = b.intervals["latency"]
    assert (float(iv.lo), float(iv.hi), iv.hi_strict) == (0.8, 1500.0, True)
    assert str(b) == "0.8ms <= latency < 1500ms, params <= 23M"
    with pytest.raises(WhereError, match="needs its unit"):
        Bounds.parse("latency<=3")


# ------------------------------------------------------------------------------ layer configurations
@pytest.mark.parametrize("name", ["autoformer-tiny", "s3", "vit-resnas-tiny", "swin-tiny", "asvit-topology"])
def test_every_layer_of_random_archs_is_enumerated(name):
    # (not nasvit: its trunk has more than cases.MAX_COMBOS assignments, so the enumeration samples
    # it, and a profile adds the layers of the archs it draws — see docs/latency.md)
    space = spacelang.load(os.path.join(SPACES, f"{name}.space"))
    keys = set(layer_configs(space))
    rng = random.Random(0)
    for _ in range(100):
        arch = space.sample(rng)
        for slot, _, f in space.walk(arch, lambda s, c: space.normalized(s, arch, c)):
            assert layer_key(slot.role.value, slot.layer.kind, layer_fields(f)) in keys, slot.path


def test_autoformer_tiny_has_eighteen_layer_configurations():
    # 3 widths × (2 heads × 2 MLP ratios) transformer blocks, one patch embedding and one head per width
    space = spacelang.load(os.path.join(SPACES, "autoformer-tiny.space"))
    kinds = [c.kind for c in layer_configs(space).values()]
    assert (kinds.count("transformer"), kinds.count("patch_embed"), kinds.count("linear")) == (12, 3, 3)


# ------------------------------------------------------------------------------ correction and error
def test_fit_correction_recovers_a_linear_law_and_falls_back_to_a_scale():
    sums = [1.0, 2.0, 3.0, 5.0]
    a, b = fit_correction(sums, [1.5 * s + 0.25 for s in sums])
    assert a == pytest.approx(1.5) and b == pytest.approx(0.25)
    a, b = fit_correction([2.0, 2.0], [3.0, 3.0])  # no spread: a scale only
    assert (a, b) == (pytest.approx(1.5), 0.0)


def test_heldout_error_figures():
    err = heldout_error([1.0, 1.05, 2.0, 0.5], [1.0, 1.0, 1.0, 1.0])
    assert err == {"mape_percent": 38.75, "within_10_percent": 50.0, "n": 4}
    assert heldout_error([], []) == {"mape_percent": None, "within_10_percent": None, "n": 0}


# ------------------------------------------------------------------------------ the predictor
@pytest.mark.parametrize("name", ["autoformer-tiny", "s3"])
def test_prediction_is_the_corrected_sum_of_the_archs_layers(name):
    space = spacelang.load(os.path.join(SPACES, f"{name}.space"))
    profile = synthetic_profile(space, a=1.25, b=0.5)
    predict = LatencyPredictor(space, profile)
    rng = random.Random(1)
    for _ in range(50):
        arch = space.sample(rng)
        spec = space.resolve(arch)
        total = sum(profile.layers[layer_key(role, layer.kind, layer_fields(layer.fields))]
                    for role, layer in _roles(spec))
        assert predict(arch) == pytest.approx(1.25 * total + 0.5)
        assert predict(arch) == predict(arch)  # memoised: the same answer


def _roles(spec):
    yield "stem", spec.stem
    for st in spec.stages:
        if st.transition is not None:
            yield "downsample", st.transition
        for blk in st.blocks:
            yield "block", blk
    yield "head", spec.head


def test_a_layer_missing_from_the_profile_is_a_profile_error():
    space = spacelang.loads(TINY)
    data = dict(synthetic_profile(space).data)
    data["layers"] = [e for e in data["layers"] if e["kind"] != "linear"]
    with pytest.raises(ProfileError, match="no time for layer head"):
        LatencyPredictor(space, Profile(data))(space.max_arch())


# ------------------------------------------------------------------------------ profiles
def test_profile_refuses_another_space_unless_forced():
    space, other = spacelang.loads(TINY), spacelang.load(os.path.join(EXAMPLES, "digits.space"))
    profile = synthetic_profile(space)
    profile.check_space(spacelang.loads("# a comment\n" + TINY))  # same meaning: accepted
    with pytest.raises(ProfileError, match="of space tiny, not digits"):
        profile.check_space(other)
    profile.check_space(other, force=True)


def test_profile_refuses_another_machine_for_measuring_unless_forced():
    profile = synthetic_profile(spacelang.loads(TINY))
    elsewhere = {**machine_fingerprint(), "cpu": "Some Other CPU"}
    with pytest.raises(ProfileError, match="measured on another machine"):
        profile.check_machine(here=elsewhere)
    profile.check_machine(force=True, here=elsewhere)


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.update(format="something"), "not a spacelang latency profile"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d.pop("layers"), "damaged latency profile")])
def test_unusable_profile_files_are_one_line_errors(tmp_path, capsys, change, fragment):
    data = dict(synthetic_profile(spacelang.loads(TINY)).data)
    change(data)
    assert main(["latency", "check", _write(tmp_path, "p.json", data)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


# ------------------------------------------------------------------------------ samplers
def test_latency_band_is_honoured_by_the_constrained_sampler():
    space = spacelang.load(os.path.join(EXAMPLES, "digits.space"))
    predict = LatencyPredictor(space, synthetic_profile(space))
    values = sorted(predict(space.sample(random.Random(i))) for i in range(200))
    hi = values[len(values) // 10]  # a band only a tenth of uniform archs fall in
    sampler = ConstrainedSampler(space, random.Random(0), Bounds.parse(f"latency<={hi}ms"), latency=predict)
    for _ in range(30):
        c = sampler.cost(sampler.sample())
        assert c.latency <= hi and c.params > 0


def test_latency_and_params_bands_together():
    space = spacelang.load(os.path.join(SPACES, "autoformer-tiny.space"))
    predict = LatencyPredictor(space, synthetic_profile(space))
    cost = CostWithLatency(CostCache(space), predict)
    mid = sorted(cost(space.sample(random.Random(i))).latency for i in range(100))[50]
    sampler = ConstrainedSampler(space, random.Random(0), Bounds.parse(f"latency<={mid}ms, params<=7M"),
                                 latency=predict)
    for _ in range(20):
        c = sampler.cost(sampler.sample())
        assert c.latency <= mid and c.params <= 7_000_000


def test_latency_bound_without_a_profile_is_refused():
    space = spacelang.loads(TINY)
    with pytest.raises(OptionError, match="needs a latency profile"):
        ConstrainedSampler(space, random.Random(0), Bounds.parse("latency<=2ms"))
    constrained = spacelang.loads(TINY + "constraint latency <= 2ms\n")
    with pytest.raises(OptionError, match="needs a latency profile"):
        ConstrainedSampler(constrained, random.Random(0))
    predict = LatencyPredictor(constrained, synthetic_profile(constrained))
    sampler = ConstrainedSampler(constrained, random.Random(0), latency=predict)
    assert sampler.cost(sampler.sample()).latency <= 2


def test_sample_command_with_a_profile(tmp_path, capsys):
    space = spacelang.loads(TINY)
    f = tmp_path / "tiny.space"
    f.write_text(TINY)
    prof = _write(tmp_path, "p.json", synthetic_profile(space).data)
    assert main(["sample", str(f), "-n", "3", "--where", "latency<=1ms", "--latency-profile", prof, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and all(0 < r["latency"] <= 1 for r in rows)
    assert main(["sample", str(f), "--where", "latency<=1ms"]) == 2
    assert "needs a latency profile" in capsys.readouterr().err
    other = tmp_path / "other.space"
    other.write_text(TINY.replace("space tiny", "space other"))
    assert main(["sample", str(other), "--latency-profile", prof]) == 2
    assert "--force-profile" in capsys.readouterr().err
    assert main(["sample", str(other), "--latency-profile", prof, "--force-profile"]) == 0


# ------------------------------------------------------------------------------ measuring (torch)
@pytest.mark.parametrize("name", SHAPE_SPACES)
def test_standalone_layer_inputs_have_the_shapes_layers_see_in_a_subnet(name, one_torch_thread):
    import torch
    from spacelang.compiler import build_supernet
    from spacelang.compiler.latency import layer_module
    from spacelang.latency import LayerConfig
    path = os.path.join(EXAMPLES if name == "digits" else SPACES, f"{name}.space")
    space = spacelang.load(path)
    arch = space.min_arch()
    seen = []
    sub = build_supernet(space).extract(arch).eval()
    mods = [sub.stem] + [m for st in sub.stages for m in st] + [sub.head]
    hooks = [m.register_forward_pre_hook(lambda m, inp: seen.append(tuple(inp[0].shape))) for m in mods]
    with torch.inference_mode():
        sub(torch.randn(1, *sub.input_shape))
    for h in hooks:
        h.remove()
    cls = spacelang.fields.head_has_cls(space.head, arch)
    expected = []
    for slot, _, f in space.walk(arch, lambda s, c: space.normalized(s, arch, c)):
        cfg = LayerConfig(slot.role.value, slot.layer.kind, f, cls)
        expected.append(tuple(layer_module(cfg, 1)[1].shape))
    assert seen == expected


def test_profile_and_check_commands_on_a_tiny_space(tmp_path, capsys, one_torch_thread):
    f = tmp_path / "tiny.space"
    f.write_text(TINY)
    out = str(tmp_path / "p.json")
    quick = ["--warmup", "0", "--reps", "1", "--min-sample-ms", "0"]
    assert main(["latency", "profile", str(f), "-o", out, "--subnets", "8", *quick]) == 0
    text = capsys.readouterr().out
    assert "held-out error: MAPE" in text and "correction: latency =" in text
    data = json.loads(open(out).read())
    space = spacelang.loads(TINY)
    assert data["format"] == FORMAT and data["space"]["name"] == "tiny"
    assert len(data["layers"]) == len(layer_configs(space))
    assert {"cpu", "cores", "torch", "threads", "dtype", "batch", "resolution"} <= set(data["fingerprint"])
    assert data["heldout"]["n"] == 2 and data["correction"]["fit_n"] == 6
    assert sum(r["set"] == "heldout" for r in data["subnets"]) == 2
    assert main(["latency", "check", out, "-n", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) == {"mape_percent", "within_10_percent", "n"} and res["n"] == 2
    assert main(["latency", "check", out, "-n", "2"]) == 0
    text = capsys.readouterr().out
    assert "held-out error: MAPE" in text and "machine drift" in text and "when built" in text
    assert main(["latency", "profile", str(f), "-o", str(tmp_path / "l.json"), "--layers-only", *quick]) == 0
    assert "not measured" in capsys.readouterr().out


@pytest.mark.parametrize("timing, fragment", [
    (dict(reps=0), "--reps"), (dict(warmup=-1), "--warmup"), (dict(clock="sundial"), "--clock"),
    (dict(statistic="mean"), "--statistic")])
def test_bad_timing_settings_are_option_errors(timing, fragment):
    from spacelang.compiler.latency import Timing
    with pytest.raises(OptionError, match=fragment):
        Timing(**timing).check()


def test_timing_takes_the_chosen_statistic_of_interleaved_samples():
    from spacelang.compiler.latency import Timing
    calls = []
    (med, iqr), (least, _) = Timing(warmup=0, reps=5, min_sample_ms=0, clock="wall").time_many(
        [lambda: calls.append("a"), lambda: calls.append("b")])
    assert calls[-10:] == ["a", "b"] * 5  # one sample of each per round
    assert med > 0 and iqr >= 0 and least > 0
    assert Timing(warmup=0, reps=7, min_sample_ms=0, statistic="min").time(lambda: sum(range(100)))[0] > 0


def test_check_on_another_machine_is_refused_without_force(tmp_path, capsys):
    data = dict(synthetic_profile(spacelang.loads(TINY)).data)
    data["fingerprint"] = {**data["fingerprint"], "cpu": "Some Other CPU"}
    path = _write(tmp_path, "p.json", data)
    assert main(["latency", "check", path, "-n", "1"]) == 2
    err = capsys.readouterr().err
    assert "measured on another machine" in err and len(err.strip().splitlines()) == 2  # message + hint


def test_search_with_a_profile_adds_latency_and_re_measures_its_candidates(tmp_path, capsys, one_torch_thread):
    f = tmp_path / "tiny.space"
    f.write_text(TINY)
    prof = _write(tmp_path, "p.json", synthetic_profile(spacelang.loads(TINY)).data)
    compiled, out = str(tmp_path / "compiled"), str(tmp_path / "s")
    assert main(["compile", str(f), "-o", compiled]) == 0
    assert main(["search", compiled, "-o", out, "--data", "synthetic", "--strategy", "random", "--num", "4",
                 "--latency-profile", prof, "--threads", "1"]) == 0
    assert "ms predicted" in capsys.readouterr().out
    rows = [json.loads(line) for line in open(os.path.join(out, "results.jsonl"))]
    assert len(rows) == 4 and all(r["latency"] > 0 for r in rows)
    best = json.load(open(os.path.join(out, "best.json")))
    report = json.load(open(os.path.join(out, "latency.json")))
    assert best["latency"] > 0 and best["latency_measured"] == report["candidates"][0]["measured_ms"]
    assert report["candidates"][0]["arch"] == best["arch"] and report["n"] == len(report["candidates"])
    assert open(os.path.join(out, "pareto_latency.png"), "rb").read(4) == b"\x89PNG"
    # a latency bound: the evolution driver's sampler predicts latency for every candidate
    bound = sorted(r["latency"] for r in rows)[len(rows) // 2]  # ms: about half the archs of the first search
    s2 = str(tmp_path / "s2")
    assert main(["search", compiled, "-o", s2, "--data", "synthetic", "--strategy", "random",
                 "--num", "4", "--latency-profile", prof, "--where", f"latency<={bound}ms"]) == 0
    capsys.readouterr()
    rows2 = [json.loads(line) for line in open(os.path.join(s2, "results.jsonl"))]
    assert rows2 and all(r["latency"] <= bound + 1e-4 for r in rows2)  # the rows hold it rounded to 1e-4 ms
    # without a profile a latency bound is refused, naming the option
    assert main(["search", compiled, "-o", str(tmp_path / "s3"), "--data", "synthetic", "--strategy", "random",
                 "--num", "4", "--where", "latency<=5ms"]) == 2
    assert "--latency-profile" in capsys.readouterr().err
