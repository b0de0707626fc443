"""One subnet of a trained supernet as a standalone folder, in the formats users deploy, and back.

:func:`export` (from a run directory) and :func:`export_subnet` (from a supernet in memory) write

- ``model.safetensors`` the extracted subnet's ``state_dict`` (always);
- ``model.py``          with ``pytorch``: plain ``torch.nn`` source, ``build()`` loads the weights
  (:mod:`.export_pytorch`);
- ``model.onnx``        with ``onnx``; ``model.pt2`` with ``pt2`` (:mod:`.export_formats`);
- ``arch.json``         the canonical arch;
- ``space.space``       the space's source, so the subnet can be rebuilt without the run
  directory (:func:`load_subnet`);
- ``provenance.json``   where the subnet comes from and how far each format is from the supernet:
  the space (name, sha256, semantic sha256), the checkpoint (run, epoch, weights sha256), the
  arch, its metrics (from a best.json), exact params and FLOPs, versions (spacelang, torch,
  timm, …), the preprocessing, and each format's parity figure (max abs difference);
- ``config.json``       the space, input shape, classes, params and FLOPs, the preprocessing the
  weights were trained with (resize, channels, normalisation), the formats and their parity
  figures, and the sha256 of every other file.  Written last.

Every format is checked against the supernet before the folder appears (written as ``DIR.tmp``,
then renamed).  :func:`load_subnet` verifies the hashes.  Arch files may be a bare arch or a
``best.json``; one recorded for another space is refused ("from space X, not Y").
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Any, Callable, Iterable, Mapping

from spacelang.errors import ArchError, CheckpointError, OptionError, OutputError
from spacelang.util.atomic import os_error_message, write_bytes, write_json

from .checkpoint import read_verified
from .identity import check_same_space, space_identity

FORMAT = 2  # config.json's layout (fields were added since, none changed)
PROVENANCE_FORMAT = 1
PARITY_BATCH, PARITY_SEED = 2, 0
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


def read_metrics(path: str) -> dict:
    """The numbers a ``best.json`` records next to its arch (accuracy, error, params, FLOPs, …);
    empty for a bare arch file."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    if not (isinstance(obj, dict) and isinstance(obj.get("arch"), dict)):
        return {}
    return {k: v for k, v in sorted(obj.items()) if isinstance(v, (int, float)) and not isinstance(v, bool)}


def parse_formats(formats: str | Iterable[str] | None) -> tuple[str, ...]:
    """The formats to write, in :data:`FORMATS` order; safetensors always (every other format and
    :func:`load_subnet` build on its folder).  An unknown name is an :class:`OptionError`."""
    from .export_formats import FORMATS
    names = formats.split(",") if isinstance(formats, str) else list(formats or [])
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise OptionError(f"unknown export format {', '.join(map(repr, unknown))} (formats: {', '.join(FORMATS)})")
    return tuple(f for f in FORMATS if f == "safetensors" or f in names)


def export(rundir: str, arch: Mapping[str, Any], out: str, recorded_space: Mapping | None = None,
           warn: Callable[[str], None] | None = None, formats: str | Iterable[str] | None = None,
           metrics: Mapping[str, Any] | None = None) -> dict:
    """Extract ``arch`` from ``rundir``'s supernet into ``out`` in ``formats`` (see
    :func:`export_subnet`); returns config.json's object.

    ``recorded_space`` (the ``space`` of a best.json) must name ``rundir``'s space.  An arch
    that breaks the space's constraints is exported with a warning through ``warn``.
    """
    from .checkpoint import WEIGHTS
    from .train import load_supernet

    space, net, c = load_supernet(rundir)
    check_same_space(recorded_space, space, "the arch")
    cfg = c.state.get("config") or {}
    checkpoint = {"run": os.path.abspath(rundir), "epoch": c.epoch,
                  "weights_sha256": (c.state.get("files") or {}).get(WEIGHTS)}
    return export_subnet(space, net, arch, out, formats=formats, metrics=metrics, checkpoint=checkpoint, warn=warn,
                         data=cfg.get("data"), data_info=c.state.get("data_info"))


