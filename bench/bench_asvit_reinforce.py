"""REINFORCE (As-ViT Algorithm 1) against random sampling at an equal number of proxy evaluations.

For each search seed: REINFORCE runs ``--steps`` policy steps on examples/digits-asvit.space with
the As-ViT reward (range-normalised L_E minus range-normalised κ_Θ) and returns its policy's most
probable topology; it evaluated E distinct topologies (repeats are cached).  Random sampling
draws E distinct topologies uniformly, scores them with the same proxies and keeps the one with
the smallest rank sum (L_E descending, κ ascending — the auto-scaler's rule).  Both final
topologies are trained from scratch (bench_asvit_common's recipe) and their accuracies compared.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_asvit_reinforce.py [--steps 150] [--seeds 0 1]
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time

from bench_asvit_common import SPACE, digits_tensors, load_space, train_from_scratch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--inits", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--space", default=SPACE, help="the topology space (default examples/digits-asvit.space)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)
    from spacelang.compiler import proxies as P
    from spacelang.compiler.proxies.search import proxy_evaluator
    from spacelang.search.autoscale import rank_sum_choice
    from spacelang.search.reinforce import ASVIT_OBJECTIVES, run_reinforce
    from spacelang.util.archkey import arch_json

    space, splits = load_space(args.space)
    print(f"space {space.name}; splits {'compiled' if splits else 'NOT compiled: splits 1'}; "
          f"{args.steps} steps, {args.inits} inits per score")
    proxies = P.parse_list("le,ntk")
    data = digits_tensors()
    out = []
    for seed in args.seeds:
        evaluate = proxy_evaluator(space, proxies, seed, args.inits)
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            rl = run_reinforce(space, evaluate, steps=args.steps, seed=seed, out_dir=d, lr=args.lr)
        rl_seconds = time.perf_counter() - t
        budget = rl.evaluations
        rng, seen, rows = random.Random(seed), set(), []
        t = time.perf_counter()
        while len(rows) < budget:
            a = space.sample(rng)
            if arch_json(a) not in seen:
                seen.add(arch_json(a))
                rows.append({"arch": a, **evaluate(a)})
        best_random = rows[rank_sum_choice(rows, ASVIT_OBJECTIVES)[0]]["arch"]
        rnd_seconds = time.perf_counter() - t
        rl_scores, rnd_scores = evaluate(rl.best), evaluate(best_random)
        rl_acc = train_from_scratch(space, rl.best, seed, args.epochs, data)
        rnd_acc = train_from_scratch(space, best_random, seed, args.epochs, data)
        rec = {"seed": seed, "evaluations": budget, "entropy": [rl.entropy[0], rl.entropy[-1]],
               "reinforce": {"arch": rl.best, **rl_scores, "accuracy": rl_acc[0], "loss": rl_acc[1],
                             "search_seconds": rl_seconds},
               "random": {"arch": best_random, **rnd_scores, "accuracy": rnd_acc[0], "loss": rnd_acc[1],
                          "search_seconds": rnd_seconds}}
        out.append(rec)
        print(json.dumps(rec, sort_keys=True), flush=True)
    for k in ("reinforce", "random"):
        accs = [r[k]["accuracy"] for r in out]
        print(f"{k:>9}: accuracy {' / '.join(f'{a:.2f}' for a in accs)} (mean {sum(accs) / len(accs):.2f}%)")


if __name__ == "__main__":
    main()
