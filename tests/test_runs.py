"""Runs, checkpoints and results: locked run directories, verified checkpoints, absolute data paths,
``train --force`` that never loses the old history early, space identity, ``eval``, plots."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from spacelang.cli import main  # noqa: E402

from test_train import TINY  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TRAIN = ["--data", "synthetic", "--batch-size", "16", "--lr", "1e-2", "--warmup-epochs", "1", "--no-progress",
         "--threads", "1"]
RANDOM = ["--strategy", "random", "--num", "3", "--no-plot", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny supernet trained for 2 epochs on synthetic data (copied by tests that damage it)."""
    d = tmp_path_factory.mktemp("runs")
    space = d / "tiny.space"
    space.write_text(TINY)
    run = str(d / "run")
    assert main(["train", str(space), "-o", run, "--epochs", "2"] + TRAIN) == 0
    return str(space), run


def _copy(run, dst):
    import shutil
    shutil.copytree(run, dst)
    return str(dst)


def _log_epochs(run):
    with open(os.path.join(run, "log.csv"), newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


# ------------------------------------------------------------------------------------------ lock
HOLDER = textwrap.dedent("""
    import sys
    from spacelang.compiler.runlock import RunLock
    with RunLock(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.readline()
""")


def test_a_second_process_is_refused_naming_the_holder(trained, tmp_path, capsys):
    space, _ = trained
    run = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, run],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["train", space, "-o", run, "--epochs", "1"] + TRAIN) == 2
        err = capsys.readouterr().err.strip()
        assert f"in use by process {holder.pid}" in err and len(err.splitlines()) == 1
        assert main(["search", trained[1], "-o", run] + RANDOM) == 2
        assert f"process {holder.pid}" in capsys.readouterr().err
        assert not os.path.exists(os.path.join(run, "checkpoint"))
    finally:
        holder.communicate("\n", timeout=30)
    # released when the holder ends: the same command now runs
    assert main(["train", space, "-o", run, "--epochs", "1"] + TRAIN) == 0


def test_two_trainings_into_one_run_directory_cannot_both_write(trained, tmp_path, capsys):
    import time
    from spacelang.compiler.runlock import LOCK_NAME
    space, _ = trained
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "spacelang", "train", space, "-o", str(run), "--epochs", "100000"]
                             + TRAIN, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not ((run / LOCK_NAME).exists()
                                              and (run / LOCK_NAME).read_text().strip() == str(first.pid)):
            assert first.poll() is None
            time.sleep(0.1)
        assert main(["train", space, "-o", str(run), "--epochs", "1", "--force"] + TRAIN) == 2
        assert f"in use by process {first.pid}" in capsys.readouterr().err
    finally:
        first.kill()
        first.wait()
    # killed (the lock file still names it): the lock is stale and is taken over
    assert (run / LOCK_NAME).read_text().strip() == str(first.pid)
    assert main(["train", space, "-o", str(run), "--epochs", "1", "--force"] + TRAIN) == 0


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    from spacelang.compiler.runlock import LOCK_NAME, RunLock
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text(f"{dead.pid}\n")  # left by a killed run
    with RunLock(str(run)):
        assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(Exception, match=f"process {os.getpid()}"):
            RunLock(str(run)).acquire()  # a second holder, even in the same process, is refused


# ------------------------------------------------------------------------------------------ checkpoints
def test_corrupted_weights_are_refused_naming_the_file(trained, tmp_path, capsys):
    run = _copy(trained[1], tmp_path / "run")
    path = os.path.join(run, "checkpoint", "weights.safetensors")
    data = bytearray(open(path, "rb").read())
    nan = bytes.fromhex("0000c07f") * 64  # float32 NaNs, same size: only the sha256 tells
    data[-len(nan):] = nan
    open(path, "wb").write(bytes(data))
    assert main(["search", run, "-o", str(tmp_path / "s")] + RANDOM) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "weights.safetensors" in err[0] and "damaged" in err[0] and "Traceback" not in "".join(err)


def test_non_finite_weights_are_refused(trained, tmp_path):
    import hashlib
    from safetensors.torch import load_file, save_file
    from spacelang.compiler import checkpoint as ckpt
    from spacelang.errors import CheckpointError
    run = _copy(trained[1], tmp_path / "run")
    d = os.path.join(run, "checkpoint")
    w = load_file(os.path.join(d, "weights.safetensors"))
    name = sorted(w)[0]
    w[name] = torch.full_like(w[name], float("nan"))
    save_file(w, os.path.join(d, "weights.safetensors"))
    state = json.load(open(os.path.join(d, "state.json")))  # a consistent hash: only the values are bad
    state["files"]["weights.safetensors"] = hashlib.sha256(open(os.path.join(d, "weights.safetensors"), "rb")
                                                           .read()).hexdigest()
    json.dump(state, open(os.path.join(d, "state.json"), "w"))
    with pytest.raises(CheckpointError, match=f"tensor {name} holds NaN"):
        ckpt.load(run)


