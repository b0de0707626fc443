"""Training batches for BatchNorm recalibration, chosen the same way by every evaluator.

Supernets with BatchNorm (``conv_stem``) need each arch's running statistics re-estimated before
it is evaluated (see :func:`spacelang.compiler.evaluate.recalibrate_bn`).  ``search``, ``evolve``
and ``eval`` all take the first :data:`BN_BATCHES` batches of epoch 0's training order under the
run's batch size and seed, so an arch measured by any of them gets the same statistics.
"""
from __future__ import annotations

from typing import Mapping

BN_BATCHES = 4


def bn_batches(net, data, config: Mapping | None, n: int = BN_BATCHES) -> list | None:
    """The recalibration batches for ``net`` (None when it has no BatchNorm).

    ``config`` is the run's training config (``batch_size`` and ``seed``; defaults 64 and 0).
    """
    from .evaluate import has_batchnorm
    if not has_batchnorm(net):
        return None
    config = config or {}
    it = iter(data.train_loader(int(config.get("batch_size") or 64), int(config.get("seed") or 0), 0))
    return [b for _, b in zip(range(n), it)]


__all__ = ["bn_batches", "BN_BATCHES"]
