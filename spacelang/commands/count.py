"""``spacelang count FILE [--arch A.json] [--json]``: exact number of subnets with the params/FLOPs
range, or the exact cost of one arch (with a per-layer breakdown)."""
from __future__ import annotations

import sys

HELP = "exact number of subnets and the params/FLOPs range, or one arch's exact cost (--arch)"


def add_arguments(p) -> None:
    p.add_argument("file", metavar="FILE", help="the .space file")
    p.add_argument("--arch", metavar="ARCH.json", default=None,
                   help="the cost of this arch (a JSON object of dimension paths, or a best.json) instead of "
                        "the range (default: the range)")
    p.add_argument("--convention", choices=("fvcore", "macs"), default="fvcore",
                   help="fvcore: every multiply-add plus norms, as fvcore counts; macs: convolutions, linear "
                        "layers and matrix products only, as NASViT, As-ViT and ViT-ResNAS report (default fvcore)")
    p.add_argument("--inference", action="store_true",
                   help="leave out parameters only training uses (a token-labelling head) (default: count them)")
    p.add_argument("--json", action="store_true",
                   help='print {"subnets", "params": {"min", "max"}, "flops": {"min", "max"}} as JSON '
                        '(with --arch: {"params", "flops", "layers"})')


def run(args) -> int:
    from ..util.quantity import human
    from .common import load_or_report, print_json
    space = load_or_report(args.file)
    if space is None:
        return 2
    if args.arch is not None:
        return _one_arch(space, args, human, print_json)
    n = space.size()
    try:
        lo, hi = space.cost_range(args.convention)
    except (ImportError, NotImplementedError):
        lo = hi = None
    if args.json:
        out = {"subnets": n}
        if lo is not None:
            out["params"] = {"min": lo.params, "max": hi.params}
            out["flops"] = {"min": lo.flops, "max": hi.flops}
        print_json(out)
        return 0
    print(f"{space.name}: {n:,} subnets ({n:.3e})")
    if lo is not None:
        print(f"  params: {human(lo.params)} – {human(hi.params)}  ({lo.params:,} – {hi.params:,})")
        unit = "MACs: " if args.convention == "macs" else "FLOPs:"
        print(f"  {unit} {human(lo.flops)} – {human(hi.flops)}  ({lo.flops:,} – {hi.flops:,})")
    return 0


def _one_arch(space, args, human, print_json) -> int:
    import json

    from ..cost import breakdown, cost, format_breakdown
    from ..errors import SpacelangError
    try:
        with open(args.arch, encoding="utf-8") as f:
            arch = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"{args.arch}: error: cannot read the arch: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
        return 2
    if isinstance(arch, dict) and isinstance(arch.get("arch"), dict):
        arch = arch["arch"]  # a best.json or a results row
    try:
        c = cost(space, arch, convention=args.convention, training=not args.inference)
        rows = breakdown(space.resolve(arch), convention=args.convention)
    except SpacelangError as e:
        print(f"{args.arch}: error: {e.message}", file=sys.stderr)
        return 2
    unit = "MACs" if args.convention == "macs" else "FLOPs"
    if args.json:
        print_json({"params": c.params, "flops": c.flops, "convention": args.convention,
                    "layers": [r.as_dict() for r in rows]})
        return 0
    print(f"{space.name} {args.arch}: {human(c.params)} params ({c.params:,}), {human(c.flops)} {unit} ({c.flops:,})"
          + (" (training-only parameters left out)" if args.inference else ""))
    print(format_breakdown(rows))
    return 0
