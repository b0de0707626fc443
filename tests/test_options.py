"""Option values are checked while the command line is parsed: one line, exit 2, before any work."""
from __future__ import annotations

import argparse

import pytest

from spacelang import cli
from spacelang.commands import options

SPACE = "spaces/autoformer-tiny.space"

# (argv, what the one-line message must say)
BAD = [
    (["search", "R", "-o", "O", "--evaluations", "0"], "argument --evaluations/--num: must be at least 1, got 0"),
    (["search", "R", "-o", "O", "--num", "0"], "argument --evaluations/--num: must be at least 1, got 0"),
    (["search", "R", "-o", "O", "--threads", "0"], "argument --threads: must be at least 1"),
    (["search", "R", "-o", "O", "--threads", "-1"], "argument --threads: must be at least 1"),
    (["search", "R", "-o", "O", "--population", "0"], "argument --population"),
    (["search", "R", "-o", "O", "--batch-size", "0"], "argument --batch-size"),
    (["search", "R", "-o", "O", "--seed", "-3"], "argument --seed"),
    (["search", "R", "-o", "O", "--where", "params<=1e400"], "out of range"),
    (["search", "R", "-o", "O", "--device", "banana"], "expected cpu, cuda, cuda:N or mps, got 'banana'"),
    (["train", SPACE, "-o", "O", "--stop-after", "0"], "argument --stop-after: must be at least 1"),
    (["train", SPACE, "-o", "O", "--stop-after", "-1"], "argument --stop-after: must be at least 1"),
    (["train", SPACE, "-o", "O", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (["train", SPACE, "-o", "O", "--batch-size", "0"], "argument --batch-size"),
    (["train", SPACE, "-o", "O", "--warmup-epochs", "-1"], "argument --warmup-epochs: must be at least 0"),
    (["train", SPACE, "-o", "O", "--weight-decay", "-0.1"], "argument --weight-decay: must be at least 0"),
    (["train", SPACE, "-o", "O", "--workers", "-1"], "argument --workers: must be at least 0"),
    (["train", SPACE, "-o", "O", "--drop-path", "1.5"], "argument --drop-path: must be in [0, 1), got 1.5"),
    (["train", SPACE, "-o", "O", "--label-smoothing", "2"], "argument --label-smoothing: must be in [0, 1)"),
    (["train", SPACE, "-o", "O", "--lr", "0"], "argument --lr: must be greater than 0"),
    (["train", SPACE, "-o", "O", "--lr", "nan"], "argument --lr: expected a finite number, got 'nan'"),
    (["train", SPACE, "-o", "O", "--min-lr", "inf"], "argument --min-lr: expected a finite number"),
    (["train", SPACE, "-o", "O", "--epochs", "1.5"], "argument --epochs: expected an integer, got '1.5'"),
    (["train", SPACE, "-o", "O", "--sandwich-k", "-1"], "argument --sandwich-k"),
    (["train", SPACE, "-o", "O", "--shift", "-2"], "argument --shift"),
    (["train", SPACE, "-o", "O", "--clip-grad", "0"], "argument --clip-grad"),
    (["train", SPACE, "-o", "O", "--mixup", "-1"], "argument --mixup"),
    (["train", SPACE, "-o", "O", "--device", "banana"], "argument --device: expected cpu, cuda, cuda:N or mps"),
    (["sample", SPACE, "-n", "-1"], "argument -n: must be at least 0, got -1"),
    (["sample", SPACE, "--sandwich", "-2"], "argument --sandwich"),
    (["sample", SPACE, "--where", "params<=1e400"], "quantity '1e400' is out of range"),
    (["sample", SPACE, "--where", "parms<=5M"], "argument --where"),
    (["compile", SPACE, "--seed", "-1"], "argument --seed"),
    (["compile", SPACE, "--threads", "0"], "argument --threads"),
    (["evolve", SPACE, "--iterations", "0", "-o", "O"], "argument --iterations"),
    (["evolve", SPACE, "--from-results", "R", "-o", "O", "--tau", "0"], "argument --tau: must be greater than 0"),
    (["evolve", SPACE, "--from-results", "R", "-o", "O", "--top-k", "-5"], "argument --top-k"),
    (["evolve", SPACE, "--from-results", "R", "-o", "O", "--max-steps", "-1"], "argument --max-steps"),
    (["evolve", SPACE, "--iterations", "1", "-o", "O", "--archs", "0"], "argument --archs"),
    (["evolve", SPACE, "--iterations", "1", "-o", "O", "--threads", "-1"], "argument --threads"),
]


def _main(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD])
def test_bad_option_is_one_line_exit_2(argv, message, capsys):
    code, out, err = _main(argv, capsys)
    assert code == 2 and not out
    assert err.count("\n") == 1 and err.startswith(f"spacelang {argv[0]}: error: "), err
    assert message in err


def test_cuda_without_a_gpu_names_the_option(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    code, _, err = _main(["train", SPACE, "-o", "O", "--device", "cuda"], capsys)
    assert code == 2 and "argument --device: cuda: no CUDA device is available" in err and err.count("\n") == 1


@pytest.mark.parametrize("parse,text,value", [
    (options.positive_int, "3", 3), (options.count, "0", 0), (options.nonnegative, "0.5", 0.5),
    (options.positive, "1e-3", 1e-3), (options.unit_interval, "0", 0.0), (options.unit_interval, "0.99", 0.99),
    (options.device_name, "cpu", "cpu"), (options.where, "params<=23M", "params<=23M"),
])
def test_good_values_pass(parse, text, value):
    assert parse(text) == value


def test_types_raise_argparse_errors():
    with pytest.raises(argparse.ArgumentTypeError, match="must be in"):
        options.unit_interval("1")


def test_train_on_a_kind_the_compiler_lacks_is_one_line(tmp_path, capsys):
    pytest.importorskip("torch")
    from spacelang.compiler.ops.registry import registered
    from spacelang.kinds import KINDS
    missing = [k for k in sorted(KINDS) if k not in registered() and getattr(KINDS[k], "example", None)]
    if not missing:
        pytest.skip("the compiler has an op for every kind")
    path = tmp_path / "space.space"
    path.write_text(KINDS[missing[0]].example)
    code, _, err = _main(["train", str(path), "-o", str(tmp_path / "run"), "--data", "synthetic",
                          "--epochs", "1", "--no-progress"], capsys)
    assert code == 2 and "no op for kind" in err and err.count("error:") == 1 and "Traceback" not in err


def test_train_help_states_the_defaults_each_dataset_gets(capsys):
    pytest.importorskip("torch")
    from spacelang.compiler.train import TrainConfig
    assert cli.main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    digits, synthetic, folder = (TrainConfig.for_data(d) for d in ("digits", "synthetic", "some/folder"))
    expected = {
        f"{digits.batch_size} for digits, {synthetic.batch_size} for synthetic, {folder.batch_size} for an ImageFolder":
            digits.batch_size != synthetic.batch_size != folder.batch_size,
        "default: 2e-3 for digits, 1e-3 otherwise": digits.lr == 2e-3 and folder.lr == synthetic.lr == 1e-3,
        f"default: {synthetic.epochs}; {folder.epochs} for an ImageFolder": digits.epochs == synthetic.epochs,
        f"default: {digits.shift} for digits, {synthetic.shift} otherwise": folder.shift == synthetic.shift,
        f"default: {folder.mixup:g} for an ImageFolder, {digits.mixup:g} otherwise": digits.mixup == synthetic.mixup,
        f"default: {synthetic.warmup_epochs:g} of {synthetic.epochs} epochs, {folder.warmup_epochs:g} of "
        f"{folder.epochs} for an ImageFolder": digits.warmup_epochs == synthetic.warmup_epochs,
        f"default {synthetic.weight_decay:g})": True,
        f"default {synthetic.label_smoothing:g})": True,
        f"default {synthetic.drop_path:g})": True,
        "default 1e-5)": digits.min_lr == synthetic.min_lr == folder.min_lr == 1e-5,
        f"default {synthetic.sandwich_k})": True,
    }
    for phrase, consistent in expected.items():
        assert consistent and phrase in text, phrase
    # the warm-up keeps its share of the run when only --epochs is given (the help says so)
    assert TrainConfig.for_data("digits", epochs=10).warmup_epochs == pytest.approx(0.5)


def test_device_checks_the_accelerators_this_machine_has(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    from spacelang.compiler.devices import device
    assert device("cuda") == "cuda" and device("cuda:1") == "cuda:1"
    with pytest.raises(argparse.ArgumentTypeError, match="cuda:2: this machine has 2 CUDA device"):
        device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(argparse.ArgumentTypeError, match="no CUDA device is available"):
        device("cuda:0")
