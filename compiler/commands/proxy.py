"""``spacelang proxy FILE [--arch A.json | -n N] [--proxy le,ntk] [--seed S] [--inits K] [--json]``.

Scores archs of a space with training-free proxies (As-ViT): ``le`` (``length_distortion``,
L_E, higher is better) and ``ntk`` (``ntk_condition``, κ_Θ, lower is better), each the mean
over K randomly initialised networks of the arch (default 5).  The arch comes from ``--arch``
(a JSON file: an arch, or a ``best.json`` holding one under ``"arch"``), else N archs are
sampled uniformly with ``--seed`` (default: the space's only arch for a fixed space, else one).
Prints a table, or with ``--json`` one JSON object per arch (scores, per-init values, their
coefficient of variation, seconds).  See docs/asvit.md.
"""
from __future__ import annotations

import json
import sys

HELP = "score archs with training-free proxies (As-ViT L_E and NTK condition number)"


def add_arguments(p) -> None:
    from spacelang.commands.options import add_threads, positive_int, seed
    p.add_argument("file", metavar="FILE", help="the .space file")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--arch", metavar="A.json", default=None, help="score this arch (JSON file)")
    src.add_argument("-n", type=positive_int, default=None, metavar="N", help="score N archs sampled with --seed")
    p.add_argument("--proxy", default="le,ntk", metavar="LIST",
                   help="comma-separated proxies: le (length_distortion), ntk (ntk_condition); default le,ntk")
    p.add_argument("--seed", type=seed, default=0,
                   help="seed of the sampled archs and of the networks' initialisation (default 0)")
    p.add_argument("--inits", type=positive_int, default=5, metavar="K",
                   help="random initialisations averaged per arch (default 5, as As-ViT's code)")
    p.add_argument("--angles", type=positive_int, default=10, help="angles on the circle for L_E (default 10)")
    p.add_argument("--batch", type=positive_int, default=16, help="images in the NTK batch (default 16)")
    p.add_argument("--norms", choices=("identity", "keep"), default="identity",
                   help="identity: replace normalisation layers by the identity (As-ViT's code; default); keep")
    add_threads(p)
    p.add_argument("--json", action="store_true", help="one JSON object per arch")


def run(args) -> int:
    import random

    from spacelang.errors import SpacelangError
    from spacelang.commands.common import load_or_report

    space = load_or_report(args.file)
    if space is None:
        return 2
    try:
        import torch

        from spacelang.compiler import proxies as P
        from spacelang.compiler.export import read_arch
        if args.threads:
            torch.set_num_threads(args.threads)
        chosen = P.parse_list(args.proxy)
        if args.arch is not None:
            archs = [space.validate(read_arch(args.arch)[0])]
        else:
            rng = random.Random(args.seed)
            n = args.n if args.n is not None else 1
            archs = [space.sample(rng) for _ in range(n)]
        options = {"length_distortion": {"angles": args.angles}, "ntk_condition": {"batch": args.batch}}
        if not args.json:
            print(f"{'#':>3}  " + "  ".join(f"{p.alias:>12}" for p in chosen) + "  seconds  arch")
        for i, arch in enumerate(archs):
            r = P.score_arch(space, arch, chosen, seed=args.seed, inits=args.inits, norms=args.norms,
                             options=options)
            if args.json:
                print(json.dumps({"arch": arch, **r}, sort_keys=True))
            else:
                cells = "  ".join(f"{r[p.name]:>12.5g}" for p in chosen)
                print(f"{i:>3}  {cells}  {r['seconds']:>7.2f}  {json.dumps(arch, sort_keys=True)}")
    except SpacelangError as e:
        print(e.render(), file=sys.stderr)
        return 2
    return 0