@pytest.mark.parametrize("damage", ["truncated", "empty"])
@pytest.mark.parametrize("name", ["weights.safetensors", "optimizer.safetensors"])
def test_truncated_or_empty_files_give_one_line(trained, tmp_path, capsys, damage, name):
    space, run0 = trained
    run = _copy(run0, tmp_path / "run")
    path = os.path.join(run, "checkpoint", name)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2] if damage == "truncated" else b"")
    assert main(["train", space, "-o", run, "--resume"] + TRAIN) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) <= 2 and name in err and "Traceback" not in err  # message + hint
    # search never reads the optimizer: a damaged optimizer file does not stop it
    assert main(["search", run, "-o", str(tmp_path / "s")] + RANDOM) == (0 if name.startswith("optimizer") else 2)


# ------------------------------------------------------------------------------------------ data paths
def _image_folder(root):
    from PIL import Image
    for split in ("train", "val"):
        for c, shade in (("a", 40), ("b", 210)):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(6):
                Image.new("L", (8, 8), shade + 3 * i).save(d / f"{i}.png")


def test_relative_data_path_is_stored_absolute_and_searchable_elsewhere(tmp_path, monkeypatch, capsys):
    space = tmp_path / "two.space"
    space.write_text(TINY.replace("classes 4", "classes 2"))
    _image_folder(tmp_path / "imgs")
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(space), "--data", "imgs", "-o", "run", "--epochs", "1", "--batch-size", "4",
                 "--no-progress", "--threads", "1"]) == 0
    assert f"trained on {tmp_path / 'imgs'}" in capsys.readouterr().out
    state = json.load(open(tmp_path / "run" / "checkpoint" / "state.json"))
    assert state["config"]["data"] == str(tmp_path / "imgs")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["search", "../run", "-o", "s"] + RANDOM) == 0
    assert json.load(open("s/best.json"))["data"] == str(tmp_path / "imgs")


# ------------------------------------------------------------------------------------------ --force
def test_force_keeps_the_old_log_until_the_first_new_checkpoint(trained, tmp_path, monkeypatch):
    import spacelang.compiler.train as T
    space, run0 = trained
    run = _copy(run0, tmp_path / "run")
    old_log = open(os.path.join(run, "log.csv")).read()
    assert _log_epochs(run) == [1, 2]

    def killed(*a, **kw):  # the process dies at the end of the first new epoch, before its checkpoint
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "evaluate", killed)
    assert main(["train", space, "-o", run, "--force", "--epochs", "3"] + TRAIN) == 130
    assert open(os.path.join(run, "log.csv")).read() == old_log  # the old history is intact
    from spacelang.compiler import checkpoint as ckpt
    assert ckpt.load(run).epoch == 2  # and matches the old checkpoint
    monkeypatch.undo()
    assert main(["train", space, "-o", run, "--force", "--epochs", "1"] + TRAIN) == 0
    assert _log_epochs(run) == [1] and ckpt.load(run).epoch == 1  # replaced together
    assert ckpt.load(run).read_extra("log.csv") == open(os.path.join(run, "log.csv"), newline="").read()


# ------------------------------------------------------------------------------------------ space identity
def test_resume_after_fmt_or_comment_edit_and_refusal_says_what_differs(trained, tmp_path, capsys):
    space, run0 = trained
    run = _copy(run0, tmp_path / "run")
    edited = tmp_path / "edited.space"
    edited.write_text("# a comment added after training\n" + TINY.replace("dim   {8, 16}", "dim {8,16}  # widths"))
    assert main(["train", str(edited), "-o", run, "--resume", "--epochs", "3"] + TRAIN) == 0
    assert "only in layout or comments" in capsys.readouterr().err
    changed = tmp_path / "changed.space"
    changed.write_text(TINY.replace("mlp_ratio {1, 2}", "mlp_ratio {1, 3}"))
    assert main(["train", str(changed), "-o", run, "--resume", "--epochs", "4"] + TRAIN) == 2
    err = capsys.readouterr().err
    assert "another space" in err and "mlp_ratio" in err


