"""``spacelang scale FILE --arch SEED --until params=100M -o DIR [--proxy le,ntk] [--seed S]``.

As-ViT's training-free auto-scaling (Algorithm 2): from the seed topology SEED (an arch of FILE,
or a ``best.json`` of ``search --strategy reinforce``), grow the base width C by one of
``--factors`` (default 1.05,1.1,1.15,1.2) and one stage by one block per step, choosing the
candidate with the smallest sum of ranks by the proxies (L_E descending, κ ascending), until the
network has at least the ``--until`` parameters.  DIR receives every step's network as a fixed
``step_NN.space``, ``trajectory.json``/``.md`` and ``trajectory.png`` (total depth against total
width, As-ViT Figure 3); a run started again with the same arguments resumes.  See docs/asvit.md.
"""
from __future__ import annotations

import argparse
import os
import sys

HELP = "grow a seed topology's width and depth with training-free proxies (As-ViT auto-scaling)"


def until(text: str) -> int:
    """``params=100M`` → 100000000 (only a parameter limit is supported)."""
    from spacelang.errors import WhereError
    from spacelang.util.quantity import parse_quantity
    metric, sep, value = text.partition("=")
    if not sep or metric.strip() != "params":
        raise argparse.ArgumentTypeError(f"expected params=QUANTITY (e.g. params=100M), got {text!r}")
    try:
        v = parse_quantity(value)
    except WhereError as e:
        raise argparse.ArgumentTypeError(e.message) from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"the limit must be at least 1 parameter, got {value}")
    return int(v)


def factors(text: str) -> list[float]:
    try:
        out = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not out or any(not f > 1 for f in out):
        raise argparse.ArgumentTypeError(f"width factors must be numbers greater than 1, got {text!r}")
    return out


def add_arguments(p) -> None:
    from spacelang.commands.options import add_threads, positive_int, seed
    p.add_argument("file", metavar="FILE", help="the topology .space file")
    p.add_argument("--arch", required=True, metavar="SEED", help="the seed topology (JSON: an arch or a best.json)")
    p.add_argument("--until", type=until, required=True, metavar="params=N",
                   help="stop once the network has at least N parameters (e.g. params=100M)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--proxy", default="le,ntk", metavar="LIST", help="ranking proxies (default le,ntk)")
    p.add_argument("--factors", type=factors, default=[1.05, 1.1, 1.15, 1.2], metavar="LIST",
                   help="width factors tried each step (default 1.05,1.1,1.15,1.2)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the networks' random initialisation (default 0)")
    p.add_argument("--inits", type=positive_int, default=5, help="random initialisations per score (default 5)")
    p.add_argument("--max-steps", type=positive_int, default=1000, help="at most this many scaling steps (default 1000)")
    p.add_argument("--no-plot", action="store_true", help="skip trajectory.png")
    add_threads(p)


def run(args) -> int:
    from spacelang.errors import SpacelangError
    from spacelang.commands.common import load_or_report

    space = load_or_report(args.file)
    if space is None:
        return 2
    try:
        import torch

        from spacelang.compiler.export import read_arch
        from spacelang.compiler.proxies import parse_list
        from spacelang.compiler.proxies.scaling import fixed_space_evaluator
        from spacelang.search.autoscale import run_autoscale
        from spacelang.util.quantity import human
        if args.threads:
            torch.set_num_threads(args.threads)
        proxies = parse_list(args.proxy)
        arch = space.validate(read_arch(args.arch)[0])
        result = run_autoscale(space, arch, fixed_space_evaluator(proxies, args.seed, args.inits), args.until,
                               args.output, factors=args.factors,
                               objectives={p.name: 1 if p.higher_is_better else -1 for p in proxies},
                               max_steps=args.max_steps, plot=not args.no_plot,
                               log=lambda s: print(s, file=sys.stderr))
    except SpacelangError as e:
        print(e.render(), file=sys.stderr)
        return 2
    last = result.rows[-1]
    print(f"{len(result.rows) - 1} scaling steps: C {result.rows[0]['width']} → {last['width']}, depths "
          f"{last['depths']}, {human(last['params'])} params; wrote {os.path.join(args.output, 'trajectory.md')} "
          f"and {len(result.rows)} .space files")
    return 0
