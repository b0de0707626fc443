"""``spacelang count FILE [--json]``: exact number of subnets, with params/FLOPs ranges."""
from __future__ import annotations

HELP = "exact number of subnets and the params/FLOPs range (min and max subnet)"


def add_arguments(p) -> None:
    p.add_argument("file", metavar="FILE", help="the .space file")
    p.add_argument("--json", action="store_true",
                   help='print {"subnets", "params": {"min", "max"}, "flops": {"min", "max"}} as JSON')


def run(args) -> int:
    from ..util.quantity import human
    from .common import load_or_report, print_json
    space = load_or_report(args.file)
    if space is None:
        return 2
    n = space.size()
    try:
        lo, hi = space.cost_range()
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
        print(f"  FLOPs:  {human(lo.flops)} – {human(hi.flops)}  ({lo.flops:,} – {hi.flops:,})")
    return 0