def test_best_json_and_export_record_the_space_and_refuse_another(trained, tmp_path, capsys):
    from spacelang.compiler.identity import semantic_sha256
    space, run = trained
    out = str(tmp_path / "s")
    assert main(["search", run, "-o", out] + RANDOM) == 0
    best = json.load(open(os.path.join(out, "best.json")))
    assert best["space"]["name"] == "tiny" and best["space"]["semantic_sha256"] == semantic_sha256(TINY)
    sub = str(tmp_path / "sub")
    assert main(["export", run, "--arch", os.path.join(out, "best.json"), "-o", sub]) == 0
    cfg = json.load(open(os.path.join(sub, "config.json")))
    assert cfg["space"] == best["space"]
    pre = cfg["preprocessing"]
    assert pre["channels"] == 1 and pre["resolution"] == [8, 8] and pre["dataset"] == "synthetic"
    other = dict(best, space={"name": "other", "sha256": "0" * 64, "semantic_sha256": "1" * 64})
    (tmp_path / "other.json").write_text(json.dumps(other))
    capsys.readouterr()
    assert main(["export", run, "--arch", str(tmp_path / "other.json"), "-o", str(tmp_path / "x")]) == 2
    assert "from space other, not tiny" in capsys.readouterr().err


def test_export_warns_about_broken_constraints(tmp_path, capsys):
    space = tmp_path / "c.space"
    space.write_text(TINY + "constraint params <= 700\n")
    run = str(tmp_path / "run")
    assert main(["compile", str(space), "-o", run]) == 0
    import spacelang as sl
    big = sl.load(str(space)).max_arch()
    (tmp_path / "a.json").write_text(json.dumps(big))
    capsys.readouterr()
    assert main(["export", run, "--arch", str(tmp_path / "a.json"), "-o", str(tmp_path / "sub")]) == 0
    assert "breaks the constraints" in capsys.readouterr().err
    assert json.load(open(tmp_path / "sub" / "config.json"))["constraints_broken"]


def test_eval_measures_a_run_and_an_export_alike(trained, tmp_path, capsys):
    space, run = trained
    import spacelang as sl
    arch = sl.load(space).min_arch()
    (tmp_path / "a.json").write_text(json.dumps(arch))
    assert main(["eval", run, "--arch", str(tmp_path / "a.json"), "--split", "test", "--json"]) == 0
    from_run = json.loads(capsys.readouterr().out)
    sub = str(tmp_path / "sub")
    assert main(["export", run, "--arch", str(tmp_path / "a.json"), "-o", sub]) == 0
    capsys.readouterr()
    assert main(["eval", sub, "--data", "synthetic", "--split", "test", "--json"]) == 0
    from_export = json.loads(capsys.readouterr().out)
    assert from_run["accuracy"] == from_export["accuracy"] and from_run["arch"] == from_export["arch"]
    assert from_run["split"] == "test" and from_run["images"] == 32
    assert main(["eval", str(tmp_path / "nothing")]) == 2


# ------------------------------------------------------------------------------------------ output errors
def _commands(space, run, tmp_path, out):
    arch = tmp_path / "arch.json"
    import spacelang as sl
    arch.write_text(json.dumps(sl.load(space).min_arch()))
    from conftest import EXAMPLES
    s3 = os.path.join(EXAMPLES, "digits-s3.space")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"arch": sl.load(s3).min_arch(), "error": 10.0}) + "\n")
    return {
        "train": ["train", space, "-o", out, "--epochs", "1"] + TRAIN,
        "compile": ["compile", space, "-o", out],
        "search": ["search", run, "-o", out] + RANDOM,
        "export": ["export", run, "--arch", str(arch), "-o", out],
        "evolve": ["evolve", s3, "--from-results", str(rows), "-o", os.path.join(out, "new.space")],
        "evolve-loop": ["evolve", space, "--iterations", "1", "--data", "synthetic", "--epochs", "1", "--archs", "2",
                        "-q", "--threads", "1", "-o", out],
    }


