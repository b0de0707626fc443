"""Accuracy of one arch on one dataset split: of a trained run's supernet, or of an exported subnet.

``spacelang eval`` calls :func:`measure`.  A run directory evaluates any arch of its space with
inherited weights (BatchNorm recalibrated as ``search`` does, :mod:`.bn`); an export directory
evaluates the subnet it holds.  The dataset defaults to the one the weights were trained on.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

from spacelang.errors import ArchError, CheckpointError, DataError, OptionError

from .identity import check_same_space, space_identity

SPLITS = ("val", "test")


def is_export(path: str) -> bool:
    """Whether ``path`` is a directory written by ``spacelang export``."""
    return os.path.isfile(os.path.join(path, "config.json")) and os.path.isfile(os.path.join(path, "model.safetensors"))


def measure(path: str, arch: Mapping[str, Any] | None = None, recorded_space: Mapping | None = None,
            data: str | None = None, split: str = "val", batch_size: int = 256, device: str = "cpu") -> dict:
    """Top-1 accuracy (%) of ``arch`` (default: the largest arch of a run, the exported one of an
    export directory) on ``split`` of ``data``; returns a JSON-able record of what was measured."""
    from spacelang.cost import cost
    from . import evaluate as ev
    from .data import load_data
    from .search_run import resolve_data

    if split not in SPLITS:
        raise OptionError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if is_export(path):
        from spacelang import loads
        from .export import load_subnet, read_config
        config = read_config(path)
        with open(os.path.join(path, "space.space"), encoding="utf-8") as f:
            space = loads(f.read(), filename=os.path.join(path, "space.space"))
        net = load_subnet(path).to(device)
        with open(os.path.join(path, "arch.json"), encoding="utf-8") as f:
            held = json.load(f)
        check_same_space(recorded_space, space, "the arch")
        if arch is not None and space.validate(arch) != held:
            raise ArchError(None, f"{path} holds one exported arch; --arch names another",
                            hint="evaluate other archs on the run directory the subnet was exported from")
        arch = held
        trained_on = (config.get("preprocessing") or {}).get("dataset")
        bn = None
        kind = "exported subnet"
    else:
        from .bn import bn_batches
        from .checkpoint import checkpoint_dir
        from .train import load_supernet
        if checkpoint_dir(path) is None:
            raise CheckpointError(f"{path}: neither a run directory (no checkpoint) nor an exported subnet "
                                  f"(no config.json)")
        space, net, c = load_supernet(path)
        net = net.to(device)
        check_same_space(recorded_space, space, "the arch")
        kind = "supernet" if arch is not None else "supernet (its largest arch)"
        arch = space.validate(arch) if arch is not None else space.max_arch()
        cfg = c.state.get("config") or {}
        trained_on = cfg.get("data")
    data_name = resolve_data(data) if data else trained_on
    if data_name is None:
        raise OptionError(f"{path} does not record its dataset; pass --data")
    ds = load_data(data_name, space.input_shape(arch), space.classes)
    loader = ds.eval_loader(split, batch_size)
    if kind.startswith("supernet"):
        bn = bn_batches(net, ds, cfg)
        acc = ev.evaluate(net, [arch], loader, device=device, bn_batches=bn)[0]
    else:
        acc = _accuracy(net, loader, device)
    cst = cost(space, arch)
    return {"accuracy": acc, "split": split, "data": data_name, "trained_on": trained_on, "source": kind,
            "path": os.path.abspath(path), "arch": arch, "params": cst.params, "flops": cst.flops,
            "space": space_identity(space), "images": len(loader.dataset)}


def _accuracy(net, loader, device: str) -> float:
    import torch
    from .evaluate import fit_input
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            pred = net(fit_input(x, net.input_shape)).argmax(dim=-1)
            correct += int((pred == y).sum())
            total += y.numel()
    if total == 0:
        raise DataError("the evaluation split is empty")
    return 100.0 * correct / total


__all__ = ["measure", "is_export", "SPLITS"]
