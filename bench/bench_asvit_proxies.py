"""As-ViT Table 2 at small scale: do L_E and κ_Θ at initialisation rank trained accuracy?

Samples ``--n`` distinct topologies of a digits As-ViT space (default examples/digits-asvit.space:
As-ViT's Table 1 space shrunk to digits — kernels, attention splits, FFN ratios, final heads;
C = 32, one block per stage), measures L_E and κ_Θ of each at initialisation (``--inits`` random
networks averaged), trains each alone from scratch (bench_asvit_common's recipe, ``--epochs``),
and prints Kendall's τ of each proxy with the accuracy and with the evaluation cross-entropy,
and the proxy time per topology.  The digits are resized to the space's input resolution.

The proxies are measured under several *definitions* (the same networks, weights and planes):

- ``ours``: the defaults (circle radius √N, the paper's; norms → identity for both proxies;
  κ over every parameter on a Gaussian batch);
- ``norms_kept``: both proxies with every norm kept;
- ``le_radius1``: L_E on a circle of radius 1, as As-ViT's released code draws it;
- ``kappa_code``: κ as the released code computes it — norms kept, weights only (no biases), on
  16 training images instead of Gaussian noise;
- ``code``: ``le_radius1`` and ``kappa_code`` together (the released code's settings throughout).

``--reuse FILE`` takes the topologies and their accuracies from an earlier ``--out`` file and only
measures the proxies (the definitions do not change the trained networks).  τ of the parameter
count with accuracy is printed as a baseline.  The paper (87 ImageNet topologies, 300 epochs):
τ(L_E, acc) = +0.49, τ(κ, acc) = −0.49.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_asvit_proxies.py [--n 24] [--epochs 6] [--space F] [--out F.json]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from bench_asvit_common import SPACE, digits_tensors, kendall, load_space, train_from_scratch

LE, NTK = "length_distortion", "ntk_condition"


def definitions(images):
    """name → (norms per proxy, options per proxy) for :func:`score_arch`."""
    code_ntk = {"params": "weights", "inputs": images}
    return {
        "ours": ({LE: "identity", NTK: "identity"}, {}),
        "norms_kept": ({LE: "keep", NTK: "keep"}, {}),
        "le_radius1": ({LE: "identity", NTK: "identity"}, {LE: {"radius": 1.0}}),
        "kappa_code": ({LE: "identity", NTK: "keep"}, {NTK: code_ntk}),
        "code": ({LE: "identity", NTK: "keep"}, {LE: {"radius": 1.0}, NTK: code_ntk}),
    }


def score_all(P, space, arch, proxies, defs, seed, inits):
    """{definition: {LE, NTK, cv, seconds}}; ``code`` reuses the runs it is made of (same seeds)."""
    out = {}
    for name, (norms, options) in defs.items():
        if name == "code":
            continue
        r = P.score_arch(space, arch, proxies, seed=seed, inits=inits, norms=norms, options=options)
        out[name] = {LE: r[LE], NTK: r[NTK], "cv": r["cv"], "seconds": r["seconds"]}
    out["code"] = {LE: out["le_radius1"][LE], NTK: out["kappa_code"][NTK]}
    return out


def sample_archs(space, n, seed):
    from spacelang.util.archkey import arch_json
    rng, archs, seen = random.Random(seed), [], set()
    while len(archs) < n:
        a = space.sample(rng)
        if arch_json(a) not in seen:
            seen.add(arch_json(a))
            archs.append(a)
    return archs


def summarise(rows, defs, args, splits, seconds):
    acc = [r["accuracy"] for r in rows]
    loss = [r["loss"] for r in rows]
    table = {}
    for name in defs:
        le = [r["proxies"][name][LE] for r in rows]
        kappa = [r["proxies"][name][NTK] for r in rows]
        table[name] = {"tau_le_acc": kendall(le, acc), "tau_ntk_acc": kendall(kappa, acc),
                       "tau_le_loss": kendall(le, loss), "tau_ntk_loss": kendall(kappa, loss),
                       "tau_le_ntk": kendall(le, kappa)}
    ours = [r["proxies"]["ours"] for r in rows]
    return {"space": args.space, "n": len(rows), "epochs": args.epochs, "inits": args.inits,
            "splits_compiled": splits, "tau": table,
            "tau_params_acc": kendall([r["params"] for r in rows], acc),
            "proxy_seconds_per_topology": statistics.fmean(o["seconds"] for o in ours),
            "mean_cv_le": statistics.fmean(o["cv"][LE] for o in ours),
            "mean_cv_ntk": statistics.fmean(o["cv"][NTK] for o in ours),
            "accuracy_range": [min(acc), max(acc)], "total_seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--inits", type=int, default=5)
    ap.add_argument("--space", default=SPACE, help="the topology space (default examples/digits-asvit.space)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", default=None, help="an earlier --out file: its archs and accuracies, proxies only")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)
    import spacelang as sl
    from spacelang.compiler import proxies as P

    space, splits = load_space(args.space)
    state = "compiled" if splits else "NOT compiled: splits 1"
    print(f"space {space.name}: {space.size():,} topologies; attention splits {state}")
    if args.reuse:
        with open(args.reuse, encoding="utf-8") as f:
            old = json.load(f)["rows"]
        archs = [r["arch"] for r in old]
        args.epochs = None
    else:
        archs = sample_archs(space, args.n, args.seed)
    shape = space.input_shape(archs[0])
    data = digits_tensors(shape[-1])
    images = data[0][torch.randperm(len(data[0]), generator=torch.Generator().manual_seed(args.seed))[:16]]
    defs = definitions(images)
    proxies = P.parse_list("le,ntk")
    rows = []
    start = time.perf_counter()
    for i, arch in enumerate(archs):
        scores = score_all(P, space, arch, proxies, defs, args.seed, args.inits)
        t0 = time.perf_counter()
        if args.reuse:
            acc, loss = old[i]["accuracy"], old[i]["loss"]
        else:
            acc, loss = train_from_scratch(space, arch, seed=args.seed, epochs=args.epochs, data=data)
        rows.append({"arch": arch, "proxies": scores, "train_seconds": time.perf_counter() - t0,
                     "accuracy": acc, "loss": loss, "params": sl.cost(space, arch).params})
        o = scores["ours"]
        print(f"{i:>3}  L_E {o[LE]:.4f}  κ {o[NTK]:10.2f}  acc {acc:6.2f}%  loss {loss:.4f}  "
              f"proxies {o['seconds']:.2f}s  train {rows[-1]['train_seconds']:.1f}s", flush=True)
    summary = summarise(rows, defs, args, splits, time.perf_counter() - start)
    print(json.dumps(summary, indent=2))
    print("paper (As-ViT Table 2): tau(kappa_ntk, acc) = -0.49, tau(L_E, acc) = +0.49")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"summary": summary, "rows": rows}, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
