"""``spacelang search RUNDIR -o OUT``: find the best subnet of a trained supernet.

Parses the options and calls :func:`spacelang.compiler.search_run.run_search`, which documents
what OUT receives (results.jsonl, best.json, pareto.png, search.json) and how a killed search
resumes.
"""
from __future__ import annotations

import json
import os
import sys

HELP = "search a trained supernet (evolution or random) under params/FLOPs bounds; report the best subnet"


def add_arguments(p) -> None:
    from spacelang.commands.options import add_threads, count, positive_int, seed, where
    from ..devices import device
    p.add_argument("rundir", metavar="RUNDIR", help="a run directory (train -o) or a compiled checkpoint (compile -o)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory")
    p.add_argument("--where", type=where, action="append", default=[], metavar="EXPR",
                   help="cost bound, e.g. 'params<=200K' or '1M <= flops <= 5M' (repeatable; all must hold)")
    p.add_argument("--strategy", choices=("evolution", "random", "predictor", "reinforce"), default="evolution",
                   help="evolutionary search (default), random sampling under the bounds, NASViT's "
                        "predictor-guided search (a random forest fitted on --samples measured subnets, evolution "
                        "on predicted accuracy: --population 1024, --generations 40, --parents 128, --children 256 "
                        "by default; the front measured at the end), or reinforce: As-ViT's training-free topology "
                        "search of a .space file (RUNDIR is then FILE)")
    p.add_argument("--samples", type=positive_int, default=None,
                   help="predictor: random subnets measured to fit the predictor (default 1024)")
    p.add_argument("--front", type=positive_int, default=None,
                   help="predictor: Pareto-front subnets measured at the end (default 16)")
    p.add_argument("--preset", choices=("autoformer", "s3", "vit-resnas"), default="autoformer",
                   help="evolution settings of a paper (default autoformer: population 50, 20 generations, "
                        "10 parents, P_d 0.2, P_m 0.4); the flags below override them")
    p.add_argument("--population", type=positive_int, default=None, help="initial population (AutoFormer: 50)")
    p.add_argument("--generations", type=count, default=None, help="bred generations (AutoFormer: 20)")
    p.add_argument("--parents", type=positive_int, default=None, help="top archs kept as parents (AutoFormer: 10)")
    p.add_argument("--children", type=positive_int, default=None,
                   help="children per generation, half by mutation, half by crossover (default = population)")
    p.add_argument("--evaluations", "--num", dest="num", type=positive_int, default=None,
                   help="archs evaluated by random search (default: as many as evolution evaluates); "
                        "--num is the old spelling, which torchrun's parser mistakes for its --numa-binding")
    p.add_argument("--data", default=None, help="dataset (default: the one the supernet was trained on)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the search's sampling (default 0)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="evaluation batch size (default 256)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, … (default cpu)")
    p.add_argument("--json", action="store_true", help="print best.json to stdout")
    p.add_argument("--no-plot", action="store_true", help="skip pareto.png")
    add_threads(p)
    from spacelang.commands.latency import add_profile_options
    add_profile_options(p)
    from ..proxies.search import add_reinforce_arguments
    add_reinforce_arguments(p)


#: options only some strategies read: flag → (argparse dest, the strategies that read it)
STRATEGY_OPTIONS = {
    "--evaluations": ("num", ("random",)),
    "--samples": ("samples", ("predictor",)),
    "--front": ("front", ("predictor",)),
    "--proxy": ("proxy", ("reinforce",)),
    "--steps": ("steps", ("reinforce",)),
    "--inits": ("inits", ("reinforce",)),
    "--policy-lr": ("policy_lr", ("reinforce",)),
}


def run(args) -> int:
    foreign = [flag for flag, (dest, strategies) in STRATEGY_OPTIONS.items()
               if getattr(args, dest) is not None and args.strategy not in strategies]
    if foreign:  # an option of another strategy is refused, never silently ignored
        from .common import error
        flag = foreign[0]
        return error(f"{flag} is an option of --strategy {' or '.join(STRATEGY_OPTIONS[flag][1])}, "
                     f"not {args.strategy}")
    if args.strategy == "reinforce":  # no supernet: proxies score randomly initialised networks
        from ..proxies.search import run_proxy_search
        return run_proxy_search(args)
    from spacelang.errors import SpacelangError
    from spacelang.util.quantity import human
    from .common import report, set_threads
    set_threads(args.threads)
    try:
        from spacelang.search.where import Bounds
        from ..search_run import run_search
        bounds = Bounds.parse(args.where) if args.where else Bounds()
        best = run_search(args.rundir, args.output, bounds=bounds, strategy=args.strategy, num=args.num,
                          data=args.data, seed=args.seed, batch_size=args.batch_size, plot=not args.no_plot,
                          log=lambda s: print(s, file=sys.stderr), device=args.device,
                          latency_profile=args.latency_profile, force_profile=args.force_profile,
                          predictor_settings=predictor_settings(args), **evolution_settings(args))
    except SpacelangError as e:
        return report(e)
    from ..distributed import current
    if not current().main:
        return 0  # rank 0 reports
    if args.json:
        print(json.dumps(best, indent=2, sort_keys=True))
    else:
        print(f"best subnet: {best['accuracy']:.2f}% test accuracy ({best['val_accuracy']:.2f}% search-val), "
              f"{human(best['params'])} params, {human(best['flops'])} FLOPs"
              + (f", {best['latency']:.3f} ms predicted" if "latency" in best else "")
              + (f" ({best['latency_measured']:.3f} ms measured)" if "latency_measured" in best else "")
              + "; wrote "
              f"{os.path.join(args.output, 'best.json')}")
    return 0


def predictor_settings(args) -> dict:
    """PredictorConfig fields from the flags (the predictor's own defaults otherwise; no --preset)."""
    from spacelang.search.predictor import PredictorConfig
    return PredictorConfig.settings_from_flags(args.samples, args.population, args.generations, args.parents,
                                               args.children, args.front)


def evolution_settings(args) -> dict:
    """EvolutionConfig fields from ``--preset`` and the flags that override it."""
    from spacelang.search.evolution import PRESETS
    base = PRESETS[args.preset]().to_json()
    for name in ("population", "generations", "parents"):
        if getattr(args, name) is not None:
            base[name] = getattr(args, name)
    children = args.children if args.children is not None else (
        base["population"] if args.population is not None else None)
    if children is not None:
        base["mutations"], base["crossovers"] = children // 2, children - children // 2
    if base["parents"] > base["population"]:
        base["parents"] = base["population"]
    return base
