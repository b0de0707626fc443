"""Progress off a terminal: lines with an ETA (per milestone, per interval); training's log columns."""
from __future__ import annotations

import csv
import io
import os

import pytest

from spacelang.compiler.progress import Progress, duration

from conftest import TINY


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_duration():
    assert [duration(s) for s in (8, 75, 3725)] == ["8s", "1m15s", "1h02m"]


def test_off_a_terminal_lines_with_eta_per_interval_and_per_milestone():
    clock, lines = Clock(), []
    p = Progress(100, desc="train tiny", stream=io.StringIO(), write=lines.append, interval=30, clock=clock)
    assert p.bar is None  # a StringIO is not a terminal
    for _ in range(10):
        clock.t += 2
        p.update(1, loss="1.0")
    assert lines == []  # 20 s < the 30 s interval
    for _ in range(10):
        clock.t += 2
        p.update(1, loss="0.9")
    assert lines == ["train tiny: 15/100 steps (15%), 30s elapsed, ETA 2m50s, loss 0.9"]  # at 30 s
    p.note("epoch 1/5", acc_largest="50.0%")
    assert lines[-1] == "train tiny: epoch 1/5, 20/100 steps (20%), 40s elapsed, ETA 2m40s, acc_largest 50.0%"
    p.close()


def test_disabled_prints_milestones_only():
    clock, lines = Clock(), []
    p = Progress(10, desc="search", unit="arch", enabled=False, write=lines.append, interval=0, clock=clock)
    clock.t = 5
    p.update(5)
    assert lines == []
    p.note("generation 1")
    assert lines == ["search: generation 1, 5/10 archs (50%), 5s elapsed, ETA 5s"]


def test_a_resumed_run_estimates_from_this_invocation():
    clock = Clock()
    p = Progress(100, desc="x", initial=50, write=lambda s: None, clock=clock)
    assert p.eta() is None
    clock.t = 10
    p.update(10)
    assert p.eta() == pytest.approx(40.0)




@pytest.mark.usefixtures("one_torch_thread")
def test_training_prints_its_configuration_and_one_line_per_epoch(tmp_path):
    pytest.importorskip("torch")
    import spacelang as sl
    from spacelang.compiler.train import LOG_FIELDS, TrainConfig, train
    run, lines = str(tmp_path / "run"), []
    cfg = TrainConfig.for_data("synthetic", epochs=2, batch_size=16, warmup_epochs=1)
    train(sl.loads(TINY), cfg, run, progress=False, log=lines.append)
    head = lines[0].splitlines()
    assert head[0] == f"train tiny into {run}"
    assert head[1].startswith("  data      synthetic: 64 train / 32 search-val / 32 test, 4 classes")
    assert head[2] == ("  schedule  2 epochs × 4 steps, batch 16, AdamW lr 0.001 → 1e-05 (cosine), warm-up 1 epochs, "
                       "weight decay 0.05")
    assert head[-1] == "  device    cpu"
    epochs = [ln for ln in lines[1:] if ": epoch " in ln]
    assert len(epochs) == 2 and epochs[0].startswith("train tiny: epoch 1/2, 4/8 steps (50%)")
    assert "ETA" in epochs[0] and "acc_largest" in epochs[0] and "acc_smallest" in epochs[0]
    with open(os.path.join(run, "log.csv"), newline="") as f:
        assert next(csv.reader(f)) == LOG_FIELDS
    assert LOG_FIELDS[4:6] == ["acc_largest", "acc_smallest"]


@pytest.mark.usefixtures("one_torch_thread")
def test_search_reports_progress_with_eta_off_a_terminal(tmp_path, capsys):
    pytest.importorskip("torch")
    from spacelang.cli import main
    space = tmp_path / "tiny.space"
    space.write_text(TINY)
    ck = str(tmp_path / "ck")
    assert main(["compile", str(space), "-o", ck]) == 0
    capsys.readouterr()
    assert main(["search", ck, "-o", str(tmp_path / "s"), "--data", "synthetic", "--population", "4",
                 "--generations", "2", "--parents", "2", "--no-plot", "--threads", "1"]) == 0
    err = capsys.readouterr().err.splitlines()
    lines = [ln for ln in err if ln.startswith("search: generation")]
    assert len(lines) == 3 and "\r" not in "".join(err)  # the initial population and two bred generations
    assert lines[0].startswith("search: generation 0: 4 archs evaluated") and ", 4/12 archs (33%)" in lines[0]
    assert "ETA" in lines[0] and "12/12 archs (100%)" in lines[-1] and "ETA 0s" in lines[-1]


def test_a_log_written_before_the_rename_is_read_under_the_new_names():
    pytest.importorskip("torch")
    from spacelang.compiler import train as tr

    class OldCheckpoint:
        def read_extra(self, name):
            return "epoch,step,lr,loss,val_acc_max,val_acc_min,seconds\n1,4,0.1,1.3,40.00,30.00,0.1\n2,8,0.1,1.2,50,35,0.2\n"

    rows = tr._checkpointed_log(OldCheckpoint(), "unused", epoch=1)
    assert rows == [{"epoch": "1", "step": "4", "lr": "0.1", "loss": "1.3", "acc_largest": "40.00",
                     "acc_smallest": "30.00", "seconds": "0.1"}]
