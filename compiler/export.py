"""One subnet of a trained supernet as a standalone directory, and back.

:func:`export` writes into a directory

- ``model.safetensors`` the extracted subnet's ``state_dict``;
- ``arch.json``         the canonical arch;
- ``space.space``       the space's source (a few hundred bytes), so the subnet can be rebuilt
  without the run directory (:func:`load_subnet`);
- ``config.json``       the space (name, sha256, semantic sha256), input shape, classes, exact
  params and FLOPs, the preprocessing the weights were trained with (resize, channels,
  normalisation), the dataset, and the sha256 of every file above.

:func:`load_subnet` verifies those hashes.  Arch files may be a bare arch or a ``best.json``;
one recorded for another space is refused ("from space X, not Y").
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable, Mapping

from spacelang.errors import ArchError, CheckpointError
from spacelang.util.atomic import write_bytes, write_json

from .identity import check_same_space, space_identity
from .outputs import ensure_dir

FORMAT = 2
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # timm's IMAGENET_DEFAULT_*


def read_arch(path: str) -> tuple[dict, dict | None]:
    """``(arch, space record)`` from an arch file: a JSON object of dimension path → value, or a
    ``best.json`` / ``config.json``-style object holding one under ``"arch"`` (and its space
    under ``"space"``).  An unreadable file is an :class:`ArchError` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except OSError as e:
        raise ArchError(None, f"{path}: cannot read ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArchError(None, f"{path}: not JSON ({getattr(e, 'msg', e)})") from None
    if isinstance(obj, dict) and isinstance(obj.get("arch"), dict):
        record = obj.get("space") if isinstance(obj.get("space"), dict) else None
        return obj["arch"], record
    if not isinstance(obj, dict):
        raise ArchError(None, f"{path}: an arch is a JSON object of dimension path → value")
    return obj, None


def preprocessing(data_name: str | None, input_shape, info: Mapping[str, Any] | None = None) -> dict:
    """How an image must be prepared for a net trained on ``data_name`` at ``input_shape``."""
    c, h, w = input_shape
    out: dict[str, Any] = {"channels": c, "resolution": [h, w], "resize": "bilinear", "dataset": data_name}
    info = info or {}
    if info.get("mean") is not None and info.get("std") is not None:
        out.update(mean=list(info["mean"]), std=list(info["std"]))
    elif data_name in ("digits", "synthetic", None):
        out["normalize"] = ("per-channel standardisation with the training split's mean and std "
                            "(see spacelang.compiler.data)") if data_name == "digits" else "none (synthetic tensors)"
        if data_name == "digits":
            out.update(pixel_scale="pixel value / 16 (scikit-learn digits are 0..16)", channel_mode="gray, repeated")
    else:  # an ImageFolder read by timm: RGB with ImageNet statistics, or grayscale with 0.5/0.5
        out.update(pixel_scale="pixel value / 255", crop_pct=1.0, channel_mode="RGB" if c == 3 else "L",
                   mean=list(IMAGENET_MEAN if c == 3 else (0.5,)), std=list(IMAGENET_STD if c == 3 else (0.5,)))
    return out


def broken_constraints(space, arch: Mapping[str, Any]) -> list[str]:
    """The space's constraints that ``arch`` breaks, as text (``params <= 5M: 6.1M``)."""
    from spacelang.cost import cost
    from spacelang.util.quantity import human
    c = cost(space, arch)
    return [f"{con}: {human(getattr(c, con.metric))}" for con in space.constraints
            if not con.holds(getattr(c, con.metric))]


def export(rundir: str, arch: Mapping[str, Any], out: str, recorded_space: Mapping | None = None,
           warn: Callable[[str], None] | None = None) -> dict:
    """Extract ``arch`` from ``rundir``'s supernet into ``out``; returns config.json's object.

    ``recorded_space`` (the ``space`` of a best.json) must name ``rundir``'s space.  An arch
    that breaks the space's constraints is exported with a warning through ``warn``.
    """
    from safetensors.torch import save as to_bytes
    from spacelang.cost import cost
    from .train import load_supernet

    space, net, c = load_supernet(rundir)
    check_same_space(recorded_space, space, "the arch")
    arch = space.validate(arch)
    broken = broken_constraints(space, arch)
    if broken and warn:
        warn(f"the arch breaks the constraints of space {space.name}: {'; '.join(broken)}")
    sub = net.extract(arch).eval()
    cst = cost(space, arch)
    ensure_dir(out)
    blobs = {"model.safetensors": to_bytes({k: v.detach().contiguous().cpu() for k, v in sub.state_dict().items()},
                                           metadata={"format": "pt"}),
             "space.space": c.source.encode("utf-8"),
             "arch.json": (json.dumps(arch, indent=2, sort_keys=True) + "\n").encode("utf-8")}
    for name, data in blobs.items():
        write_bytes(os.path.join(out, name), data)
    cfg = c.state.get("config") or {}
    config = {"space": space_identity(space), "input_shape": list(sub.input_shape), "classes": space.classes,
              "params": cst.params, "flops": cst.flops, "trained_epochs": c.epoch, "format": FORMAT,
              "preprocessing": preprocessing(cfg.get("data"), sub.input_shape, (c.state.get("data_info") or {})),
              "constraints_broken": broken,
              "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(blobs.items())}}
    write_json(os.path.join(out, "config.json"), config)
    return config


def read_config(directory: str) -> dict:
    """An export directory's ``config.json`` (a :class:`CheckpointError` when missing or unreadable)."""
    path = os.path.join(directory, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise CheckpointError(f"{directory}: not an exported subnet (cannot read config.json: {e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path}: not JSON") from None


def _read(directory: str, name: str, config: Mapping) -> bytes:
    path = os.path.join(directory, name)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
    want = (config.get("files") or {}).get(name)
    if want is not None and hashlib.sha256(data).hexdigest() != want:
        raise CheckpointError(f"{path}: damaged (its sha256 differs from the one in config.json)")
    return data


def load_subnet(directory: str):
    """Rebuild an exported subnet (``nn.Module`` in eval mode) from its directory alone, verifying
    the sha256 of its files recorded in config.json."""
    from safetensors.torch import load as from_bytes
    from spacelang import loads
    from .supernet import build_supernet

    config = read_config(directory)
    space = loads(_read(directory, "space.space", config).decode("utf-8"),
                  filename=os.path.join(directory, "space.space"))
    try:
        arch = json.loads(_read(directory, "arch.json", config))
    except json.JSONDecodeError:
        raise CheckpointError(f"{os.path.join(directory, 'arch.json')}: not JSON") from None
    sub = build_supernet(space).extract(space.validate(arch))
    from safetensors import SafetensorError
    data = _read(directory, "model.safetensors", config)
    try:
        weights = from_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{os.path.join(directory, 'model.safetensors')}: not a valid safetensors file "
                              f"({str(e).splitlines()[0][:200]})") from None
    sub.load_state_dict(weights)
    return sub.eval()


__all__ = ["export", "load_subnet", "read_arch", "read_config", "preprocessing", "broken_constraints"]
