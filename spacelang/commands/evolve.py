"""``spacelang evolve``: S3 space evolution (E-T error, linear trends, comment-preserving rewrite).

Two modes:

* ``spacelang evolve FILE --from-results RESULTS -o NEW.space [--report DIR]`` — one evolution
  step from an existing results table (JSON Lines, DESIGN.md §6).  Pure Python, no torch.
* ``spacelang evolve FILE --iterations T --data digits -o DIR`` — S3 Alg. 1: train the supernet of
  each space with the sandwich rule, sample N archs under the constraints, evaluate them with
  inherited weights, rewrite, continue; one folder per iteration under DIR.  Imports the compiler
  (torch) only in this mode.
"""
from __future__ import annotations

import difflib
import json
import os
import sys

HELP = "evolve a space with S3's E-T error (from a results table, or the full train/evaluate loop)"


def add_arguments(p) -> None:
    from .options import add_threads, count, positive, positive_int, seed
    p.add_argument("file", metavar="FILE", help="the .space file to evolve")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-results", metavar="RESULTS", help="results.jsonl of archs evaluated in FILE's space")
    src.add_argument("--iterations", type=positive_int, metavar="T", help="run T evolution steps (trains supernets)")
    p.add_argument("-o", "--output", required=True, metavar="PATH",
                   help="the evolved .space (with --from-results; '-' for stdout), or the run directory (--iterations)")
    p.add_argument("--report", metavar="DIR", help="write report.md, report.json and figures here (--from-results)")
    p.add_argument("--tau", type=positive, default=0.4, help="threshold τ of Eq. 8 (default 0.4)")
    p.add_argument("--top-k", type=positive, default=50,
                   help="weight mass of the top tier in Q_t (default 50, as S3's top 50)")
    p.add_argument("--rounding", choices=("trunc", "floor"), default="trunc",
                   help="how w/τ becomes a number of steps: toward zero (default) or floor as S3 writes it")
    p.add_argument("--max-steps", type=count, metavar="K",
                   help="move no subspace by more than K steps per iteration (not in S3; for few, noisy archs; "
                        "default: no limit)")
    p.add_argument("--step", action="append", default=[], metavar="FIELD=γ",
                   help="step γ for a field without a `step` in the file (overrides S3's defaults); repeatable")
    p.add_argument("--diff", action="store_true", help="print a unified diff of the old and new space")
    p.add_argument("--json", action="store_true", help="print the step's report as JSON")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    loop = p.add_argument_group("full loop (--iterations)")
    loop.add_argument("--data", default="digits", help="digits, synthetic or an ImageFolder path (default digits)")
    loop.add_argument("--archs", type=positive_int, default=100, metavar="N",
                      help="archs sampled and evaluated per iteration (default 100)")
    loop.add_argument("--epochs", type=positive_int,
                      help="supernet epochs per iteration (default: the compiler's for the data)")
    loop.add_argument("--batch-size", type=positive_int,
                      help="training batch size (default: the compiler's for the data, as train)")
    loop.add_argument("--seed", type=seed, default=0, help="seed of training and sampling (default 0)")
    loop.add_argument("--no-final-eval", action="store_true",
                      help="do not train and evaluate the final space (its error distribution is then not plotted)")
    loop.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_threads(loop)


def _steps(items) -> dict:
    import math
    from ..errors import OptionError
    out = {}
    for s in items:
        name, sep, val = s.partition("=")
        if not sep or not name:
            raise OptionError(f"--step takes FIELD=γ, got {s!r}")
        try:
            v = float(val)
        except ValueError:
            raise OptionError(f"--step {s!r}: γ must be a number") from None
        if not math.isfinite(v) or v <= 0:
            raise OptionError(f"--step {s!r}: γ must be a positive number")
        out[name.strip()] = int(v) if v.is_integer() else v
    return out


def run(args) -> int:
    from .common import load_or_report
    if args.tau <= 0 or args.top_k <= 0 or (args.max_steps is not None and args.max_steps < 0):
        print("error: --tau and --top-k must be positive, --max-steps non-negative", file=sys.stderr)
        return 2
    from ..errors import SpacelangError
    try:
        steps = _steps(args.step)
    except SpacelangError as e:
        print(e.render(), file=sys.stderr)
        return 2
    space = load_or_report(args.file, quiet_warnings=True)
    if space is None:
        return 2
    if args.from_results is not None:
        return _from_results(args, space, steps)
    return _loop(args, space, steps)


