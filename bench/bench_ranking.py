"""AutoFormer's central claim at small scale, and evolution against random search, in one run.

1. *Inherited vs from scratch* (AutoFormer Table 4 / Fig. 7): ``--subnets`` archs spread over the
   demo space (evenly spaced quantiles of params among 400 uniform samples, plus the smallest and
   the largest) are scored twice on the digits TEST split — with weights inherited from the
   trained supernet, and trained alone from scratch with the same recipe (``train`` with a sampler
   that always returns that arch; same epochs, batch, learning rate, augmentation).  Kendall's τ
   of the two columns says whether the supernet ranks subnets as training them would; τ of the
   test cross-entropy is printed too, since 270 test images make top-1 a coarse, tie-prone score.
2. *Evolution vs random search* (AutoFormer Table 2): on the same supernet, under a params bound,
   both strategies evaluate the same number of subnets on the search-validation split; the best
   and the mean of the top 10 are reported per seed and averaged.

    .venv/bin/python bench/bench_ranking.py [--rundir runs/demo] [--epochs 60] [--subnets 10]

``--rundir`` reuses a trained supernet (``make demo`` leaves one in runs/demo); without a
checkpoint there the supernet is trained first.  Everything is seeded: reruns print the same
numbers (up to thread-count effects on float sums).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import spacelang as sl  # noqa: E402


# A control space with a wide capacity range (1.1K to 172K params): on digits the demo space's
# subnets all land within a few test images of each other, so their ranking is mostly noise; here
# the small subnets underfit and the ranking has something to find.  16×16 input, 2×2 patches
# (one token per original pixel), one stage of global attention.
WIDE = """\
space ranking_wide
input image 16 channels 1
classes 10

stem patch_embed { patch 2 }

stage s1 {
  dim   {8, 16, 32, 64}
  depth 1..4
  block transformer { heads 1..4  head_dim 8  mlp_ratio {1, 2, 4} }
}

