"""Supernet training: one loop with pluggable training rules (``compiler/rules/``), timm's recipe.

One optimizer step per batch.  The archs of step ``t`` come from ``random.Random`` seeded with
``(seed, t)`` only — not from a stream shared with anything else and not from the process rank —
so every future data-parallel worker draws the same archs for the same step, and a resumed run
draws exactly what an uninterrupted one would.

A rule (``uniform``, ``sandwich``, ``nasvit``, …; see :mod:`spacelang.compiler.rules`) decides
which archs a step trains and how their losses and gradients combine; this loop owns the data,
the schedule, checkpoints, DDP and AMP.

The recipe (AdamW, cosine schedule with linear warm-up, label smoothing, stochastic depth,
optional mixup/cutmix) follows AutoFormer Table 3 / DeiT, scaled down for small data; see
docs/training.md.  Checkpoints are written atomically after every epoch (see ``checkpoint.py``).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch

from spacelang.errors import CheckpointError, OptionError
from spacelang.util.atomic import write_json, write_text

from . import checkpoint as ckpt
from . import distributed, retokenize
from .distributed import Dist
from .precision import MODES, check_mode, grad_scaler
from .bn import bn_batches
from .data import Data, load_data
from .evaluate import CachedLoader, evaluate
from .identity import resume_check
from .rules import StepContext, create_rule, rule_class
from .rules.recipes import recipe_settings
from .runlock import RunLock
from .supernet import build_supernet

RETOKENIZE_COLUMNS = retokenize.LOG_COLUMNS  # phase and training FLOPs of runs with --retokenize
SAMPLERS = ("uniform", "sandwich")  # the rules `--sampler` (the old name of `--rule`) accepts
# search-validation accuracy of the largest and the smallest subnet (not the best and worst arch);
# conflict: the rule's gradient-conflict ratio in percent (NASViT Table 4/7; empty for uniform)
LOG_FIELDS = ["epoch", "step", "lr", "loss", "acc_largest", "acc_smallest", "conflict", "conflict_raw",
              *RETOKENIZE_COLUMNS, "seconds", "images_per_s"]
#: every this many steps (and at the first step of an invocation) the ranks compare their archs
ARCH_CHECK_EVERY = 50
#: the names these columns had in logs written before the rename
OLD_LOG_NAMES = {"val_acc_max": "acc_largest", "val_acc_min": "acc_smallest"}


@dataclass
class TrainConfig:
    """Every setting that decides the trained weights (stored in the checkpoint, reused on resume)."""

    data: str = "digits"
    epochs: int = 100
    batch_size: int = 64
    rule: str = "uniform"         # the training rule (compiler/rules/): uniform | sandwich | nasvit
    sandwich_k: int = 2           # random middle subnets per sandwich/nasvit step (S3 and NASViT use 2)
    kd: str = "kl"                # nasvit: in-place distillation divergence, kl | alpha (AlphaNet)
    prioritize: str = "sub"       # nasvit: gradient projection (Eq. 1), sub | sup | none
    projection: str = "global"    # nasvit: project the whole gradient vector or each tensor (global | tensor)
    na: int = 16                  # multiarch: subnets a step, one masked forward/backward (ViT-ResNAS N_a)
    warmup_sampling: float = 0.0  # multiarch: epochs over which the sampled range widens from the largest subnet
    token_label: bool = False     # multiarch: token labelling with CutMix/Mixup switching (ViT-ResNAS §2.4)
    recipe: str = "deit"          # deit | nasvit (Table 5's weak recipe; compiler/rules/recipes.py)
    auto_augment: str | None = None  # timm auto-augmentation of image folders, e.g. rand-m1-n1
    lr: float = 1e-3              # AutoFormer Table 3 (batch 1024); also good at batch 64 on digits
    min_lr: float = 1e-5          # S3 §4.1
    warmup_epochs: float = 5.0    # Table 3 warms up 20 of 500 epochs; 5 of 100 keeps the ratio
    warmup_lr: float = 1e-6
    weight_decay: float = 0.05    # Table 3
    label_smoothing: float = 0.1  # Table 3
    drop_path: float = 0.1        # Table 3
    mixup: float = 0.0            # DeiT 0.8; off for 8×8 digits (docs/training.md)
    cutmix: float = 0.0           # DeiT 1.0; off for 8×8 digits
    shift: int = 0                # random translation in pixels (cheap in-memory augmentation for digits)
    clip_grad: float | None = None
    seed: int = 0
    workers: int = 0
    amp: str = "none"             # mixed precision: none | bf16 | fp16 (compiler/precision.py)
    retokenize: str | None = None  # the stem's (stride, dilation) schedule, As-ViT §4 (compiler/retokenize.py)
    sampler: dataclasses.InitVar[str | None] = None  # the old name of ``rule`` (uniform, sandwich)

    def __post_init__(self, sampler: str | None) -> None:
        if sampler is not None and sampler != self.rule:
            if self.rule != "uniform":
                raise OptionError(f"--sampler {sampler} and --rule {self.rule} disagree (--sampler is the old "
                                  f"name of --rule)")
            self.rule = sampler
        self.sampler = self.rule  # read by code written before the rules registry

    @classmethod
    def for_data(cls, data: str, **overrides) -> "TrainConfig":
        """Defaults for a dataset: DeiT's mixup/cutmix for image folders; batch 32, lr 2e-3 and
        2-pixel shifts for digits (docs/training.md); ``overrides`` that are not None win."""
        base: dict[str, Any] = {"data": data}
        if data == "digits":
            # ~1.3k images: smaller batches give the ViT enough steps (39 a epoch); see docs/training.md
            base.update(shift=2, batch_size=32, lr=2e-3)
        elif data != "synthetic":
            base.update(mixup=0.8, cutmix=1.0, epochs=300, batch_size=128, warmup_epochs=20)
        given = {k: v for k, v in overrides.items() if v is not None}
        base.update(recipe_settings(given.get("recipe", "deit"), data))  # the recipe's presets; flags still win
        if "epochs" in given and "warmup_epochs" not in given:
            # keep the default warm-up's share of the run (Table 3: 20 of 500 epochs)
            default = cls(**base)
            base["warmup_epochs"] = default.warmup_epochs * given["epochs"] / default.epochs
        base.update(given)
        cfg = cls(**base)
        cfg.check()
        return cfg

    def check(self) -> None:
        rule_class(self.rule).check(self)
        recipe_settings(self.recipe, self.data)  # refuses an unknown recipe
        if self.epochs < 1 or self.batch_size < 1 or self.sandwich_k < 0:
            raise OptionError("epochs and batch size must be positive, sandwich k non-negative")
        if self.retokenize is not None:
            retokenize.check_covers(retokenize.parse_schedule(self.retokenize), self.epochs)
        if self.amp not in MODES:
            raise OptionError(f"amp must be one of {', '.join(MODES)}, got {self.amp!r}")
        if (self.token_label or self.warmup_sampling) and self.rule != "multiarch":
            raise OptionError(f"--token-label and --warmup-sampling are settings of --rule multiarch, not {self.rule}")
        if self.auto_augment and self.data in ("digits", "synthetic"):
            raise OptionError(f"auto-augmentation {self.auto_augment!r} needs images from an image folder; "
                              f"dataset {self.data} is held as tensors", hint="use --recipe nasvit without --auto-augment")

    def as_json(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self, steps_per_epoch: int) -> list[str]:
        """The settings a run uses, as a few readable lines (printed when training starts)."""
        sampler = create_rule(self).describe()
        return [f"  schedule  {self.epochs} epochs × {steps_per_epoch} steps, batch {self.batch_size}, "
                f"AdamW lr {self.lr:g} → {self.min_lr:g} (cosine), warm-up {self.warmup_epochs:g} epochs, "
                f"weight decay {self.weight_decay:g}",
                f"  rule      {sampler}",
                f"  recipe    {self.recipe}" + (f", auto-augment {self.auto_augment}" if self.auto_augment else ""),
                f"  regular.  label smoothing {self.label_smoothing:g}, drop path {self.drop_path:g}, "
                f"mixup {self.mixup:g}, cutmix {self.cutmix:g}, shift {self.shift} px, "
                f"clip grad {'off' if not self.clip_grad else f'{self.clip_grad:g}'}",
                f"  seed      {self.seed}, data workers {self.workers}, mixed precision {self.amp}"] + \
            ([f"  retokenize {self.retokenize} (stem stride,dilation by epoch)"] if self.retokenize else [])

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "rule" not in d and d.get("sampler"):
            kw["rule"] = d["sampler"]  # written before the rules registry
        return cls(**kw)


# ---------------------------------------------------------------------------------------------- sampling
def sample_archs(space, sampler: str, seed: int, step: int, k: int = 2,
                 sample: Callable | None = None) -> list[dict]:
    """The archs rule ``sampler`` trains at ``step`` (uniform: one sample; sandwich: max, min and
    ``k`` random); a function of ``(seed, step)`` alone (:func:`~spacelang.compiler.rules.step_rng`)."""
    rule = create_rule(TrainConfig(rule=sampler, sandwich_k=k))
    return rule.archs(space, seed, step, sample or space.sample)


# ---------------------------------------------------------------------------------------------- augmentation
def random_shift(x: torch.Tensor, pixels: int, g: torch.Generator, offset: int = 0,
                 total: int | None = None) -> torch.Tensor:
    """Translate each image by up to ``pixels`` in each direction (edge pixels replicated into the gap).

    ``x`` is the slice ``[offset, offset + len(x))`` of a global batch of ``total`` images (one
    process's share under torchrun): the shifts are drawn for the whole batch and sliced, so each
    image moves the same whatever the number of processes."""
    if pixels <= 0 or len(x) == 0:
        return x
    n, _, h, w = x.shape
    total = n if total is None else total
    padded = torch.nn.functional.pad(x, (pixels,) * 4, mode="replicate")
    dx = torch.randint(0, 2 * pixels + 1, (total,), generator=g)[offset:offset + n]
    dy = torch.randint(0, 2 * pixels + 1, (total,), generator=g)[offset:offset + n]
    rows = (dy[:, None] + torch.arange(h)[None, :])                     # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None, :])                     # (n, w)
    idx_n = torch.arange(n)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def _mix_seed(seed: int, step: int) -> int:
    return (int(seed) * 2_147_483_647 + int(step) * 104_729 + 7) % (2 ** 63)


# ---------------------------------------------------------------------------------------------- the loop
def _make_loss(cfg: TrainConfig, num_classes: int):
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
    if cfg.mixup > 0 or cfg.cutmix > 0:
        mix = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.label_smoothing,
                    num_classes=num_classes)
        return mix, SoftTargetCrossEntropy()
    if cfg.label_smoothing > 0:
        return None, LabelSmoothingCrossEntropy(smoothing=cfg.label_smoothing)
    return None, torch.nn.CrossEntropyLoss()


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's global generators (initialisation of a supernet; compile does the same)."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


@dataclass
class TrainResult:
    epoch: int
    step: int
    val_acc_max: float | None
    val_acc_min: float | None
    seconds: float


def train(space, cfg: TrainConfig, rundir: str, resume: bool = False, progress: bool = True,
          stop_after: int | None = None, data: Data | None = None, log: Callable[[str], None] | None = None,
          sample: Callable | None = None, device: str = "cpu") -> TrainResult:
    """Train the supernet of ``space`` into ``rundir`` (checkpoint after every epoch).

    ``rundir`` is locked for the whole call (:class:`~spacelang.compiler.runlock.RunLock`): a
    second process training into it is refused.  The log (``log.csv``) is saved inside every
    checkpoint and copied to ``rundir`` after it, so a fresh run (``--force``) replaces the old
    log only together with the old checkpoint.  A dataset path is stored absolute.

    With ``resume`` the run continues from ``rundir``'s checkpoint (which must come from the same
    space — the same canonical text; layout and comments may differ) exactly as if it had never
    stopped.  ``stop_after`` ends this invocation after that many
    epochs (preemption, tests).  ``sample(rng) -> arch`` replaces uniform sampling (e.g. a fixed
    arch, to train one subnet alone).  ``device`` is where the net runs (``cpu``, ``cuda``);
    checkpoints always hold CPU tensors.  Returns the state after the last epoch run.
    """
    dist = distributed.setup(device)
    # rank 0 alone writes the run directory, so it alone holds the lock
    with RunLock(rundir) if dist.main else contextlib.nullcontext():
        return _train(space, cfg, rundir, resume, progress, stop_after, data, log, sample, device, dist)


def _train(space, cfg: TrainConfig, rundir: str, resume: bool, progress: bool, stop_after: int | None,
           data: Data | None, log: Callable[[str], None] | None, sample: Callable | None, device: str,
           dist: Dist) -> TrainResult:
    from timm.data.mixup import mixup_target
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    from .progress import Progress

    cfg.check()
    if cfg.data not in ("digits", "synthetic") and not os.path.isabs(cfg.data):
        cfg = dataclasses.replace(cfg, data=os.path.abspath(cfg.data))  # searchable from any directory
    log = (log or (lambda s: print(s, file=sys.stderr))) if dist.main else (lambda s: None)
    device = distributed.device_for(device, dist)
    seed_everything(cfg.seed)
    net = build_supernet(space, drop_path=cfg.drop_path).to(device)
    max_arch, min_arch = space.max_arch(), space.min_arch()
    folder = cfg.data not in ("digits", "synthetic")
    data = data or load_data(cfg.data, space.input_shape(max_arch), space.classes, **(
        {"num_workers": cfg.workers, "auto_augment": cfg.auto_augment} if folder else {}))
    mixup, criterion = _make_loss(cfg, space.classes)
    epoch, step = 0, 0
    c = ckpt.load(rundir) if resume and ckpt.checkpoint_dir(rundir) is not None else None
    if c is not None:
        cfg = _per_process_batch(cfg, c, dist, rundir, log)
    check_mode(cfg.amp, device)
    opt = create_optimizer_v2(net, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay, **_fused_adamw(device))
    scaler = grad_scaler(device, cfg.amp)
    steps_per_epoch = len(data.train_loader(cfg.batch_size, cfg.seed, 0, dist=dist))
    total = cfg.epochs * steps_per_epoch
    sched = CosineLRScheduler(opt, t_initial=total, lr_min=cfg.min_lr, warmup_lr_init=cfg.warmup_lr,
                              warmup_t=int(cfg.warmup_epochs * steps_per_epoch), t_in_epochs=False)
    draw = sample or space.sample  # unconstrained, as AutoFormer and S3 (Alg. 2) train
    rule = create_rule(cfg)
    rule.check_space(space)
    rule.setup(steps_per_epoch, total)
    retok = retokenize.Retokenizer(space, net, cfg.retokenize, cfg.epochs) if cfg.retokenize else None
    if retok is not None and not retok.ends_at_the_stem:
        log(f"spacelang: warning: the last --retokenize phase is not {space.filename}'s own stem; evaluation "
            f"and export after training use the stem as written")
    params = list(net.parameters())

    log_path = os.path.join(rundir, "log.csv")
    log_rows: list[dict] = []
    if c is not None:
        if resume_check(c.source, space, rundir):
            log(f"spacelang: note: {space.filename} differs from the space of {rundir}'s checkpoint only in "
                f"layout or comments; resuming")
        net.load_state_dict(c.weights)  # copies into the parameters on their device
        if c.optimizer is not None:
            opt.load_state_dict(c.optimizer)
        if c.state.get("grad_scaler"):
            scaler.load_state_dict(c.state["grad_scaler"])
        ckpt.set_rng_state(c.state["rng"])
        epoch, step = c.epoch, c.step
        if step != epoch * steps_per_epoch:
            raise CheckpointError(f"{rundir}: checkpoint at step {step} does not close epoch {epoch} "
                                  f"({steps_per_epoch} steps per epoch: batch size or data changed?)")
        log_rows = _checkpointed_log(c, log_path, epoch)
        if dist.main:
            write_text(log_path, _log_text(log_rows))  # drop rows of epochs whose checkpoint was lost

    val = CachedLoader(data.eval_loader("val"), device) if data.in_memory else data.eval_loader("val")
    result = TrainResult(epoch, step, None, None, 0.0)
    if epoch >= cfg.epochs:
        log(f"{rundir}: already trained for {epoch} epochs")
        return result
    log("\n".join([f"train {space.name} into {rundir}" + (f", resuming after epoch {epoch}" if epoch else ""),
                   f"  data      {data.describe()}", *cfg.describe(steps_per_epoch), f"  device    {device}"]
                  + ([f"  processes {dist.world} ({dist.backend}) × batch {cfg.batch_size} = effective batch "
                      f"{dist.world * cfg.batch_size}"] if dist.active else [])))
    bar = Progress(total, initial=step, desc=f"train {space.name}", enabled=progress and dist.main, write=log)
    n_train = len(data.train)
    first_step = step
    t_start = time.perf_counter()
    epochs_run = 0
    try:
        while epoch < cfg.epochs:
            run = retok.net(epoch) if retok is not None else net  # the phase's token maps, the same weights
            run.train()
            losses = []
            t_epoch, images = time.perf_counter(), 0
            for j, (x, y) in enumerate(data.train_loader(cfg.batch_size, cfg.seed, epoch, dist=dist)):
                sched.step_update(num_updates=step)
                archs = rule.archs(space, cfg.seed, step, draw)
                if step == first_step or step % ARCH_CHECK_EVERY == 0:
                    dist.check_same(archs, f"the archs of step {step}")
                # this rank's place in the step's global batch (ranks hold contiguous slices)
                global_n = min(dist.world * cfg.batch_size, n_train - j * dist.world * cfg.batch_size)
                share = len(x) / global_n  # this rank's mean loss times its share = its part of the global mean
                images += global_n
                if retok is not None:
                    retok.count(epoch, archs, global_n)
                g = torch.Generator().manual_seed(_mix_seed(cfg.seed, step))
                x = random_shift(x, cfg.shift, g, offset=dist.rank * cfg.batch_size, total=global_n).to(device)
                y = y.to(device)
                target = y
                if mixup is not None and not rule.mixes_inputs:  # a rule that mixes itself gets the labels
                    if len(x) % 2 == 0:
                        x, target = mixup(x, y)
                    else:  # timm's batch mixup pairs images: an odd last batch gets smoothed labels only
                        target = mixup_target(y, space.classes, lam=1.0, smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                # the rule's forward/backward passes; it leaves the gradient summed over the ranks
                step_loss = rule.step(StepContext(run, x, target, criterion, share, device, cfg.amp, scaler,
                                                  dist, params, labels=y, offset=dist.rank * cfg.batch_size,
                                                  step=step), archs)
                if not math.isfinite(step_loss):
                    raise FloatingPointError(f"loss is {step_loss} at step {step}")
                scaler.unscale_(opt)
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_grad)
                scaler.step(opt)
                scaler.update()
                step += 1
                losses.append(step_loss / len(archs))
                bar.update(1, epoch=epoch + 1, loss=f"{losses[-1]:.3f}")
            epoch += 1
            epochs_run += 1
            seconds_epoch = time.perf_counter() - t_epoch
            # BatchNorm supernets (NASViT): each arch's statistics are recalibrated before it is measured
            acc_max, acc_min = evaluate(run, [max_arch, min_arch], val, device=device, dist=dist, amp=cfg.amp,
                                        bn_batches=bn_batches(net, data, dataclasses.asdict(cfg)))
            row = {"epoch": epoch, "step": step, "lr": f"{opt.param_groups[0]['lr']:.6g}",
                   "loss": f"{sum(losses) / max(len(losses), 1):.5f}", "acc_largest": f"{acc_max:.2f}",
                   "acc_smallest": f"{acc_min:.2f}", "seconds": f"{time.perf_counter() - t_start:.1f}",
                   "images_per_s": f"{images / max(seconds_epoch, 1e-9):.1f}", **rule.epoch_metrics(),
                   **(retok.epoch_metrics(epoch - 1) if retok is not None else {})}
            log_rows.append(row)
            bar.note(f"epoch {epoch}/{cfg.epochs}", loss=row["loss"], acc_largest=f"{acc_max:.1f}%",
                     acc_smallest=f"{acc_min:.1f}%")
            state = {"epoch": epoch, "step": step, "config": cfg.as_json(), "rng": ckpt.rng_state(),
                     "sampler": {"kind": cfg.rule, "seed": cfg.seed, "k": cfg.sandwich_k, "next_step": step,
                                 "rule": "random.Random('spacelang-sampler/{seed}/{step}') per step"},
                     "metrics": {"loss": float(row["loss"]), "val_acc_max": acc_max, "val_acc_min": acc_min},
                     "space_name": space.name, "data": data.describe(), "data_path": cfg.data,
                     "data_info": {k: v for k, v in data.info.items() if isinstance(v, (str, int, float, list))},
                     "world_size": dist.world, "grad_scaler": scaler.state_dict() if scaler.is_enabled() else None}
            log_text = _log_text(log_rows)
            if dist.main:
                ckpt.save(rundir, net, space.source, state, opt, extra={"log.csv": log_text})
                write_text(log_path, log_text)  # after the checkpoint: the two are replaced together
            dist.barrier()  # no rank runs ahead of the checkpoint it may resume from
            result = TrainResult(epoch, step, acc_max, acc_min, time.perf_counter() - t_start)
            if stop_after is not None and epochs_run >= stop_after:
                break
    finally:
        bar.close()
    if retok is not None and dist.main and epoch >= cfg.epochs and (flops := retokenize.summary(log_rows)):
        log(retokenize.summary_text(flops))
        write_json(os.path.join(rundir, "retokenize.json"), flops)
    return result


def _fused_adamw(device) -> dict:
    """``fused=True`` where torch has a fused AdamW for the device: the same algorithm in one kernel
    (rounding aside), ~4× faster ``step()`` over the supernet's full tensors at partial widths
    (bench/bench_fused.py: 53.4 → 14.0 ms at AutoFormer-T's min arch on this CPU)."""
    from torch.torch_version import TorchVersion
    cuda = torch.device(device).type == "cuda"
    return {"fused": True} if cuda or TorchVersion(torch.__version__) >= "2.4" else {}


def _per_process_batch(cfg: TrainConfig, c, dist: Dist, rundir: str, log) -> TrainConfig:
    """The per-process batch that keeps the checkpoint's effective batch under this world size
    (a run may resume on another number of processes)."""
    was = int(c.state.get("world_size") or 1)
    if was == dist.world:
        return cfg
    effective = cfg.batch_size * was
    if effective % dist.world:
        raise CheckpointError(f"{rundir} was trained with an effective batch of {effective} "
                              f"({was} × {cfg.batch_size}), which {dist.world} processes cannot share evenly",
                              hint=f"resume with a number of processes that divides {effective}")
    log(f"spacelang: note: {rundir} ran on {was} process(es) with batch {cfg.batch_size}; resuming on "
        f"{dist.world} with batch {effective // dist.world} each (the same effective batch {effective})")
    return dataclasses.replace(cfg, batch_size=effective // dist.world)


def _checkpointed_log(c, path: str, epoch: int) -> list[dict]:
    """The log rows of the checkpoint's epochs: the copy saved inside the checkpoint, or (older
    checkpoints) ``path`` cut at the checkpoint's epoch."""
    text = c.read_extra("log.csv")
    if text is None:
        if not os.path.exists(path):
            return []
        with open(path, newline="", encoding="utf-8") as f:
            text = f.read()
    return [{OLD_LOG_NAMES.get(k, k): v for k, v in r.items()}
            for r in csv.DictReader(io.StringIO(text, newline="")) if int(r["epoch"]) <= epoch]


def _log_text(rows: list[dict]) -> str:
    """``log.csv``'s text: the header of :data:`LOG_FIELDS` and one line per epoch."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=LOG_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def load_supernet(rundir: str):
    """``(space, net, checkpoint)`` of a run directory, weights loaded, in eval mode."""
    c = ckpt.load(rundir, optimizer=False)
    space = c.space()
    cfg = c.state.get("config") or {}
    net = build_supernet(space, drop_path=float(cfg.get("drop_path", 0.0)))
    net.load_state_dict(c.weights)
    net.eval()
    return space, net, c
