"""ViT-ResNAS's multi-architectural sampling (issue 14): step cost, and Table 2 at small scale.

1. ``steps`` — one optimizer step (zero_grad, forward, backward, AdamW step) of

   - ``multiarch``: the ``multiarch`` rule with N_a = 16 subnets on sub-batches of B/16, one
     masked forward/backward pass (``net.forward_multi``);
   - ``largest``: the largest subnet alone on the whole batch (``net(x, max_arch)``);
   - ``16 sequential``: the same 16 subnets one after the other, each its own step on its
     sub-batch of B/16 (what multiarch replaces);

   side by side: the variants run alternately, order rotated every round; a ratio is the median of
   per-round ratios (cancels load drifting on a shared machine).  Target: multiarch ≤ 1.3×
   largest.  On ``examples/digits-resnas.space`` at batch 64, and on ``spaces/vit-resnas-tiny.space``
   at a reduced input and batch (``--tiny-resolution``, ``--tiny-batch``: 224 at batch 64 is far
   too slow for a CPU).
2. ``study`` — Table 2 at small scale: supernets of the digits space trained with the
   ``multiarch`` rule at N_a ∈ {1, 4, 8, 16} for the same steps and images (same seed, schedule
   and recipe), then the same evolutionary search under a FLOPs bound on each
   (``compiler/search_run.py``, the library behind ``spacelang search``); the searched subnet's test
   accuracy with inherited weights and trained from scratch (a short single-arch recipe), Kendall's
   τ between inherited and from-scratch test accuracy over ``--subnets`` subnets spread over the
   space (from-scratch accuracies are shared by every N_a), the mean inherited accuracy of those
   subnets, and the wall time per training step (from ``log.csv``'s images/s: steps only).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_multiarch.py [steps|study|all]``
(``--help`` for the sizes).  Results are printed and written to ``bench/results/multiarch.json``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import spacelang as sl  # noqa: E402
from spacelang.compiler.allocator import keep_large_allocations  # noqa: E402

DIGITS = os.path.join(ROOT, "examples", "digits-resnas.space")
TINY = os.path.join(ROOT, "spaces", "vit-resnas-tiny.space")
RESULTS = os.path.join(ROOT, "bench", "results", "multiarch.json")


# ---------------------------------------------------------------------------------------------- 1. steps
def step_runners(space, batch: int, na: int, device: str) -> dict:
    """``{variant: run one optimizer step}`` on one supernet and one batch."""
    from spacelang.compiler import build_supernet
    from spacelang.compiler.distributed import SINGLE
    from spacelang.compiler.precision import grad_scaler
    from spacelang.compiler.rules import StepContext, create_rule
    from spacelang.compiler.train import TrainConfig
    torch.manual_seed(0)
    net = build_supernet(space, drop_path=0.0).to(device).train()
    params = list(net.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, fused=True)
    c, r, _ = space.input_shape(space.max_arch())
    x = torch.randn(batch, c, r, r, device=device)
    y = torch.randint(0, space.classes, (batch,), device=device)
    crit = torch.nn.CrossEntropyLoss()
    scaler = grad_scaler(device, "none")
    rule = create_rule(TrainConfig(rule="multiarch", na=na))
    archs = rule.archs(space, 0, 1000, space.sample)
    largest = space.max_arch()
    sub = batch // na

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def multi():
        opt.zero_grad(set_to_none=True)
        rule.step(StepContext(net, x, y, crit, 1.0, device, "none", scaler, SINGLE, params, labels=y), archs)
        opt.step()
        sync()

    def single():
        opt.zero_grad(set_to_none=True)
        crit(net(x, largest), y).backward()
        opt.step()
        sync()

    def sequential():
        for g, a in enumerate(archs):
            opt.zero_grad(set_to_none=True)
            crit(net(x[g * sub:(g + 1) * sub], a), y[g * sub:(g + 1) * sub]).backward()
            opt.step()
        sync()
    return {"multiarch": multi, "largest": single, f"{na} sequential": sequential}


def bench_steps(space, batch: int, na: int, rounds: int, device: str, note: str = "") -> dict:
    runs = step_runners(space, batch, na, device)
    names = list(runs)
    for fn in runs.values():  # warm-up (and the resolve caches)
        fn()
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(rounds):
        for n in names[i % len(names):] + names[:i % len(names)]:
            t = time.perf_counter()
            runs[n]()
            times[n].append(time.perf_counter() - t)
    base = "largest"
    print(f"\none optimizer step on {space.name}{note}, batch {batch}, N_a = {na} (sub-batches of {batch // na}), "
          f"{device}, {rounds} rounds (median ms; ratio: median of per-round ratios to '{base}')")
    out = {"space": space.name, "batch": batch, "na": na, "rounds": rounds, "note": note, "ms": {}, "ratio": {}}
    for n in names:
        ratio = statistics.median(a / b for a, b in zip(times[n], times[base]))
        flag = ""
        if n == "multiarch":
            flag = f"  (target ≤ 1.3: {'met' if ratio <= 1.3 else 'MISSED'})"
        print(f"  {n:14s} {1e3 * statistics.median(times[n]):9.1f} ms   × {ratio:.3f}{flag}")
        out["ms"][n] = round(1e3 * statistics.median(times[n]), 2)
        out["ratio"][n] = round(ratio, 4)
    seq = f"{na} sequential"
    r = statistics.median(a / b for a, b in zip(times["multiarch"], times[seq]))
    print(f"  multiarch ÷ {seq}: × {r:.3f}")
    out["ratio"]["multiarch/sequential"] = round(r, 4)
    return out


# ---------------------------------------------------------------------------------------------- 2. study
def kendall_tau(x, y) -> float:
    from scipy.stats import kendalltau
    return float(kendalltau(x, y).statistic)


def spread_archs(space, n: int, seed: int = 0) -> list[dict]:
    """``n`` distinct archs at evenly spaced FLOPs quantiles of uniform samples (min and max included)."""
    import random

    from spacelang.cost import cost
    rng = random.Random(seed)
    pool = {json.dumps(a, sort_keys=True): a for a in (space.sample(rng) for _ in range(400))}
    ranked = sorted(pool.values(), key=lambda a: cost(space, a).flops)
    picks = [space.min_arch()] + [ranked[round(i * (len(ranked) - 1) / (n - 1))] for i in range(1, n - 1)] \
        + [space.max_arch()]
    out: dict[str, dict] = {}
    for a in picks:
        out.setdefault(json.dumps(a, sort_keys=True), a)
    return list(out.values())


def scratch_accuracy(space, arch, cfg, workdir, test) -> float:
    """Test accuracy of ``arch`` trained alone with ``cfg`` (the run directory is reused by reruns)."""
    from spacelang.compiler import checkpoint as ckpt
    from spacelang.compiler.evaluate import evaluate
    from spacelang.compiler.train import load_supernet, train
    tag = ckpt.sha256(json.dumps([arch, cfg.as_json()], sort_keys=True))[:12]
    d = os.path.join(workdir, f"scratch-{tag}")
    train(space, cfg, d, resume=True, progress=False, sample=lambda rng: dict(arch), log=lambda s: None)
    _, net, _ = load_supernet(d)
    return evaluate(net, [arch], test)[0]


def study(args) -> dict:
    from spacelang.compiler import checkpoint as ckpt
    from spacelang.compiler.data import load_data
    from spacelang.compiler.evaluate import CachedLoader, evaluate
    from spacelang.compiler.search_run import run_search
    from spacelang.compiler.train import TrainConfig, load_supernet, train
    from spacelang.cost import cost
    from spacelang.search.where import Bounds

    space = sl.load(DIGITS)
    data = load_data("digits", space.input_shape(space.max_arch()), space.classes)
    test = CachedLoader(data.eval_loader("test"))
    lo, hi = cost(space, space.min_arch()).flops, cost(space, space.max_arch()).flops
    bound = args.flops or int(lo + 0.4 * (hi - lo))
    print(f"\nTable 2 analogue on {space.name}: supernets {args.epochs} epochs (batch {args.batch}, warm-up of "
          f"sampling {args.warmup_sampling:g} epochs, token labels {'on' if args.token_label else 'off'}), "
          f"N_a ∈ {args.na}, seeds {args.seeds}; evolution (population {args.population}, {args.generations} "
          f"generations) under flops <= {bound / 1e6:.2f}M; scratch: {args.scratch_epochs} epochs, one arch",
          flush=True)
    scratch_cfg = TrainConfig.for_data("digits", epochs=args.scratch_epochs, batch_size=args.batch)
    spread = spread_archs(space, args.subnets)
    scratch_cache: dict[str, float] = {}

    def scratch(a) -> float:
        k = json.dumps(a, sort_keys=True)
        if k not in scratch_cache:
            t = time.perf_counter()
            scratch_cache[k] = scratch_accuracy(space, a, scratch_cfg, args.workdir, test)
            print(f"    scratch {cost(space, a).flops / 1e6:6.2f}M FLOPs: {scratch_cache[k]:.2f}% "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
        return scratch_cache[k]

    rows = []
    for seed in range(args.seeds):
        for na in args.na:
            cfg = TrainConfig.for_data("digits", epochs=args.epochs, batch_size=args.batch, rule="multiarch", na=na,
                                       warmup_sampling=args.warmup_sampling, token_label=args.token_label,
                                       seed=seed, **({"mixup": 0.8, "cutmix": 1.0} if args.token_label else {}))
            run = os.path.join(args.workdir, f"supernet-na{na}-s{seed}-{ckpt.sha256(json.dumps(cfg.as_json()))[:8]}")
            t = time.perf_counter()
            res = train(space, cfg, run, resume=True, progress=False, log=lambda s: None)
            with open(os.path.join(run, "log.csv"), newline="", encoding="utf-8") as f:
                speeds = [float(r["images_per_s"]) for r in csv.DictReader(f)]
            per_step = args.batch / statistics.median(speeds)  # training steps only, no evaluation
            _, net, _ = load_supernet(run)
            best = run_search(run, os.path.join(run, "search"), bounds=Bounds.parse(f"flops <= {bound}"),
                              strategy="evolution", seed=seed, plot=False, population=args.population,
                              generations=args.generations, parents=max(args.population // 4, 2),
                              mutations=args.population // 2, crossovers=args.population // 2)
            inherited_spread = evaluate(net, spread, test)
            print(f"  N_a {na:2d} seed {seed}: trained in {time.perf_counter() - t:.0f} s "
                  f"({1e3 * per_step:.0f} ms/step); searched subnet {best['flops'] / 1e6:.2f}M "
                  f"FLOPs, inherited {best['accuracy']:.2f}% (val {best['val_accuracy']:.2f}%)", flush=True)
            rows.append({"na": na, "seed": seed, "ms_per_step": round(1e3 * per_step, 1), "searched": best["arch"],
                         "searched_flops": best["flops"], "inherited": best["accuracy"],
                         "val_inherited": best["val_accuracy"], "inherited_spread": inherited_spread,
                         "largest": res.val_acc_max, "smallest": res.val_acc_min})
    print(f"  from scratch ({len(spread)} spread subnets and the searched ones):", flush=True)
    spread_scratch = [scratch(a) for a in spread]
    for r in rows:
        r["scratch"] = scratch(r["searched"])
        r["tau"] = kendall_tau(r["inherited_spread"], spread_scratch)
    print(f"\nTable 2 analogue (digits; flops <= {bound / 1e6:.2f}M; test accuracy %, mean over {args.seeds} "
          f"seed(s); τ: inherited vs scratch over {len(spread)} subnets)")
    print(f"{'N_a':>4}  {'searched FLOPs':>14}  {'inherited':>9}  {'scratch':>8}  {'tau':>6}  {'mean inh.':>9}  "
          f"{'ms/step':>8}")
    table = []
    for na in args.na:
        rs = [r for r in rows if r["na"] == na]
        for r in rs:
            r["mean_inherited_spread"] = statistics.mean(r["inherited_spread"])
        m = {k: statistics.mean(r[k] for r in rs) for k in ("searched_flops", "inherited", "scratch", "tau",
                                                             "mean_inherited_spread", "ms_per_step")}
        table.append({"na": na, **m})
        print(f"{na:>4}  {m['searched_flops'] / 1e6:>13.2f}M  {m['inherited']:>9.2f}  {m['scratch']:>8.2f}  "
              f"{m['tau']:>6.3f}  {m['mean_inherited_spread']:>9.2f}  {m['ms_per_step']:>8.0f}")
    return {"bound_flops": bound, "spread_scratch": spread_scratch, "rows": rows, "table": table,
            "settings": {k: v for k, v in vars(args).items() if k != "what"}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", nargs="?", default="all", choices=("steps", "study", "all"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch-steps", type=int, default=64, help="batch of the step-time comparison on digits")
    ap.add_argument("--tiny-resolution", type=int, default=112, help="input side of ViT-ResNAS-Tiny (224 in the paper)")
    ap.add_argument("--tiny-batch", type=int, default=16)
    ap.add_argument("--tiny-rounds", type=int, default=3)
    ap.add_argument("--na", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--epochs", type=int, default=10, help="supernet epochs")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--warmup-sampling", type=float, default=2.5, help="epochs (the paper: 25%% of the run)")
    ap.add_argument("--token-label", action="store_true")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--flops", type=int, default=None, help="FLOPs bound of the search (default: 40%% of the range)")
    ap.add_argument("--population", type=int, default=20)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--subnets", type=int, default=10)
    ap.add_argument("--scratch-epochs", type=int, default=10)
    ap.add_argument("--workdir", default=os.path.join(ROOT, "runs", "bench_multiarch"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_large_allocations()  # as every spacelang command that runs networks
    out = {}
    if args.what in ("steps", "all"):
        out["steps_digits"] = bench_steps(sl.load(DIGITS), args.batch_steps, 16, args.rounds, args.device)
        with open(TINY, encoding="utf-8") as f:
            text = f.read().replace("input image 224", f"input image {args.tiny_resolution}")
        tiny = sl.loads(text, filename="vit-resnas-tiny.space")
        out["steps_tiny"] = bench_steps(tiny, args.tiny_batch, 16, args.tiny_rounds, args.device,
                                        note=f" at {args.tiny_resolution}×{args.tiny_resolution}")
    if args.what in ("study", "all"):
        out["study"] = study(args)
    from spacelang.util.atomic import write_json
    old = {}
    if os.path.exists(RESULTS):
        with open(RESULTS, encoding="utf-8") as f:
            old = json.load(f)
    write_json(RESULTS, {**old, **out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
