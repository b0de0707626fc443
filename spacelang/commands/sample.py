"""``spacelang sample FILE -n N [--seed S] [--where EXPR]… [--sandwich K] [--json]``.

Prints one canonical arch (sorted-keys JSON) per line.  Archs honour the space's ``constraint``s
and every ``--where`` band (``params<=23M``, ``18M<=params<=23M``, ``flops<1.5G``); an
infeasible band is refused at once (exit 2).  ``--sandwich K`` prints N training steps of S3's
sandwich rule, K + 2 lines each: the largest arch, the smallest, then K random ones.
``--json`` prints ``{"arch": …, "params": …, "flops": …}`` per line instead.
"""
from __future__ import annotations

import json
import sys

HELP = "sample archs (uniformly, in a params/FLOPs band, or by the sandwich rule), one JSON per line"


def add_arguments(p) -> None:
    from .options import count, seed, where
    p.add_argument("file", metavar="FILE", help="the .space file")
    p.add_argument("-n", type=count, default=1, metavar="N", help="number of archs (sandwich: steps); default 1")
    p.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    p.add_argument("--where", type=where, action="append", default=[], metavar="EXPR",
                   help="cost band, e.g. 'params<=23M', '18M<=params<=23M', 'flops<1.5G', "
                        "'latency<=20ms' (with --latency-profile) (repeatable)")
    p.add_argument("--sandwich", type=count, default=None, metavar="K",
                   help="S3 sandwich rule: N steps of the largest and the smallest arch of the space (bands do "
                        "not apply to them) and K random archs in the band (default: off)")
    p.add_argument("--json", action="store_true", help="add exact params and flops (and latency) to each line")
    from .latency import add_profile_options
    add_profile_options(p)


def run(args) -> int:
    import random

    from ..errors import SpacelangError
    from ..search.sampling import ConstrainedSampler, SandwichSampler
    from ..search.where import Bounds
    from .common import load_or_report

    try:
        bounds = Bounds.parse(args.where) if args.where else Bounds()
    except SpacelangError as e:
        print(e.render(), file=sys.stderr)
        return 2
    space = load_or_report(args.file)
    if space is None:
        return 2
    rng = random.Random(args.seed)
    try:
        from .latency import predictor_from_args
        sampler = ConstrainedSampler(space, rng, bounds, latency=predictor_from_args(space, args))
        if args.sandwich is not None:
            sandwich = SandwichSampler(space, rng, args.sandwich, middle=sampler)
            archs = (a for _ in range(args.n) for a in sandwich.step())
        else:
            archs = (sampler.sample() for _ in range(args.n))
        out = sys.stdout
        cost = sampler.cost
        for arch in archs:
            if args.json:
                c = cost(arch)
                row = {"arch": arch, "params": c.params, "flops": c.flops}
                if sampler.latency is not None:
                    row["latency"] = round(c.latency, 4)  # milliseconds, predicted
                line = json.dumps(row, sort_keys=True)
            else:
                line = json.dumps(arch, sort_keys=True)
            out.write(line + "\n")
    except SpacelangError as e:
        print(e.render(), file=sys.stderr)
        return 2
    return 0
