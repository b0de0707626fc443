"""Helpers shared by the backend's commands (importing this module does not import torch)."""
from __future__ import annotations

import sys


def set_threads(n: int | None) -> None:
    """Use ``n`` intra-op threads (None: torch's default).  On a busy machine 1 thread beats
    oversubscribed OpenMP by an order of magnitude for these small models.  Also keeps large
    tensor allocations in glibc's heap (:mod:`spacelang.compiler.allocator`): every command that
    runs networks calls this first."""
    import torch

    from ..allocator import keep_large_allocations
    keep_large_allocations()
    if n:
        torch.set_num_threads(n)


def trained_checkpoint(rundir: str) -> str | None:
    """Why ``rundir`` must not be overwritten without --force: it holds a checkpoint past epoch 0
    (or one we cannot read); None when it holds none, or only an initialised one."""
    from spacelang.errors import CheckpointError
    from .. import checkpoint as ckpt
    if ckpt.checkpoint_dir(rundir) is None:
        return None
    try:
        epoch = ckpt.load(rundir, optimizer=False).epoch
    except CheckpointError:
        epoch = None
    if epoch == 0:
        return None
    return f"{rundir} already holds a checkpoint" + (f" trained for {epoch} epochs" if epoch else "")


def error(msg: str) -> int:
    """Print ``spacelang: error: msg`` and return exit code 2 (usage or input error)."""
    print(f"spacelang: error: {msg}", file=sys.stderr)
    return 2


def report(e) -> int:
    """Print a :class:`~spacelang.errors.SpacelangError` as the CLI does and return exit code 2."""
    print(e.render(), file=sys.stderr)
    return 2