def _from_results(args, space, steps) -> int:
    from ..errors import OutputError, SpacelangError
    from ..search.et_error import read_results
    from ..search.s3_evolve import evolve_space
    from ..search.s3_report import write_report
    from ..util.atomic import write_text
    try:
        if args.output != "-" and os.path.isdir(args.output):
            raise OutputError(f"-o {args.output} is a folder; with --from-results -o names the evolved .space file")
        rows = read_results(args.from_results)
        ev = evolve_space(space, rows, tau=args.tau, top_k=args.top_k, rounding=args.rounding, steps=steps,
                          max_steps=args.max_steps)
        if not ev.rows.used:
            print(f"error: none of the {ev.rows.total} rows of {args.from_results} is a feasible arch of {args.file}"
                  + (f" (e.g. {ev.rows.reasons[0]})" if ev.rows.reasons else ""), file=sys.stderr)
            return 2
        if args.output != "-":
            write_text(args.output, ev.text)
        if args.report:
            write_report(ev, args.report, plots=not args.no_plots)
    except SpacelangError as e:
        print(e.render(), file=sys.stderr)
        return 2
    if args.output == "-":
        sys.stdout.write(ev.text)
    out = sys.stderr if args.output == "-" else sys.stdout
    if args.json:
        print(json.dumps(ev.as_json(), indent=2, sort_keys=True), file=out)
    else:
        _print_summary(ev, args, out)
    if args.diff:
        out.writelines(difflib.unified_diff(space.source.splitlines(True), ev.text.splitlines(True),
                                            args.file, args.output))
    return 0


def _print_summary(ev, args, out) -> None:
    from ..search.rewrite import render_values
    rf = ev.rows
    print(f"{args.file}: {len(rf.used)} of {rf.total} archs used "
          f"({rf.invalid} not in the space, {rf.infeasible} over the constraints); "
          f"E-T {ev.overall['et']:.2f}%", file=out)
    for u in ev.updates:
        if u.changed:
            d = "down" if u.k > 0 else "up"
            print(f"  {u.sub.name}: {render_values(u.old)} → {render_values(u.new)}  "
                  f"(w = {u.trend.slope:+.3f}, {d} {abs(u.k)}·γ, γ = {u.gamma})", file=out)
    print(f"{len(ev.changed)} of {len(ev.updates)} subspaces moved; {ev.space.size():,} → {ev.new_space.size():,} subnets"
          + ("" if args.output == "-" else f"; wrote {args.output}"), file=out)


def _loop(args, space, steps) -> int:
    if args.iterations < 0 or args.archs < 1:
        print("error: --iterations must be >= 0 and --archs >= 1", file=sys.stderr)
        return 2
    # torch and the compiler only for this mode
    from ..compiler.bn import bn_batches
    from ..compiler.commands.common import set_threads
    from ..compiler.data import load_data
    from ..compiler.evaluate import CachedLoader, evaluate
    from ..compiler.runlock import RunLock
    from ..compiler.search_run import resolve_data
    from ..compiler.train import TrainConfig, load_supernet, train
    from ..errors import SpacelangError
    from ..search.s3_loop import run_s3
    set_threads(args.threads)
    try:
        cfg = TrainConfig.for_data(resolve_data(args.data), epochs=args.epochs, batch_size=args.batch_size,
                                   seed=args.seed, sampler="sandwich")
    except SpacelangError as e:
        print(e.render(), file=sys.stderr)
        return 2

    def train_fn(sp, directory):
        train(sp, cfg, directory, resume=True, progress=not args.quiet)
        return directory

    def evaluate_fn(sp, directory, archs):
        _, net, _ = load_supernet(directory)
        data = load_data(cfg.data, sp.input_shape(sp.max_arch()), sp.classes)
        loader = CachedLoader(data.eval_loader("val"))
        bn = bn_batches(net, data, cfg.as_json())
        return [{"accuracy": a} for a in evaluate(net, archs, loader, bn_batches=bn)]

    try:
        with RunLock(args.output):
            res = run_s3(space, args.iterations, args.output, train_fn, evaluate_fn, n_archs=args.archs,
                         tau=args.tau, top_k=args.top_k, rounding=args.rounding, seed=args.seed, steps=steps,
                         max_steps=args.max_steps, evaluate_final=not args.no_final_eval, plots=not args.no_plots)
    except SpacelangError as e:
        print(e.render(), file=sys.stderr)
        return 2
    print(f"{args.file}: {args.iterations} evolution step(s) in {res.directory}; "
          f"{res.spaces[0].size():,} → {res.spaces[-1].size():,} subnets; see {os.path.join(res.directory, 'summary.md')}")
    return 0