def export_subnet(space, net, arch: Mapping[str, Any], out: str, *, formats: str | Iterable[str] | None = None,
                  metrics: Mapping[str, Any] | None = None, checkpoint: Mapping[str, Any] | None = None,
                  warn: Callable[[str], None] | None = None, data: str | None = None,
                  data_info: Mapping[str, Any] | None = None) -> dict:
    """Write ``arch`` of the supernet ``net`` (compiled from ``space``) into the folder ``out``.

    Every format is checked against ``net(x, arch)`` on a random batch (:data:`PARITY_BATCH`
    images, seed :data:`PARITY_SEED`) before the folder is published: everything is written into
    ``out.tmp``, which replaces ``out`` by rename only when every check passed (a failed check is
    a :class:`CompileError` and leaves ``out`` as it was).  ``out`` may be absent, empty, or an
    earlier export; any other existing folder is refused.  Returns config.json's object.
    """
    from spacelang.cost import cost
    from .export_formats import WRITERS

    fmts = parse_formats(formats)
    arch = space.validate(arch)
    broken = broken_constraints(space, arch)
    if broken and warn:
        warn(f"the arch breaks the constraints of space {space.name}: {'; '.join(broken)}")
    cst = cost(space, arch)
    was_training, was_channels_last = net.training, getattr(net, "channels_last", False)
    net.eval()
    if was_channels_last:  # the reference in the layout of the exported (contiguous) modules: the
        net.use_channels_last(False)  # same kernels, so float rounding does not eat the tolerance
    try:
        sub, x, ref = parity_batch(net, arch)
        tmp = _start(out)
        try:
            title = f"Subnet of space {space.name}: {cst.params:,} parameters, {cst.flops:,} FLOPs."
            results = {fmt: WRITERS[fmt](sub, x, ref, tmp, rebuild=lambda: _cpu(net.extract(arch)), title=title,
                                         version=_version("spacelang"))
                       for fmt in fmts}
            blobs = {"space.space": space.source.encode("utf-8"),
                     "arch.json": (json.dumps(arch, indent=2, sort_keys=True) + "\n").encode("utf-8")}
            for name, blob in blobs.items():
                write_bytes(os.path.join(tmp, name), blob)
            prep = preprocessing(data, sub.input_shape, data_info)
            provenance = {"format": PROVENANCE_FORMAT, "space": space_identity(space), "checkpoint": checkpoint,
                          "arch": arch, "metrics": dict(metrics or {}), "cost": {"params": cst.params, "flops": cst.flops},
                          "versions": _versions(fmts), "preprocessing": prep,
                          "parity": {"batch": PARITY_BATCH, "seed": PARITY_SEED, "input": "standard normal",
                                     "reference": "the supernet's output net(x, arch), eval mode, float32, contiguous",
                                     "formats": results}}
            write_json(os.path.join(tmp, "provenance.json"), provenance)
            files = sorted({f for r in results.values() for f in r["files"]} | set(blobs) | {"provenance.json"})
            config = {"space": space_identity(space), "input_shape": list(sub.input_shape), "classes": space.classes,
                      "params": cst.params, "flops": cst.flops, "trained_epochs": (checkpoint or {}).get("epoch"),
                      "format": FORMAT, "preprocessing": prep, "constraints_broken": broken, "formats": list(fmts),
                      "parity": {fmt: r["max_abs_diff"] for fmt, r in results.items()},  # details: provenance.json
                      "files": {name: _sha256_file(os.path.join(tmp, name)) for name in files}}
            write_json(os.path.join(tmp, "config.json"), config)  # last: it marks a complete folder
            _publish(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        net.train(was_training)
        if was_channels_last:
            net.use_channels_last(True)
    return config


def _cpu(module):
    """``module`` in eval mode on the CPU in float32, where every format is written and checked."""
    import torch
    return module.eval().to(device="cpu", dtype=torch.float32)


def parity_batch(net, arch: Mapping[str, Any]):
    """``(subnet, x, reference)``: the extracted subnet (CPU, float32, eval), the random batch every
    format is checked on, and the supernet's output ``net(x, arch)`` on it (``net`` in eval mode)."""
    import torch
    sub = _cpu(net.extract(arch))
    p = next(net.parameters())
    x = torch.randn(PARITY_BATCH, *sub.input_shape, generator=torch.Generator().manual_seed(PARITY_SEED))
    with torch.no_grad():
        ref = net(x.to(device=p.device, dtype=p.dtype), arch)
    return sub, x, ref.to(device="cpu", dtype=torch.float32)


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _versions(fmts) -> dict:
    import platform
    names = ["spacelang", "torch", "timm", "safetensors"] + (["onnx", "onnxruntime"] if "onnx" in fmts else [])
    return {"python": platform.python_version(), **{n: _version(n) for n in names}}


def _sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _start(out: str) -> str:
    """Check that ``out`` can be (re)placed and return a fresh ``out.tmp`` folder to write into."""
    out = out.rstrip(os.sep) or out
    if os.path.lexists(out):
        if not os.path.isdir(out):
            raise OutputError(f"cannot write into {out}: it is a file, not a folder")
        if os.listdir(out) and not os.path.isfile(os.path.join(out, "config.json")):
            raise OutputError(f"{out} exists and is not an exported subnet: refusing to replace it",
                              hint="choose a new folder, or empty this one")
        probe = os.path.join(out, f".spacelang-probe.{os.getpid()}")
        try:  # replacing a folder we may not write into would surprise its owner
            os.close(os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_EXCL))
            os.unlink(probe)
        except OSError as e:
            raise OutputError(f"cannot write into {out}: {os_error_message(e)}") from None
    tmp = out + ".tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {os_error_message(e)}") from None
    return tmp


def _publish(tmp: str, out: str) -> None:
    """Replace ``out`` by the finished ``tmp`` (two renames when ``out`` exists)."""
    out = out.rstrip(os.sep) or out
    old = out + ".old"
    try:
        if os.path.isdir(out):
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(tmp, out)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {os_error_message(e)}") from None
    shutil.rmtree(old, ignore_errors=True)


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


def load_subnet(directory: str):
    """Rebuild an exported subnet (``nn.Module`` in eval mode) from its directory alone, verifying
    the sha256 of its files recorded in config.json."""
    from safetensors.torch import load as from_bytes
    from spacelang import loads
    from .supernet import build_supernet

    config = read_config(directory)
    space = loads(read_verified(directory, "space.space", config, "config.json").decode("utf-8"),
                  filename=os.path.join(directory, "space.space"))
    try:
        arch = json.loads(read_verified(directory, "arch.json", config, "config.json"))
    except json.JSONDecodeError:
        raise CheckpointError(f"{os.path.join(directory, 'arch.json')}: not JSON") from None
    sub = build_supernet(space).extract(space.validate(arch))
    from safetensors import SafetensorError
    data = read_verified(directory, "model.safetensors", config, "config.json")
    try:
        weights = from_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{os.path.join(directory, 'model.safetensors')}: not a valid safetensors file "
                              f"({str(e).splitlines()[0][:200]})") from None
    sub.load_state_dict(weights)
    return sub.eval()


__all__ = ["export", "export_subnet", "load_subnet", "read_arch", "read_metrics", "read_config", "parse_formats",
           "preprocessing", "broken_constraints"]
