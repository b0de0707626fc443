"""``spacelang export RUNDIR --arch ARCH.json -o SUBNET_DIR``: one subnet as a standalone model.

Parses the options and calls :func:`spacelang.compiler.export.export` (which documents the
directory it writes).  ``--arch`` also accepts a search's ``best.json``.
"""
from __future__ import annotations

import json
import sys

HELP = "extract one subnet of a trained supernet into a standalone directory (safetensors + JSON)"


def add_arguments(p) -> None:
    p.add_argument("rundir", metavar="RUNDIR", help="a run directory (train -o)")
    p.add_argument("--arch", required=True, metavar="ARCH.json",
                   help="the arch (a JSON object of dimension path → value, or a best.json holding one)")
    p.add_argument("-o", "--output", required=True, metavar="SUBNET_DIR", help="directory to write")
    p.add_argument("--json", action="store_true", help="print config.json")


def run(args) -> int:
    from spacelang.errors import ArchError, SpacelangError
    from ..export import export, read_arch
    from .common import report
    try:
        arch, recorded = read_arch(args.arch)
        try:
            config = export(args.rundir, arch, args.output, recorded_space=recorded,
                            warn=lambda s: print(f"spacelang: warning: {s}", file=sys.stderr))
        except ArchError as e:
            e.filename = e.filename or args.arch
            raise
    except SpacelangError as e:
        return report(e)
    if args.json:
        print(json.dumps(config, indent=2, sort_keys=True))
    else:
        print(f"wrote {args.output}: {config['params']:,} params, {config['flops']:,} FLOPs")
    return 0
