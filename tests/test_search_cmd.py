"""``spacelang compile | search | export`` on a tiny space trained for seconds on synthetic data."""
from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")

from spacelang.cli import main  # noqa: E402

from test_train import TINY  # noqa: E402

SMALL = ["--population", "6", "--generations", "2", "--parents", "3", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run directory with a supernet trained for 3 epochs on synthetic data (shared by the tests)."""
    d = tmp_path_factory.mktemp("run")
    space = d / "tiny.space"
    space.write_text(TINY)
    run = str(d / "run")
    assert main(["train", str(space), "--data", "synthetic", "-o", run, "--epochs", "3", "--batch-size", "16",
                 "--lr", "1e-2", "--warmup-epochs", "1", "--no-progress", "--threads", "1"]) == 0
    return str(space), run


def _rows(out):
    with open(os.path.join(out, "results.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_search_writes_results_best_and_plot(trained, tmp_path):
    _, run = trained
    out = str(tmp_path / "search")
    assert main(["search", run, "-o", out] + SMALL) == 0
    assert {"results.jsonl", "best.json", "pareto.png"} <= set(os.listdir(out))
    rows = _rows(out)
    assert len(rows) == 6 + 2 * 6
    for r in rows:
        assert set(r) == {"arch", "error", "accuracy", "params", "flops"}
        assert abs(r["error"] + r["accuracy"] - 100) < 1e-9 and 0 <= r["accuracy"] <= 100
        assert list(r["arch"]) == sorted(r["arch"])
    best = json.load(open(os.path.join(out, "best.json")))
    assert {"arch", "accuracy", "params", "flops"} <= set(best)
    assert best["val_accuracy"] == max(r["accuracy"] for r in rows)
    with open(os.path.join(out, "pareto.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_best_accuracy_is_on_the_test_split(trained, tmp_path):
    from spacelang.compiler.data import load_data
    from spacelang.compiler.evaluate import evaluate
    from spacelang.compiler.train import load_supernet
    from spacelang.cost import cost
    _, run = trained
    out = str(tmp_path / "search")
    assert main(["search", run, "-o", out, "--strategy", "random", "--num", "8", "--threads", "1"]) == 0
    best = json.load(open(os.path.join(out, "best.json")))
    space, net, _ = load_supernet(run)
    data = load_data("synthetic", space.input_shape(space.max_arch()), space.classes)
    test = evaluate(net, [best["arch"]], data.eval_loader("test"))[0]
    val = evaluate(net, [best["arch"]], data.eval_loader("val"))[0]
    assert best["accuracy"] == test and best["val_accuracy"] == val and best["split"] == "test"
    c = cost(space, best["arch"])
    assert (best["params"], best["flops"]) == (c.params, c.flops)


def test_where_bounds_are_honoured(trained, tmp_path):
    from spacelang.compiler.train import load_supernet
    from spacelang.cost import cost
    _, run = trained
    space, _, _ = load_supernet(run)
    mid = (cost(space, space.min_arch()).params + cost(space, space.max_arch()).params) // 2
    out = str(tmp_path / "search")
    assert main(["search", run, "-o", out, "--where", f"params<={mid}"] + SMALL) == 0
    assert all(r["params"] <= mid for r in _rows(out))
    assert json.load(open(os.path.join(out, "best.json")))["params"] <= mid


def test_killed_search_resumes(trained, tmp_path, monkeypatch):
    import spacelang.compiler.evaluate as ev
    _, run = trained
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    assert main(["search", run, "-o", ref] + SMALL) == 0

    real, calls = ev.evaluate, []

    def dying(net, archs, *a, **kw):
        calls.append(len(archs))
        if len(calls) == 2:  # killed while evaluating generation 1
            raise KeyboardInterrupt
        return real(net, archs, *a, **kw)

    monkeypatch.setattr(ev, "evaluate", dying)
    assert main(["search", run, "-o", out] + SMALL) == 130
    assert len(_rows(out)) == 6 and not os.path.exists(os.path.join(out, "best.json"))
    calls.clear()
    def counting(net, archs, *a, **kw):
        calls.append(len(archs))
        return real(net, archs, *a, **kw)

    monkeypatch.setattr(ev, "evaluate", counting)
    assert main(["search", run, "-o", out] + SMALL) == 0
    assert calls[0] == 6  # generation 0 was not evaluated again: it resumed at generation 1
    assert _rows(out) == _rows(ref)
    assert json.load(open(os.path.join(out, "best.json"))) == json.load(open(os.path.join(ref, "best.json")))


def test_search_errors_exit_2(tmp_path, trained, capsys):
    _, run = trained
    assert main(["search", str(tmp_path / "nothing"), "-o", str(tmp_path / "o")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["search", run, "-o", str(tmp_path / "o"), "--where", "latency<3"]) == 2
    assert main(["search", run, "-o", str(tmp_path / "o"), "--where", "params<10"] + SMALL) == 2
    capsys.readouterr()
    # an option only another strategy reads is refused, not silently ignored
    for flag, value in (("--evaluations", "4"), ("--steps", "3"), ("--samples", "8")):
        assert main(["search", run, "-o", str(tmp_path / "o"), flag, value] + SMALL) == 2
        assert f"{flag} is an option of --strategy" in capsys.readouterr().err


def test_compile_json_and_search_on_compiled_checkpoint(tmp_path, capsys):
    space = tmp_path / "tiny.space"
    space.write_text(TINY)
    d = str(tmp_path / "compiled")
    assert main(["compile", str(space), "-o", d, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["subnets"] == 40 and info["supernet_params"] == info["params"]["max"]
    assert info["stages"][0]["dim"] == [8, 16] and info["stages"][0]["depth"] == [1, 2]
    assert main(["search", d, "-o", str(tmp_path / "s"), "--data", "synthetic", "--strategy", "random",
                 "--num", "4", "--no-plot"]) == 0


def test_export_roundtrip(trained, tmp_path):
    from spacelang.compiler import load_subnet
    from spacelang.compiler.train import load_supernet
    _, run = trained
    space, net, _ = load_supernet(run)
    arch_file = tmp_path / "arch.json"
    arch = space.min_arch()
    arch_file.write_text(json.dumps(arch))
    out = str(tmp_path / "sub")
    assert main(["export", run, "--arch", str(arch_file), "-o", out]) == 0
    assert sorted(os.listdir(out)) == ["arch.json", "config.json", "model.safetensors", "provenance.json", "space.space"]
    sub = load_subnet(out)
    x = torch.randn(3, *space.input_shape(arch))
    with torch.no_grad():
        assert torch.allclose(sub(x), net(x, arch), atol=1e-5)
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["params"] == sum(p.numel() for p in sub.parameters())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"s1.dim": 9}))
    assert main(["export", run, "--arch", str(bad), "-o", str(tmp_path / "x")]) == 2


def test_search_refuses_results_of_another_supernet(trained, tmp_path, capsys):
    space, run = trained
    out = str(tmp_path / "s")
    assert main(["search", run, "-o", out, "--strategy", "random", "--num", "3", "--no-plot"]) == 0
    other = str(tmp_path / "other")
    assert main(["compile", space, "-o", other, "--seed", "1"]) == 0
    assert main(["search", other, "-o", out, "--data", "synthetic", "--strategy", "random", "--num", "3"]) == 2
    assert "another supernet" in capsys.readouterr().err


def test_state_of_another_search_is_a_clean_error_and_other_value_errors_are_not_masked(trained, tmp_path,
                                                                                        capsys, monkeypatch):
    import spacelang.compiler.evaluate as ev
    _, run = trained
    out = str(tmp_path / "s")
    assert main(["search", run, "-o", out, "--strategy", "random", "--num", "3", "--no-plot"]) == 0
    capsys.readouterr()
    assert main(["search", run, "-o", out, "--strategy", "random", "--num", "3", "--no-plot", "--seed", "1"]) == 2
    assert "different search" in capsys.readouterr().err

    def broken(*a, **kw):
        raise ValueError("a bug, not a user's mistake")

    monkeypatch.setattr(ev, "evaluate", broken)
    with pytest.raises(ValueError, match="a bug"):  # not reported as "a state file of another search"
        main(["search", run, "-o", str(tmp_path / "t"), "--strategy", "random", "--num", "3", "--no-plot"])
