"""Many processes, one run: torchrun's environment, gradient reduction, sharded evaluation.

spacelang manages no processes of its own: ``torchrun --nproc-per-node N -m spacelang train …``
starts them and sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``; :func:`setup` joins
the process group (NCCL on CUDA, Gloo on CPU).  Without torchrun everything here is the identity
(:data:`SINGLE`), so one code path serves one process and many.

How a step stays the same on every rank (and equal to one process with the whole batch):

- every rank draws the same archs (a function of ``(seed, step)``), and every ``check_every``
  steps the ranks compare a hash of them (:meth:`Dist.check_same`) and stop on a mismatch;
- the global batch of a step is cut into contiguous per-rank slices (:func:`shard_batches`), so
  the union of the ranks' batches is the single-process batch of ``world × batch``;
- each rank's loss is weighted by its share of the global batch and the gradients are summed
  over ranks (:meth:`Dist.reduce_gradients`), which is the gradient of the global mean loss.

Weight entanglement leaves parameters unused at every step (inactive blocks, and the unused
slices of used ones).  Rather than ``DistributedDataParallel(find_unused_parameters=True)``, which
traverses the autograd graph every step to find them, the gradients are reduced directly: the set
of parameters that received a gradient is identical on every rank (same archs, checked), so only
those are flattened into one buffer and all-reduced; the zeros of unused slices travel with them.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import torch

from spacelang.errors import DistributedError


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: ``rank`` of ``world`` (``SINGLE`` outside torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def main(self) -> bool:
        """Whether this process writes logs, checkpoints and results (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over the ranks in place (and return it); NCCL reduces on this rank's GPU."""
        if self.active:
            if self.backend == "nccl" and t.device.type != "cuda":
                on_gpu = t.to(f"cuda:{self.local_rank}")
                torch.distributed.all_reduce(on_gpu, op=torch.distributed.ReduceOp.SUM)
                t.copy_(on_gpu.cpu())
            else:
                torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
        return t

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def check_same(self, value: Any, what: str) -> None:
        """Stop with :class:`DistributedError` unless every rank holds the same ``value``."""
        if not self.active:
            return
        digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
        got: list = [None] * self.world
        torch.distributed.all_gather_object(got, digest)
        if len(set(got)) > 1:
            ranks = ", ".join(f"rank {r}: {h}" for r, h in enumerate(got))
            raise DistributedError(f"the processes disagree on {what} ({ranks})",
                                   hint="every rank must run the same space, settings and seed; "
                                        "a rank-dependent sampler breaks weight sharing")

    def reduce_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Sum the gradients over the ranks (each rank's loss already carries its batch share)."""
        if not self.active:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = self.all_reduce_sum(torch.cat([g.reshape(-1) for g in grads]))
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n


SINGLE = Dist()
_current: Dist = SINGLE


def setup(device: str = "cpu") -> Dist:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1 (once per process); else :data:`SINGLE`."""
    global _current
    if _current.active:
        return _current
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    if not torch.distributed.is_available():
        raise DistributedError("this torch build has no torch.distributed")
    backend = "nccl" if str(device).startswith("cuda") else "gloo"
    try:
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend=backend)
    except (RuntimeError, ValueError) as e:
        raise DistributedError(f"cannot join the process group ({backend}): {e}") from None
    _current = Dist(rank=torch.distributed.get_rank(), world=torch.distributed.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")), backend=backend)
    return _current


def current() -> Dist:
    """The :class:`Dist` of this process (after :func:`setup`)."""
    return _current


def device_for(device: str, dist: Dist) -> str:
    """``cuda`` under torchrun means this process's GPU (``cuda:LOCAL_RANK``)."""
    if str(device) == "cuda" and dist.active:
        return f"cuda:{dist.local_rank}"
    return str(device)


def shard_batches(n: int, batch_size: int, generator: torch.Generator, dist: Dist,
                  drop_last: bool = True) -> list[list[int]]:
    """This rank's index batches of one epoch.

    The epoch's order is ``torch.randperm(n, generator)`` (what a shuffling ``DataLoader`` draws),
    cut into global batches of ``world × batch_size``; rank ``r`` takes the ``r``-th contiguous
    slice of each.  One process with ``world × batch_size`` therefore sees, step by step, exactly
    the union of the ranks' batches.  A last global batch smaller than that is kept only without
    ``drop_last`` (then some ranks may get an empty slice: they still take part in the step).
    """
    order = torch.randperm(n, generator=generator).tolist()
    step = batch_size * dist.world
    out = []
    for start in range(0, n, step):
        chunk = order[start:start + step]
        if len(chunk) < step and drop_last:
            break
        out.append(chunk[dist.rank * batch_size:(dist.rank + 1) * batch_size])
    return out


def global_batch_len(local_len: int, dist: Dist) -> int:
    """The size of the step's global batch (the sum of the ranks' batch sizes)."""
    if not dist.active:
        return local_len
    t = torch.tensor([local_len], dtype=torch.long)
    return int(dist.all_reduce_sum(t).item())


def my_share(items: Sequence, dist: Dist) -> Iterator:
    """Every ``world``-th item starting at ``rank`` (evaluation batches, candidate lists)."""
    for i, item in enumerate(items):
        if i % dist.world == dist.rank:
            yield item


__all__ = ["Dist", "DistributedError", "SINGLE", "setup", "current", "device_for", "shard_batches",
           "global_batch_len", "my_share"]
