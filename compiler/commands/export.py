"""``spacelang export RUNDIR --arch ARCH.json -o SUBNET_DIR [--format safetensors,pytorch,onnx,pt2]``.

Parses the options and calls :func:`spacelang.compiler.export.export` (which documents the
folder it writes).  ``--arch`` also accepts a search's ``best.json``, whose metrics go into
provenance.json.
"""
from __future__ import annotations

import json
import sys

HELP = "extract one subnet of a trained supernet into a standalone folder (safetensors, pytorch, onnx, pt2)"
FORMATS = "safetensors, pytorch, onnx, pt2"


def add_arguments(p) -> None:
    p.add_argument("rundir", metavar="RUNDIR", help="a run directory (train -o)")
    p.add_argument("--arch", required=True, metavar="ARCH.json",
                   help="the arch (a JSON object of dimension path → value, or a best.json holding one)")
    p.add_argument("-o", "--output", required=True, metavar="SUBNET_DIR",
                   help="folder to write (an earlier export there is replaced whole)")
    p.add_argument("--format", default="safetensors", metavar="F[,F…]",
                   help=f"formats, comma-separated, of {FORMATS} (default safetensors, always written; "
                        "each is checked against the supernet before anything is written)")
    p.add_argument("--json", action="store_true", help="print config.json")


def run(args) -> int:
    from spacelang.errors import ArchError, SpacelangError
    from ..export import export, parse_formats, read_arch, read_metrics
    from .common import report
    try:
        formats = parse_formats(args.format)
        arch, recorded = read_arch(args.arch)
        try:
            config = export(args.rundir, arch, args.output, recorded_space=recorded, formats=formats,
                            metrics=read_metrics(args.arch),
                            warn=lambda s: print(f"spacelang: warning: {s}", file=sys.stderr))
        except ArchError as e:
            e.filename = e.filename or args.arch
            raise
    except SpacelangError as e:
        return report(e)
    if args.json:
        print(json.dumps(config, indent=2, sort_keys=True))
    else:
        figures = ", ".join(f"{fmt} {config['parity'][fmt]:.1e}" for fmt in config["formats"])
        print(f"wrote {args.output}: {config['params']:,} params, {config['flops']:,} FLOPs; "
              f"max abs difference from the supernet: {figures}")
    return 0
