"""Checkpoint directories: safetensors and JSON only, written atomically, never unpickled.

A run directory holds ``checkpoint/`` with

- ``weights.safetensors``   the supernet's ``state_dict``;
- ``optimizer.safetensors`` the optimizer's tensor state (absent before the first training step),
  its non-tensor state and parameter groups live in ``state.json`` under ``"optimizer"``;
- ``state.json``            epoch, step, training config, sampler and RNG states (torch's as a list
  of ints), last metrics, the space's sha256;
- ``space.space``           the exact source the supernet was compiled from.

Writing goes to ``checkpoint.tmp`` first; the finished directory then replaces ``checkpoint`` by
two renames (old → ``checkpoint.old``, tmp → ``checkpoint``), so a crash at any moment leaves a
complete checkpoint under one of the two names and :func:`checkpoint_dir` finds it.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .supernet import WEIGHT_LAYOUT

FORMAT = 1
NAME = "checkpoint"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------- RNG states
def rng_state() -> dict:
    """The global torch (CPU and, once used, CUDA), numpy and Python RNG states as JSON-able lists."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    cuda = [t.tolist() for t in torch.cuda.get_rng_state_all()] if torch.cuda.is_initialized() else None
    return {"torch": torch.get_rng_state().tolist(), "cuda": cuda,
            "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached_gaussian": float(gauss)},
            "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next}}


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if state.get("cuda") and torch.cuda.is_available():  # drop path on a GPU draws from its generator
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n["kind"], np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


# ---------------------------------------------------------------------------------------------- optimizer
def optimizer_to_safe(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer ``state_dict`` into named tensors and a JSON-able remainder."""
    tensors: dict[str, torch.Tensor] = {}
    meta_state: dict[str, dict] = {}
    for idx, entry in sd["state"].items():
        scalars = {}
        for name, v in entry.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{idx}.{name}"] = v.detach().contiguous().cpu()
            else:
                scalars[name] = v
        meta_state[str(idx)] = {"tensors": sorted(k for k, v in entry.items() if isinstance(v, torch.Tensor)),
                                "scalars": scalars}
    groups = [_jsonable(g) for g in sd["param_groups"]]
    return tensors, {"state": meta_state, "param_groups": groups}


def optimizer_from_safe(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of :func:`optimizer_to_safe`: a ``state_dict`` for ``Optimizer.load_state_dict``."""
    state = {}
    for idx, entry in meta["state"].items():
        d = {name: tensors[f"{idx}.{name}"] for name in entry["tensors"]}
        d.update(entry["scalars"])
        state[int(idx)] = d
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint without pickle")


# ---------------------------------------------------------------------------------------------- directories
@dataclass
class Checkpoint:
    """A loaded checkpoint: everything as tensors and plain JSON values."""

    path: str
    state: dict
    weights: dict[str, torch.Tensor]
    source: str
    optimizer: dict | None   # a state_dict for Optimizer.load_state_dict, or None before training

    @property
    def epoch(self) -> int:
        return int(self.state["epoch"])

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def space(self):
        """The space the checkpoint was compiled from (parsed from its stored source)."""
        from spacelang import loads
        return loads(self.source, filename=os.path.join(self.path, "space.space"))


def checkpoint_dir(rundir: str) -> str | None:
    """The complete checkpoint in ``rundir`` (``checkpoint/``, or ``checkpoint.old/`` after a crash mid-swap)."""
    for name in (NAME, NAME + ".old"):
        d = os.path.join(rundir, name)
        if os.path.isfile(os.path.join(d, "state.json")):
            return d
    return None


def save(rundir: str, net: torch.nn.Module, source: str, state: dict,
         optimizer: torch.optim.Optimizer | None = None) -> str:
    """Write ``rundir/checkpoint`` atomically; ``state`` gets ``format`` and ``space_sha256`` added."""
    os.makedirs(rundir, exist_ok=True)
    final = os.path.join(rundir, NAME)
    tmp, old = final + ".tmp", final + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    state = dict(state, format=FORMAT, weight_layout=WEIGHT_LAYOUT, space_sha256=sha256(source))
    weights = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    save_file(weights, os.path.join(tmp, "weights.safetensors"), metadata={"format": "pt"})
    if optimizer is not None and optimizer.state:
        tensors, meta = optimizer_to_safe(optimizer.state_dict())
        save_file(tensors, os.path.join(tmp, "optimizer.safetensors"))
        state["optimizer"] = meta
    else:
        state["optimizer"] = None
    _write(os.path.join(tmp, "space.space"), source)
    _write(os.path.join(tmp, "state.json"), json.dumps(_jsonable(state), indent=1, sort_keys=True) + "\n")
    _fsync_dir(tmp)
    if os.path.isdir(final):
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(rundir)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load(rundir: str, map_location: str = "cpu") -> Checkpoint:
    """Read the checkpoint of ``rundir`` (or a checkpoint directory itself); verifies the space's sha256."""
    d = rundir if os.path.isfile(os.path.join(rundir, "state.json")) else checkpoint_dir(rundir)
    if d is None:
        raise FileNotFoundError(f"{rundir}: no checkpoint (expected {os.path.join(rundir, NAME, 'state.json')})")
    with open(os.path.join(d, "state.json"), encoding="utf-8") as f:
        state = json.load(f)
    if state.get("format") != FORMAT:
        raise ValueError(f"{d}: checkpoint format {state.get('format')!r}, expected {FORMAT}")
    if state.get("weight_layout") != WEIGHT_LAYOUT:
        raise ValueError(f"{d}: weights were written under weight layout {state.get('weight_layout')!r}, "
                         f"this build reads layout {WEIGHT_LAYOUT}; retrain, or load it with the version that wrote it")
    with open(os.path.join(d, "space.space"), encoding="utf-8", newline="") as f:
        source = f.read()
    if sha256(source) != state["space_sha256"]:
        raise ValueError(f"{d}: space.space does not match the sha256 recorded in state.json")
    weights = load_file(os.path.join(d, "weights.safetensors"), device=map_location)
    opt = None
    if state.get("optimizer"):
        opt = optimizer_from_safe(load_file(os.path.join(d, "optimizer.safetensors"), device=map_location),
                                  state["optimizer"])
    return Checkpoint(d, state, weights, source, opt)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
