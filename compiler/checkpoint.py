"""Checkpoint directories: safetensors and JSON only, written atomically, never unpickled.

A run directory holds ``checkpoint/`` with

- ``weights.safetensors``   the supernet's ``state_dict``;
- ``optimizer.safetensors`` the optimizer's tensor state (absent before the first training step),
  its non-tensor state and parameter groups live in ``state.json`` under ``"optimizer"``;
- ``state.json``            epoch, step, training config, sampler and RNG states (torch's as a list
  of ints), last metrics, the space's byte and semantic sha256, and ``files``: the sha256 of
  every other file of the checkpoint;
- ``space.space``           the exact source the supernet was compiled from;
- any extra small files the caller passes (``train`` keeps ``log.csv`` here, so that the log and
  the weights it describes are replaced together).

Writing goes to ``checkpoint.tmp`` first; the finished directory then replaces ``checkpoint`` by
two renames (old → ``checkpoint.old``, tmp → ``checkpoint``), so a crash at any moment leaves a
complete checkpoint under one of the two names and :func:`checkpoint_dir` finds it.

Loading verifies every recorded sha256 (a damaged or truncated file is refused, naming it) and
refuses non-finite weights.  Every failure is a :class:`~spacelang.errors.CheckpointError`
(reading) or :class:`~spacelang.errors.OutputError` (writing).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from safetensors import SafetensorError

from spacelang.errors import CheckpointError, OutputError
from spacelang.util.atomic import os_error_message
from spacelang.util.rngstate import rng_from_json, rng_to_json

from .identity import semantic_sha256, text_sha256
from .supernet import WEIGHT_LAYOUT

FORMAT = 1
NAME = "checkpoint"
WEIGHTS, OPTIMIZER, STATE, SOURCE = "weights.safetensors", "optimizer.safetensors", "state.json", "space.space"

#: sha256 of a ``.space`` source's bytes (kept under this name for the callers that record it)
sha256 = text_sha256


# ---------------------------------------------------------------------------------------------- RNG states
def rng_state() -> dict:
    """The global torch (CPU and, once used, CUDA), numpy and Python RNG states as JSON-able lists."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    cuda = [t.tolist() for t in torch.cuda.get_rng_state_all()] if torch.cuda.is_initialized() else None
    return {"torch": torch.get_rng_state().tolist(), "cuda": cuda,
            "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached_gaussian": float(gauss)},
            "python": rng_to_json()}


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if state.get("cuda") and torch.cuda.is_available():  # drop path on a GPU draws from its generator
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n["kind"], np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    if isinstance(p, Mapping):  # checkpoints written before the shared serialiser
        p = [p["version"], p["internal"], p["gauss_next"]]
    rng_from_json(p)


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
    optimizer: dict | None   # a state_dict for Optimizer.load_state_dict; None before training or not read

    @property
    def epoch(self) -> int:
        return int(self.state["epoch"])

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def space(self):
        """The space the checkpoint was compiled from (parsed from its stored source)."""
        from spacelang import loads
        return loads(self.source, filename=os.path.join(self.path, SOURCE))

    def read_extra(self, name: str) -> str | None:
        """An extra file saved with the checkpoint (verified against its sha256), or None."""
        path = os.path.join(self.path, name)
        if name not in (self.state.get("files") or {}) or not os.path.isfile(path):
            return None
        return read_verified(self.path, name, self.state).decode("utf-8")


def checkpoint_dir(rundir: str) -> str | None:
    """The complete checkpoint in ``rundir`` (``checkpoint/``, or ``checkpoint.old/`` after a crash mid-swap)."""
    for name in (NAME, NAME + ".old"):
        d = os.path.join(rundir, name)
        if os.path.isfile(os.path.join(d, STATE)):
            return d
    return None


