"""Accuracy of many archs with weights inherited from the supernet.

The data is read once per call: each batch runs through every arch before the next batch is
loaded, so evaluating a generation of 50 archs costs one pass of the loader, not 50.  Evaluation
runs under ``torch.inference_mode()`` in eval mode (no drop path).  Transformer subnets need no
recalibration (LayerNorm keeps no running statistics); supernets with BatchNorm (``conv_stem``)
can recalibrate each arch's statistics on a few training batches first (``bn_batches``), as
once-for-all networks do, because the running statistics accumulated in supernet training mix
many widths.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from spacelang.errors import DataError

from .distributed import SINGLE, Dist, my_share
from .precision import autocast


def fit_input(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Resize a batch to an arch's input ``(C, H, W)`` when the space makes resolution a dimension."""
    if tuple(x.shape[-2:]) != tuple(shape[-2:]):
        x = F.interpolate(x, size=tuple(shape[-2:]), mode="bilinear", align_corners=False)
    return x


def has_batchnorm(net: nn.Module) -> bool:
    return any("BatchNorm" in type(m).__name__ for m in net.modules())


@torch.no_grad()
def recalibrate_bn(net: nn.Module, arch: Mapping[str, Any], batches: Iterable,
                   device: str | torch.device = "cpu") -> None:
    """Re-estimate BatchNorm running statistics for ``arch``: the plain average over ``batches``.

    Only the BatchNorm layers switch to training mode, so drop path stays off (and draws no random
    numbers).  The momentum of batch ``i`` is ``1 / (i + 1)``, which makes the running estimate the
    cumulative average (what ``momentum=None`` means to ``nn.BatchNorm2d``) for elastic layers too.
    """
    bns = [m for m in net.modules() if "BatchNorm" in type(m).__name__]
    saved = [m.momentum for m in bns]
    was = net.training
    net.eval()
    for m in bns:
        m.running_mean.zero_()
        m.running_var.fill_(1.0)
        m.train()
    shape = net.input_shape(arch)
    try:
        for i, (x, _) in enumerate(batches):
            for m in bns:
                m.momentum = 1.0 / (i + 1)
            net(fit_input(x.to(device), shape), arch)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        net.train(was)


def evaluate(net: nn.Module, archs: Sequence[Mapping[str, Any]], loader: Iterable,
             device: str | torch.device = "cpu", bn_batches: Iterable | None = None,
             dist: Dist = SINGLE, amp: str = "none") -> list[float]:
    """Top-1 accuracy in percent of each arch on ``loader``'s ``(x, y)`` batches.

    ``bn_batches`` (training batches) is used only if the supernet has BatchNorm: then each arch's
    statistics are recalibrated on it and evaluated before the next arch (one loader pass per arch).
    Under torchrun (``dist``) each process evaluates every ``world``-th batch and the correct
    counts are summed over the processes, so the accuracies do not depend on the world size.
    ``amp`` runs the forward passes under autocast (``bf16``/``fp16``).
    """
    archs = list(archs)
    if not archs:
        return []
    was = net.training
    try:
        if bn_batches is not None and has_batchnorm(net):
            bn_batches = list(bn_batches)
            out = []
            for a in archs:
                recalibrate_bn(net, a, bn_batches, device)
                out.extend(_evaluate(net, [a], loader, device, dist, amp))
            return out
        return _evaluate(net, archs, loader, device, dist, amp)
    finally:
        net.train(was)


def _evaluate(net, archs, loader, device, dist: Dist = SINGLE, amp: str = "none") -> list[float]:
    net.eval()
    shapes = [net.input_shape(a) for a in archs]
    correct = [0] * len(archs)
    total = 0
    with torch.inference_mode(), autocast(device, amp):
        for x, y in my_share(loader, dist):
            x, y = x.to(device), y.to(device)
            total += y.numel()
            for i, (a, shape) in enumerate(zip(archs, shapes)):
                pred = net(fit_input(x, shape), a).argmax(dim=-1)
                correct[i] += int((pred == y).sum())
    if dist.active:
        counts = dist.all_reduce_sum(torch.tensor([total, *correct], dtype=torch.long))
        total, correct = int(counts[0]), [int(c) for c in counts[1:]]
    if total == 0:
        raise DataError("the evaluation split is empty")
    return [100.0 * c / total for c in correct]


def evaluate_loss(net: nn.Module, archs: Sequence[Mapping[str, Any]], loader: Iterable,
                  device: str | torch.device = "cpu") -> list[float]:
    """Mean cross-entropy (nats) of each arch on ``loader``: a finer ranking signal than top-1 on
    small splits, where one image is a third of a point of accuracy."""
    archs = list(archs)
    was = net.training
    net.eval()
    shapes = [net.input_shape(a) for a in archs]
    total, n = [0.0] * len(archs), 0
    try:
        with torch.inference_mode():
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                n += y.numel()
                for i, (a, shape) in enumerate(zip(archs, shapes)):
                    total[i] += float(F.cross_entropy(net(fit_input(x, shape), a), y, reduction="sum"))
    finally:
        net.train(was)
    if n == 0:
        raise DataError("the evaluation split is empty")
    return [t / n for t in total]


class CachedLoader:
    """A small evaluation split held in memory as batches, so repeated evaluations skip the transforms."""

    def __init__(self, loader: Iterable, device: str | torch.device = "cpu"):
        self.batches = [(x.to(device), y.to(device)) for x, y in loader]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