head linear { pool avg }
"""


def spread_archs(space, n: int, seed: int = 0) -> list[dict]:
    """``n`` distinct archs at evenly spaced params quantiles of uniform samples (min and max included)."""
    from spacelang.cost import cost
    rng = random.Random(seed)
    pool = {json.dumps(a, sort_keys=True): a for a in (space.sample(rng) for _ in range(400))}
    ranked = sorted(pool.values(), key=lambda a: cost(space, a).params)
    picks = [space.min_arch()]
    for i in range(1, n - 1):
        picks.append(ranked[round(i * (len(ranked) - 1) / (n - 1))])
    picks.append(space.max_arch())
    out, seen = [], set()
    for a in picks:
        k = json.dumps(a, sort_keys=True)
        if k not in seen:
            seen.add(k)
            out.append(a)
    return out


def kendall_tau(x, y) -> float:
    from scipy.stats import kendalltau
    return float(kendalltau(x, y).statistic)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", default=os.path.join(ROOT, "examples", "digits.space"),
                    help="a .space file, or 'wide' for the built-in wide-capacity control space")
    ap.add_argument("--rundir", default=None, help="trained supernet (default runs/demo; runs/bench_ranking/wide "
                    "for --space wide)")
    ap.add_argument("--scratch-seeds", type=int, default=1,
                    help="train each subnet from scratch with this many seeds; with 2 or more, τ between two "
                         "seeds is printed as the noise ceiling of the ranking")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of the supernet (if trained here) and of "
                    "each subnet from scratch (default: 60 for a supernet trained here, then the supernet's)")
    ap.add_argument("--subnets", type=int, default=10)
    ap.add_argument("--budget", type=int, default=220, help="subnets evaluated by each search strategy")
    ap.add_argument("--seeds", type=int, default=3, help="search seeds per strategy")
    ap.add_argument("--where", default=None, help="params bound of the searches (default: the median subnet's)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-scratch", action="store_true", help="only the search comparison")
    ap.add_argument("--scratch-dir", default=os.path.join(ROOT, "runs", "bench_ranking"),
                    help="where the from-scratch subnets are trained (reused by reruns)")
    args = ap.parse_args()

    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from spacelang.compiler import checkpoint as ckpt
    from spacelang.compiler.search_run import run_search
    from spacelang.compiler.data import load_data
    from spacelang.compiler.evaluate import CachedLoader, evaluate, evaluate_loss
    from spacelang.compiler.train import TrainConfig, load_supernet, train
    from spacelang.cost import cost
    from spacelang.search.where import Bounds

    if args.space == "wide":
        space = sl.loads(WIDE, filename="ranking_wide.space")
        args.rundir = args.rundir or os.path.join(args.scratch_dir, "wide")
    else:
        space = sl.load(args.space)
        args.rundir = args.rundir or os.path.join(ROOT, "runs", "demo")
    t0 = time.perf_counter()
    if ckpt.checkpoint_dir(args.rundir) is None or ckpt.load(args.rundir).epoch == 0:
        cfg = TrainConfig.for_data("digits", epochs=args.epochs or 60)  # the demo's length
        print(f"training the supernet of {space.name} for {cfg.epochs} epochs into {args.rundir} …", flush=True)
        train(space, cfg, args.rundir, resume=True, progress=False)
    _, net, c = load_supernet(args.rundir)
    if c.state["space_sha256"] != ckpt.sha256(space.source):
        print(f"{args.rundir} was trained on another space than {args.space}", file=sys.stderr)
        return 2
    cfg = TrainConfig.from_json(c.state["config"])
    data = load_data(cfg.data, space.input_shape(space.max_arch()), space.classes)
    test = CachedLoader(data.eval_loader("test"))
    print(f"supernet: {args.rundir}, {c.epoch} epochs ({cfg.sampler} sampler, batch {cfg.batch_size}, lr {cfg.lr}); "
          f"data {data.describe()}")

    # ------------------------------------------------------------------ 1. inherited vs scratch
    if not args.skip_scratch:
        archs = spread_archs(space, args.subnets)
        inherited = evaluate(net, archs, test)
        inherited_loss = evaluate_loss(net, archs, test)
        scratch_cfg = TrainConfig.from_json(dict(cfg.as_json(), epochs=args.epochs or cfg.epochs, sampler="uniform"))
        seeds = list(range(max(args.scratch_seeds, 1)))
        by_seed = {s_: ([], []) for s_ in seeds}  # seed -> (top-1 per arch, CE per arch)
        print(f"\ntraining {len(archs)} subnets from scratch ({scratch_cfg.epochs} epochs each, seeds {seeds}, "
              f"kept in {args.scratch_dir}) …", flush=True)
        for i, a in enumerate(archs):
            for sd in seeds:
                run_cfg = TrainConfig.from_json(dict(scratch_cfg.as_json(), seed=scratch_cfg.seed + sd))
                # one run directory per arch and recipe: a rerun reuses finished subnets, resumes killed ones
                tag = ckpt.sha256(json.dumps([a, run_cfg.as_json()], sort_keys=True))[:12]
                d = os.path.join(args.scratch_dir, f"subnet-{tag}")
                t = time.perf_counter()
                train(space, run_cfg, d, resume=True, progress=False, sample=lambda rng, a=a: dict(a),
                      log=lambda s: None)
                _, sub_net, _ = load_supernet(d)
                by_seed[sd][0].append(evaluate(sub_net, [a], test)[0])
                by_seed[sd][1].append(evaluate_loss(sub_net, [a], test)[0])
                print(f"  subnet {i + 1}/{len(archs)} seed {sd}: {by_seed[sd][0][-1]:.2f}% "
                      f"({time.perf_counter() - t:.0f} s)", flush=True)
        scratch = [sum(by_seed[sd][0][i] for sd in seeds) / len(seeds) for i in range(len(archs))]
        scratch_loss = [sum(by_seed[sd][1][i] for sd in seeds) / len(seeds) for i in range(len(archs))]
        print("\nInherited vs from-scratch on the digits test split (AutoFormer Table 4 at small scale)")
        print(f"{'#':>2}  {'params':>8}  {'FLOPs':>7}  {'inherited':>9}  {'scratch':>8}  {'diff':>6}  "
              f"{'CE inh.':>7}  {'CE scr.':>7}")
        for i, (a, x, y, lx, ly) in enumerate(zip(archs, inherited, scratch, inherited_loss, scratch_loss)):
            cst = cost(space, a)
            print(f"{i + 1:>2}  {cst.params / 1e3:>7.1f}K  {cst.flops / 1e6:>6.2f}M  {x:>8.2f}%  {y:>7.2f}%  "
                  f"{x - y:>+6.2f}  {lx:>7.4f}  {ly:>7.4f}")
        tau = kendall_tau(inherited, scratch)
        tau_loss = kendall_tau(inherited_loss, scratch_loss)
        mean_i, mean_s = sum(inherited) / len(inherited), sum(scratch) / len(scratch)
        print(f"mean top-1: inherited {mean_i:.2f}%, scratch {mean_s:.2f}%")
        print(f"Kendall's tau, top-1: {tau:.3f} ({'meets' if tau >= 0.6 else 'misses'} the 0.6 target); "
              f"test cross-entropy: {tau_loss:.3f}  (one test image = {100 / len(data.test):.2f} points of top-1)")
        if len(seeds) > 1:
            print(f"noise ceiling — tau between scratch seeds 0 and 1: top-1 "
                  f"{kendall_tau(by_seed[0][0], by_seed[1][0]):.3f}, cross-entropy "
                  f"{kendall_tau(by_seed[0][1], by_seed[1][1]):.3f}; inherited vs each seed: top-1 "
                  + ", ".join(f"{kendall_tau(inherited, by_seed[sd][0]):.3f}" for sd in seeds))

    # ------------------------------------------------------------------ 2. evolution vs random
    if args.where:
        bounds = Bounds.parse(args.where)
    else:
        mid = sorted(cost(space, a).params for a in spread_archs(space, 21, seed=1))[10]
        bounds = Bounds.parse(f"params<={mid}")
    per_gen = 20
    population = per_gen
    generations = max((args.budget - population) // per_gen, 0)
    budget = population + generations * per_gen
    print(f"\nEvolution vs random search on {space.name}, {budget} subnets each, bound {bounds}, "
          f"search-validation split")
    print(f"{'strategy':<10} {'seed':>4}  {'best val':>8}  {'top-10 val':>10}  {'best test':>9}  {'params':>8}")
    summary = {}
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in ("evolution", "random"):
            bests, tops, tests = [], [], []
            for seed in range(args.seeds):
                out = os.path.join(tmp, f"{strategy}{seed}")
                best = run_search(args.rundir, out, bounds=bounds, strategy=strategy, num=budget, seed=seed,
                                  plot=False, net_space=(space, net, cfg.as_json()), population=population,
                                  generations=generations, parents=10, mutations=per_gen // 2,
                                  crossovers=per_gen - per_gen // 2)
                with open(os.path.join(out, "results.jsonl")) as f:
                    accs = sorted((json.loads(line)["accuracy"] for line in f), reverse=True)
                top10 = sum(accs[:10]) / min(10, len(accs))
                bests.append(best["val_accuracy"])
                tops.append(top10)
                tests.append(best["accuracy"])
                print(f"{strategy:<10} {seed:>4}  {best['val_accuracy']:>7.2f}%  {top10:>9.2f}%  "
                      f"{best['accuracy']:>8.2f}%  {best['params'] / 1e3:>7.1f}K", flush=True)
            summary[strategy] = [sum(v) / len(v) for v in (bests, tops, tests)]
            m = summary[strategy]
            print(f"{strategy:<10} {'mean':>4}  {m[0]:>7.2f}%  {m[1]:>9.2f}%  {m[2]:>8.2f}%")
    e, r = summary["evolution"], summary["random"]
    print(f"evolution − random: best {e[0] - r[0]:+.2f} points, top-10 mean {e[1] - r[1]:+.2f} points, "
          f"best on test {e[2] - r[2]:+.2f} points")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
