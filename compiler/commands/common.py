"""Helpers shared by the backend's commands (importing this module does not import torch)."""
from __future__ import annotations

import json
import os
import sys


def set_threads(n: int | None) -> None:
    """Use ``n`` intra-op threads (None: torch's default).  On a busy machine 1 thread beats
    oversubscribed OpenMP by an order of magnitude for these small models."""
    import torch
    if n:
        torch.set_num_threads(n)


def add_threads(p) -> None:
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch intra-op threads (default: torch's choice; 1 is fastest on a shared machine)")


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json_atomic(path: str, obj) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def trained_checkpoint(rundir: str) -> str | None:
    """Why ``rundir`` must not be overwritten without --force: it holds a checkpoint past epoch 0
    (or one we cannot read); None when it holds none, or only an initialised one."""
    from .. import checkpoint as ckpt
    if ckpt.checkpoint_dir(rundir) is None:
        return None
    try:
        epoch = ckpt.load(rundir).epoch
    except (ValueError, OSError):
        epoch = None
    if epoch == 0:
        return None
    return f"{rundir} already holds a checkpoint" + (f" trained for {epoch} epochs" if epoch else "")


def error(msg: str) -> int:
    """Print ``spacelang: error: msg`` and return exit code 2 (usage or input error)."""
    print(f"spacelang: error: {msg}", file=sys.stderr)
    return 2
