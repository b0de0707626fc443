"""What every training rule shares: the step's context, the per-step RNG, the default step.

A rule answers two questions for each optimizer step of ``compiler/train.py``'s loop:

- :meth:`Rule.archs` — which archs the step trains, a function of ``(seed, step)`` alone, so every
  process of a torchrun job and every resumed run draws the same;
- :meth:`Rule.step` — the forward and backward passes of those archs on this process's slice of
  the batch, ending with the *global* gradient in ``p.grad`` (summed over the ranks through
  :class:`~spacelang.compiler.distributed.Dist`): a rule that needs the reduced gradient of a group
  of subnets (gradient projection) reduces the groups itself before combining them.

The loop does the rest (data, augmentation, schedule, unscaling, clipping, the optimizer step,
evaluation, checkpoints) and logs :meth:`Rule.epoch_metrics` in ``log.csv``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..evaluate import fit_input
from ..precision import autocast
from .gradients import ConflictMeter


def step_rng(seed: int, step: int) -> random.Random:
    """The sampler's RNG for one step: a function of (seed, step) alone (str seeds hash with SHA-512)."""
    return random.Random(f"spacelang-sampler/{seed}/{step}")


@dataclass
class StepContext:
    """One step's inputs on this process: the net, this rank's slice of the batch and its targets.

    ``share`` is the slice's share of the global batch (a rank's mean loss times its share is its
    part of the global mean); ``params`` is the net's parameter list in a fixed order."""

    net: torch.nn.Module
    x: torch.Tensor
    target: Any                   # what the criterion takes (class indices or mixed soft targets)
    criterion: Callable
    share: float
    device: Any
    amp: str
    scaler: Any                   # torch.amp.GradScaler (a pass-through unless fp16)
    dist: Any                     # compiler.distributed.Dist
    params: list
    labels: Any = None            # the class indices before mixup (rules that make their own targets)
    offset: int = 0               # where this slice starts in the step's global batch (ranks hold contiguous slices)
    step: int = 0                 # the optimizer step (rules that draw per-step randomness: token labelling)

    @property
    def empty(self) -> bool:
        """This rank's slice is empty (the short last batch of an epoch): it adds no gradient."""
        return len(self.x) == 0

    def run(self, arch: dict, loss: Callable | None = None):
        """``(logits, loss)`` of ``arch`` on this slice under the run's autocast; ``loss(logits)``
        defaults to the criterion against the targets."""
        with autocast(self.device, self.amp):
            out = self.net(fit_input(self.x, self.net.input_shape(arch)), arch)
            value = (loss or (lambda o: self.criterion(o, self.target)))(out)
        return out, value

    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagate this rank's part of the global mean loss (scaled for fp16)."""
        self.scaler.scale(loss * self.share).backward()


class Rule:
    """A training rule (see the module docstring); subclasses set ``name`` and register."""

    name: str = ""
    #: trains the largest subnet together with others: log.csv gets its gradient-conflict ratio
    measures_conflict: bool = False
    #: the rule mixes its own inputs and targets (token labelling): the loop's mixup/cutmix is
    #: bypassed and ``ctx.target`` holds the unmixed labels
    mixes_inputs: bool = False

    def __init__(self, cfg):
        self.cfg = cfg
        self.meter = ConflictMeter()

    @classmethod
    def check(cls, cfg) -> None:
        """Refuse settings this rule cannot run with (:class:`~spacelang.errors.OptionError`)."""

    def check_space(self, space) -> None:
        """Refuse a space this rule cannot train (:class:`~spacelang.errors.CompileError`); called
        once before the first step."""

    def setup(self, steps_per_epoch: int, total_steps: int) -> None:
        """Called once before the first step: the schedule's length (a rule whose sampling changes
        over training — a warm-up of the sampled range — computes it from the step)."""

    def archs(self, space, seed: int, step: int, draw: Callable) -> list[dict]:
        """The archs trained at ``step`` (``draw(rng)`` samples one arch)."""
        raise NotImplementedError

    def step(self, ctx: StepContext, archs: list[dict]) -> float:
        """Train ``archs`` on ``ctx``: leave the global gradient in ``p.grad``; return the sum of the
        archs' loss values on this rank (for the log)."""
        total = 0.0
        for a in archs:
            if ctx.empty:
                continue
            _, loss = ctx.run(a)
            ctx.backward(loss)  # gradients of the step's subnets accumulate
            total += float(loss.detach())
        ctx.dist.reduce_gradients(ctx.params)
        return total

    def describe(self) -> str:
        """One line for the run's settings printout."""
        return self.name

    def epoch_metrics(self) -> dict[str, str]:
        """Columns of log.csv for the epoch just ended (and a fresh count for the next)."""
        return self.meter.pop() if self.measures_conflict else {}


__all__ = ["Rule", "StepContext", "step_rng"]
