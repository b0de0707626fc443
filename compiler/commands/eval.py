"""``spacelang eval RUN|EXPORT_DIR [--arch A.json] [--data D] [--split val|test]``: measure one arch.

Parses the options and calls :func:`spacelang.compiler.measure.measure`.
"""
from __future__ import annotations

import json

HELP = "measure the accuracy of an arch of a trained run, or of an exported subnet, on a dataset split"


def add_arguments(p) -> None:
    from spacelang.commands.options import add_threads, positive_int
    from ..devices import device
    p.add_argument("path", metavar="RUN|EXPORT_DIR", help="a run directory (train -o) or an exported subnet (export -o)")
    p.add_argument("--arch", metavar="A.json",
                   help="the arch to measure (an arch JSON or a best.json; default: the run's largest arch, "
                        "or the exported subnet's own)")
    p.add_argument("--data", default=None, metavar="digits|synthetic|PATH",
                   help="dataset (default: the one the weights were trained on)")
    p.add_argument("--split", choices=("val", "test"), default="test",
                   help="val: the search-validation split; test: the held-out test split (default test)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="evaluation batch size (default 256)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, … (default cpu)")
    p.add_argument("--json", action="store_true", help="print the measurement as JSON")
    add_threads(p)


def run(args) -> int:
    from spacelang.errors import SpacelangError
    from spacelang.util.quantity import human
    from .common import report, set_threads
    set_threads(args.threads)
    try:
        from ..export import read_arch
        from ..measure import measure
        arch, recorded = read_arch(args.arch) if args.arch else (None, None)
        m = measure(args.path, arch, recorded_space=recorded, data=args.data, split=args.split,
                    batch_size=args.batch_size, device=args.device)
    except SpacelangError as e:
        return report(e)
    if args.json:
        print(json.dumps(m, indent=2, sort_keys=True))
    else:
        print(f"{m['accuracy']:.2f}% top-1 on the {m['split']} split of {m['data']} ({m['images']} images; "
              f"{m['source']} of space {m['space']['name']}, {human(m['params'])} params, {human(m['flops'])} FLOPs)")
    return 0