def _deny_writes_under(folder, monkeypatch):
    """Make every write under ``folder`` fail with EACCES, as a read-only folder does for a
    non-root user (root ignores permission bits, and CI runs as root)."""
    import builtins
    import errno

    def inside(path):
        return os.path.abspath(os.fspath(path)).startswith(str(folder) + os.sep)

    def denied(path):
        return PermissionError(errno.EACCES, "Permission denied", os.fspath(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def fake_open(file, mode="r", *a, **kw):
        if isinstance(file, (str, os.PathLike)) and inside(file) and any(c in mode for c in "wax+"):
            raise denied(file)
        return real_open(file, mode, *a, **kw)

    def fake_os_open(path, flags, *a, **kw):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise denied(path)
        return real_os_open(path, flags, *a, **kw)

    def fake_mkdir(path, *a, **kw):
        if inside(path):
            raise denied(path)
        return real_mkdir(path, *a, **kw)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


@pytest.mark.parametrize("where", ["read-only", "read-only-existing", "under-a-file", "is-a-file", "name-too-long"])
def test_every_writing_command_fails_in_one_line_on_an_unwritable_output(trained, tmp_path, capsys, monkeypatch,
                                                                        where):
    """Every command that writes (train, compile, search, export, evolve in both modes), on an
    output it cannot write: one line (plus a hint), exit 2, no stray temporary file.

    ``read-only*``: a folder chmod-ed 0o500; as root (who ignores permissions; CI runs as root)
    writes under it are made to fail with EACCES instead (:func:`_deny_writes_under`).
    ``under-a-file``: a path whose parent is a file (fails for root too); ``is-a-file``: ``-o``
    names an existing file (evolve --from-results: an existing folder); ``name-too-long``: 300 bytes.
    """
    space, run = trained
    if where.startswith("read-only"):
        ro = tmp_path / "ro"
        ro.mkdir()
        out = str(ro / "out") if where == "read-only" else str(ro)
        ro.chmod(0o500)
        if os.geteuid() == 0:
            _deny_writes_under(ro if where == "read-only" else tmp_path / "ro", monkeypatch)
    elif where == "under-a-file":
        (tmp_path / "file").write_text("x")
        out = str(tmp_path / "file" / "out")
    elif where == "is-a-file":
        (tmp_path / "file").write_text("x")
        out = str(tmp_path / "file")
    else:
        out = str(tmp_path / ("n" * 300))
    commands = _commands(space, run, tmp_path, out)
    if where == "read-only-existing":
        commands["evolve"][-1] = os.path.join(out, "new.space")
    for name, argv in commands.items():
        if where == "is-a-file" and name == "evolve":
            argv = argv[:-1] + [str(tmp_path)]  # its -o names a file: a folder there is the mistake
        code = main(argv)
        err = capsys.readouterr().err.strip()
        assert code == 2, (name, err)
        lines = [line for line in err.splitlines() if not line.startswith("  hint:")]
        assert len(lines) == 1 and "Traceback" not in err, (name, err)
    monkeypatch.undo()
    if where.startswith("read-only"):
        (tmp_path / "ro").chmod(0o700)
        assert os.listdir(tmp_path / "ro") == []  # nothing half-written, no stray .tmp
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


# ------------------------------------------------------------------------------------------ plots
def test_pareto_unit_follows_the_data_and_the_star_says_which_accuracy(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from spacelang.compiler import search_run
    assert search_run.count_unit([1_500, 9_000]) == (1e3, "K")
    assert search_run.count_unit([2_000_000]) == (1e6, "M")
    assert search_run.count_unit([999]) == (1.0, "")
    figs = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig))
    rows = [{"params": 1200 + 100 * i, "accuracy": 50.0 + i} for i in range(4)]
    best = {"params": 1500, "accuracy": 40.0, "val_accuracy": 53.0}
    search_run.plot_pareto(rows, best, str(tmp_path / "p.png"))
    fig = figs[0]
    ax = fig.axes[0]
    assert ax.get_xlabel() == "parameters (K)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "best: 53.0% search-val, 40.0% test" in labels
    star = [c for c in ax.collections if c.get_label().startswith("best")][0]
    assert list(star.get_offsets()[0]) == [1.5, 53.0]  # at the search-val accuracy its label names first
    real_close(fig)


def test_choices_plot_has_a_labelled_x_axis(tmp_path):
    import spacelang as sl
    from conftest import EXAMPLES
    from spacelang.search.s3_report import XLABEL, choices_figure
    sp = sl.load(os.path.join(EXAMPLES, "digits-s3.space"))
    fig = choices_figure([sp, sp], ["iter0", "iter1"])
    drawn = [ax for ax in fig.axes if ax.axison]
    assert drawn and all(ax.get_xlabel() == XLABEL for ax in drawn)


def test_benches_and_commands_keep_to_their_side():
    """Benches import library modules, never command modules; the search and export commands only
    parse arguments and call the library."""
    import ast
    import glob
    for path in glob.glob(os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench", "*.py")):
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert ".commands" not in node.module, (path, node.module)
    from spacelang.compiler.commands import export, search
    from spacelang.compiler import export as export_lib, search_run
    assert not hasattr(search, "run_search") and not hasattr(search, "ResultLog") and hasattr(search_run, "run_search")
    assert not hasattr(export, "export") and not hasattr(export, "load_subnet") and hasattr(export_lib, "load_subnet")