def save(rundir: str, net: torch.nn.Module, source: str, state: dict,
         optimizer: torch.optim.Optimizer | None = None, extra: Mapping[str, str] | None = None) -> str:
    """Write ``rundir/checkpoint`` atomically; ``state`` gets ``format``, the space's hashes and
    ``files`` (name → sha256) added.  ``extra`` maps more file names to text saved alongside."""
    from safetensors.torch import save as to_bytes
    final = os.path.join(rundir, NAME)
    tmp, old = final + ".tmp", final + ".old"
    state = dict(state, format=FORMAT, weight_layout=WEIGHT_LAYOUT, space_sha256=text_sha256(source),
                 space_semantic_sha256=semantic_sha256(source))
    blobs = {WEIGHTS: to_bytes({k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()},
                               metadata={"format": "pt"}),
             SOURCE: source.encode("utf-8")}
    if optimizer is not None and optimizer.state:
        tensors, meta = optimizer_to_safe(optimizer.state_dict())
        blobs[OPTIMIZER] = to_bytes(tensors)
        state["optimizer"] = meta
    else:
        state["optimizer"] = None
    for name, text in (extra or {}).items():
        blobs[name] = text.encode("utf-8")
    state["files"] = {name: hashlib.sha256(b).hexdigest() for name, b in sorted(blobs.items())}
    blobs[STATE] = (json.dumps(_jsonable(state), indent=1, sort_keys=True) + "\n").encode("utf-8")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        for name in [n for n in blobs if n != STATE] + [STATE]:  # state.json last: it marks a complete dir
            _write(os.path.join(tmp, name), blobs[name])
        _fsync_dir(tmp)
        if os.path.isdir(final):
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(rundir)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write the checkpoint in {rundir}: {os_error_message(e)}") from None
    return final


def load(rundir: str, map_location: str = "cpu", optimizer: bool = True) -> Checkpoint:
    """Read the checkpoint of ``rundir`` (or a checkpoint directory itself), verifying it.

    Every file's sha256 recorded in ``state.json`` must match, the space source its hash, and
    every floating-point weight must be finite; any failure is a :class:`CheckpointError` naming
    the file.  ``optimizer=False`` leaves ``optimizer.safetensors`` unread (search, export, eval).
    """
    from safetensors.torch import load as from_bytes
    d = rundir if os.path.isfile(os.path.join(rundir, STATE)) else checkpoint_dir(rundir)
    if d is None:
        raise CheckpointError(f"{rundir}: no checkpoint (expected {os.path.join(rundir, NAME, STATE)})")
    state_path = os.path.join(d, STATE)
    try:
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{state_path}: unreadable ({_why(e)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{d}: checkpoint format {state.get('format') if isinstance(state, dict) else None!r}, "
                              f"expected {FORMAT}")
    if state.get("weight_layout") != WEIGHT_LAYOUT:
        raise CheckpointError(f"{d}: weights were written under weight layout {state.get('weight_layout')!r}, "
                              f"this build reads layout {WEIGHT_LAYOUT}; retrain, or load it with the version that wrote it")
    try:
        source = read_verified(d, SOURCE, state).decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"{os.path.join(d, SOURCE)}: not UTF-8 text") from None
    if text_sha256(source) != state.get("space_sha256"):
        raise CheckpointError(f"{os.path.join(d, SOURCE)}: does not match the sha256 recorded in state.json")
    weights = _tensors(d, WEIGHTS, state, from_bytes, map_location)
    for k, v in weights.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{os.path.join(d, WEIGHTS)}: tensor {k} holds NaN or infinite values",
                                  hint="the weights are damaged or training diverged; use an earlier run")
    opt = None
    if optimizer and state.get("optimizer"):
        opt = optimizer_from_safe(_tensors(d, OPTIMIZER, state, from_bytes, map_location), state["optimizer"])
    return Checkpoint(d, state, weights, source, opt)


def _why(e: Exception) -> str:
    if isinstance(e, OSError):
        return os_error_message(e)
    return getattr(e, "msg", None) or str(e).splitlines()[0][:200]


def read_verified(d: str, name: str, state: Mapping, manifest: str = "state.json") -> bytes:
    """The bytes of ``d/name``, refused as damaged unless their sha256 is the one ``state["files"]``
    records (a file it does not list is read as is); ``manifest`` names the record in messages."""
    path = os.path.join(d, name)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({os_error_message(e)})") from None
    want = (state.get("files") or {}).get(name)
    if want is not None and hashlib.sha256(data).hexdigest() != want:
        size = "empty" if not data else f"{len(data):,} bytes"
        raise CheckpointError(f"{path}: damaged ({size}; its sha256 differs from the one recorded in {manifest})",
                              hint="the file was truncated or overwritten after it was written; use an intact copy")
    return data


def _tensors(d: str, name: str, state: Mapping, from_bytes, map_location: str) -> dict[str, torch.Tensor]:
    data = read_verified(d, name, state)
    try:
        tensors = from_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{os.path.join(d, name)}: not a valid safetensors file ({_why(e)})") from None
    return {k: v.to(map_location) for k, v in tensors.items()} if map_location != "cpu" else tensors


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
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
