"""As-ViT Table 2 at small scale: do L_E and κ_Θ at initialisation rank trained accuracy?

Samples ``--n`` distinct topologies of examples/digits-asvit.space (As-ViT's Table 1 space
shrunk to digits: kernels, attention splits, FFN ratios, final heads; C = 32, one block per
stage), measures L_E and κ_Θ of each at initialisation (``--inits`` random networks averaged,
As-ViT's settings: 10 angles, 16-image NTK batch, norms replaced by identity), trains each
alone from scratch (bench_asvit_common's recipe, ``--epochs``), and prints Kendall's τ of each
proxy with the accuracy and with the evaluation cross-entropy, and the proxy time per topology.
The proxies are also measured with the norms kept (``norms_kept``: an ablation of the authors'
identity-norm choice), and τ of the parameter count with accuracy is printed as a baseline.
The paper (87 ImageNet topologies, 300 epochs): τ(L_E, acc) = +0.49, τ(κ, acc) = −0.49.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_asvit_proxies.py [--n 24] [--epochs 6] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from bench_asvit_common import SPACE, digits_tensors, kendall, load_space, train_from_scratch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--inits", type=int, default=5)
    ap.add_argument("--space", default=SPACE, help="the topology space (default examples/digits-asvit.space)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)
    import spacelang as sl
    from spacelang.compiler import proxies as P
    from spacelang.util.archkey import arch_json

    space, splits = load_space(args.space)
    state = "compiled" if splits else "NOT compiled: splits 1"
    print(f"space {space.name}: {space.size():,} topologies; attention splits {state}")
    rng, archs, seen = random.Random(args.seed), [], set()
    while len(archs) < args.n:
        a = space.sample(rng)
        if arch_json(a) not in seen:
            seen.add(arch_json(a))
            archs.append(a)
    data = digits_tensors()
    proxies = P.parse_list("le,ntk")
    rows = []
    start = time.perf_counter()
    for i, arch in enumerate(archs):
        r = P.score_arch(space, arch, proxies, seed=args.seed, inits=args.inits)
        kept = P.score_arch(space, arch, proxies, seed=args.seed, inits=args.inits, norms="keep")
        t0 = time.perf_counter()
        acc, loss = train_from_scratch(space, arch, seed=args.seed, epochs=args.epochs, data=data)
        rows.append({"arch": arch, "length_distortion": r["length_distortion"], "ntk_condition": r["ntk_condition"],
                     "cv": r["cv"], "proxy_seconds": r["seconds"], "train_seconds": time.perf_counter() - t0,
                     "accuracy": acc, "loss": loss, "params": sl.cost(space, arch).params,
                     "norms_kept": {"length_distortion": kept["length_distortion"],
                                    "ntk_condition": kept["ntk_condition"]}})
        print(f"{i:>3}  L_E {r['length_distortion']:.4f}  κ {r['ntk_condition']:10.2f}  acc {acc:6.2f}%  "
              f"loss {loss:.4f}  proxies {r['seconds']:.2f}s  train {rows[-1]['train_seconds']:.1f}s", flush=True)
    le_kept = [r["norms_kept"]["length_distortion"] for r in rows]
    kappa_kept = [r["norms_kept"]["ntk_condition"] for r in rows]
    params = [r["params"] for r in rows]
    le = [r["length_distortion"] for r in rows]
    kappa = [r["ntk_condition"] for r in rows]
    acc = [r["accuracy"] for r in rows]
    loss = [r["loss"] for r in rows]
    summary = {
        "n": len(rows), "epochs": args.epochs, "inits": args.inits, "splits_compiled": splits,
        "tau_le_acc": kendall(le, acc), "tau_ntk_acc": kendall(kappa, acc),
        "tau_le_loss": kendall(le, loss), "tau_ntk_loss": kendall(kappa, loss),
        "norms_kept": {"tau_le_acc": kendall(le_kept, acc), "tau_ntk_acc": kendall(kappa_kept, acc),
                       "tau_le_loss": kendall(le_kept, loss), "tau_ntk_loss": kendall(kappa_kept, loss)},
        "tau_params_acc": kendall(params, acc), "tau_le_ntk": kendall(le, kappa),
        "proxy_seconds_per_topology": statistics.fmean(r["proxy_seconds"] for r in rows),
        "mean_cv_le": statistics.fmean(r["cv"]["length_distortion"] for r in rows),
        "mean_cv_ntk": statistics.fmean(r["cv"]["ntk_condition"] for r in rows),
        "accuracy_range": [min(acc), max(acc)], "total_seconds": time.perf_counter() - start}
    print(json.dumps(summary, indent=2))
    print("paper (As-ViT Table 2): tau(kappa_ntk, acc) = -0.49, tau(L_E, acc) = +0.49")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"summary": summary, "rows": rows}, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
