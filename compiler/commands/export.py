"""``spacelang export RUNDIR --arch ARCH.json -o SUBNET_DIR``: one subnet as a standalone model.

Writes ``model.safetensors`` (the extracted subnet's ``state_dict``), ``arch.json`` (the canonical
arch), ``config.json`` (space name and sha256, input shape, classes, exact params and FLOPs) and
``space.space`` (the source, a few hundred bytes, so the subnet can be rebuilt without the run
directory: :func:`load_subnet`).  ``--arch`` also accepts a search's ``best.json``.
"""
from __future__ import annotations

import json
import os

HELP = "extract one subnet of a trained supernet into a standalone directory (safetensors + JSON)"


def add_arguments(p) -> None:
    p.add_argument("rundir", metavar="RUNDIR")
    p.add_argument("--arch", required=True, metavar="ARCH.json",
                   help="the arch (a JSON object of dimension path → value, or a best.json holding one)")
    p.add_argument("-o", "--output", required=True, metavar="SUBNET_DIR")
    p.add_argument("--json", action="store_true", help="print config.json")


def run(args) -> int:
    from spacelang.diagnostics import ArchError
    from .common import error, read_json
    try:
        arch = read_json(args.arch)
    except (OSError, json.JSONDecodeError) as e:
        return error(f"{args.arch}: {e}")
    if isinstance(arch, dict) and isinstance(arch.get("arch"), dict):
        arch = arch["arch"]
    try:
        config = export(args.rundir, arch, args.output)
    except ArchError as e:
        return error(f"{args.arch}: {e}")
    except (FileNotFoundError, ValueError) as e:
        return error(str(e))
    if args.json:
        print(json.dumps(config, indent=2, sort_keys=True))
    else:
        print(f"wrote {args.output}: {config['params']:,} params, {config['flops']:,} FLOPs")
    return 0


def export(rundir: str, arch: dict, out: str) -> dict:
    """Extract ``arch`` from ``rundir``'s supernet into ``out``; returns config.json's object."""
    from safetensors.torch import save_file
    from spacelang.cost import cost
    from .. import checkpoint as ckpt
    from ..train import load_supernet
    from .common import write_json_atomic

    space, net, c = load_supernet(rundir)
    arch = space.validate(arch)
    sub = net.extract(arch).eval()
    cst = cost(space, arch)
    os.makedirs(out, exist_ok=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in sub.state_dict().items()}
    save_file(weights, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out, "space.space"), "w", encoding="utf-8", newline="") as f:
        f.write(c.source)
    write_json_atomic(os.path.join(out, "arch.json"), arch)
    config = {"space": space.name, "space_sha256": ckpt.sha256(c.source), "input_shape": list(sub.input_shape),
              "classes": space.classes, "params": cst.params, "flops": cst.flops, "trained_epochs": c.epoch,
              "format": 1}
    write_json_atomic(os.path.join(out, "config.json"), config)
    return config


def load_subnet(directory: str):
    """Rebuild an exported subnet (``nn.Module`` in eval mode) from its directory alone."""
    from safetensors.torch import load_file
    from spacelang import loads
    from ..supernet import build_supernet
    from .common import read_json

    with open(os.path.join(directory, "space.space"), encoding="utf-8", newline="") as f:
        space = loads(f.read(), filename=os.path.join(directory, "space.space"))
    arch = read_json(os.path.join(directory, "arch.json"))
    sub = build_supernet(space).extract(arch)
    sub.load_state_dict(load_file(os.path.join(directory, "model.safetensors")))
    return sub.eval()
