"""NASViT's claims at digits scale: the Table 7 ablation, the predictor's held-out τ, and
predictor-guided evolution against random search at equal measured evaluations.

On ``examples/digits-hybrid.space`` (conv stem, MBConv stages, a NASViT transformer stage with
switchable scaling layers; 8×8 digits upscaled), the same epochs and seeds for every variant:

- (a) ``sandwich + KD`` — the nasvit rule without projection (largest with labels; smallest and
  2 random with in-place KL distillation), the default DeiT-style recipe, no switchable scaling
  (``scale_init 0`` in the transformer block);
- (b) + the weak recipe (``--recipe nasvit``: no weight decay, no drop path, 1-px shifts);
- (c) + switchable scaling layers (the space as shipped, ``scale_init 1e-4``);
- (d) + prioritise the subnets (Eq. 1) per tensor — the reading under which Table 7's 0 % holds;
- (d′) + prioritise the subnets over the whole gradient vector (the default ``--projection``);
- (e) prioritise the supernet, per tensor.

For each: the conflict ratio (share of parameter tensors with cos(∇sup, ∇sub) < 0 in the
update, mean over the epochs; ``raw``: before projection) and top-1 of the smallest and the
largest subnet on the search-validation and test splits after the last epoch, mean ± spread over
the seeds.  Then, on (d)'s supernet (first seed): ``search --strategy predictor`` with
``--samples`` measured subnets and its front against ``search --strategy random`` with as many
measured subnets: the predictor's held-out Kendall τ and RMSE, the best subnet of each (search-val
and test accuracy) under a FLOPs bound.

Fewer epochs than a converged run (default 6; digits, 2 CPU cores shared) and 512 measured
subnets for the predictor (the paper's 1,024): the numbers show directions, not ImageNet's
magnitudes.  Measured: 11 min with ``--epochs 4 --samples 256``; 22 min with the defaults while
other jobs loaded the machine (a run took 60–70 s alone, 100–150 s under load).
Run: ``OMP_NUM_THREADS=1 python bench/bench_nasvit_ablation.py``
(``--epochs``, ``--seeds``, ``--variants``, ``--samples``; ``--out`` keeps the JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

import spacelang as sl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HYBRID = os.path.join(ROOT, "examples", "digits-hybrid.space")
#: name -> (train settings, switchable scaling on)
VARIANTS = {
    "a": ({"prioritize": "none", "recipe": "deit"}, False),
    "b": ({"prioritize": "none", "recipe": "nasvit"}, False),
    "c": ({"prioritize": "none", "recipe": "nasvit"}, True),
    "d": ({"prioritize": "sub", "projection": "tensor", "recipe": "nasvit"}, True),
    "d_global": ({"prioritize": "sub", "projection": "global", "recipe": "nasvit"}, True),
    "e": ({"prioritize": "sup", "projection": "tensor", "recipe": "nasvit"}, True),
}
LABELS = {"a": "(a) sandwich + KD", "b": "(b) + weak recipe", "c": "(c) + switchable scaling",
          "d": "(d) + prioritise sub (tensor)", "d_global": "(d') + prioritise sub (global)",
          "e": "(e) prioritise sup (tensor)"}


def space_text(scaling: bool) -> str:
    text = open(HYBRID, encoding="utf-8").read()
    if scaling:
        return text
    old = "block nasvit_transformer { mlp_ratio e }"
    assert old in text, "digits-hybrid.space changed: update the bench"
    return text.replace(old, "block nasvit_transformer { mlp_ratio e  scale_init 0 }")


def train_variant(name: str, seed: int, epochs: int, root: str) -> dict:
    from spacelang.compiler.train import TrainConfig, train
    settings, scaling = VARIANTS[name]
    space = sl.loads(space_text(scaling))
    cfg = TrainConfig.for_data("digits", epochs=epochs, rule="nasvit", seed=seed, **settings)
    run = os.path.join(root, f"{name}-s{seed}")
    t = time.perf_counter()
    train(space, cfg, run, progress=False, log=lambda s: None)
    with open(os.path.join(run, "log.csv"), newline="") as f:
        import csv
        rows = list(csv.DictReader(f))
    test = test_accuracies(run)
    return {"variant": name, "seed": seed, "run": run, "seconds": time.perf_counter() - t,
            "conflict": statistics.mean(float(r["conflict"]) for r in rows),
            "conflict_raw": statistics.mean(float(r["conflict_raw"]) for r in rows),
            "conflict_last": float(rows[-1]["conflict"]), "conflict_raw_last": float(rows[-1]["conflict_raw"]),
            "val_smallest": float(rows[-1]["acc_smallest"]), "val_largest": float(rows[-1]["acc_largest"]),
            "test_smallest": test[1], "test_largest": test[0]}


def test_accuracies(run: str) -> list[float]:
    """Test-split top-1 of the largest and the smallest subnet (BatchNorm recalibrated per arch)."""
    from spacelang.compiler.bn import bn_batches
    from spacelang.compiler.data import load_data
    from spacelang.compiler.evaluate import evaluate
    from spacelang.compiler.train import load_supernet
    space, net, c = load_supernet(run)
    data = load_data("digits", space.input_shape(space.max_arch()), space.classes)
    return evaluate(net, [space.max_arch(), space.min_arch()], data.eval_loader("test"),
                    bn_batches=bn_batches(net, data, c.state.get("config")))


def summarise(rows: list[dict], variants: list[str]) -> list[str]:
    def ms(vals):
        return f"{statistics.mean(vals):.1f} ± {statistics.pstdev(vals):.1f}" if len(vals) > 1 else f"{vals[0]:.1f}"
    out = ["| variant | conflict % (update) | conflict % (raw) | smallest val | largest val | smallest test | "
           "largest test | s/run |", "|---|---|---|---|---|---|---|---|"]
    for v in variants:
        rs = [r for r in rows if r["variant"] == v]
        out.append(f"| {LABELS[v]} | {ms([r['conflict'] for r in rs])} | {ms([r['conflict_raw'] for r in rs])} | "
                   f"{ms([r['val_smallest'] for r in rs])} | {ms([r['val_largest'] for r in rs])} | "
                   f"{ms([r['test_smallest'] for r in rs])} | {ms([r['test_largest'] for r in rs])} | "
                   f"{statistics.mean(r['seconds'] for r in rs):.0f} |")
    return out


def search_comparison(run: str, root: str, samples: int, front: int, where: str, seed: int) -> dict:
    from spacelang.compiler.search_run import run_search
    from spacelang.search.where import Bounds
    bounds = Bounds.parse([where]) if where else Bounds()
    t = time.perf_counter()
    guided = run_search(run, os.path.join(root, "search-predictor"), bounds=bounds, strategy="predictor",
                        seed=seed, plot=False, predictor_settings={"samples": samples, "front": front})
    t_guided = time.perf_counter() - t
    with open(os.path.join(root, "search-predictor", "predictor.json"), encoding="utf-8") as f:
        report = json.load(f)
    measured = samples + len(report["front"])
    t = time.perf_counter()
    rnd = run_search(run, os.path.join(root, "search-random"), bounds=bounds, strategy="random", num=measured,
                     seed=seed + 1, plot=False)
    return {"where": where, "measured": measured, "fit": report["fit"], "front_tau": report["front_tau"],
            "front_rmse": report["front_rmse"], "candidates": report["candidates"],
            "evolution_seconds": report["seconds"]["evolution"],
            "predictor": {k: guided[k] for k in ("val_accuracy", "accuracy", "flops", "params")},
            "random": {k: rnd[k] for k in ("val_accuracy", "accuracy", "flops", "params")},
            "seconds": {"predictor": t_guided, "random": time.perf_counter() - t}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--samples", type=int, default=512, help="measured subnets of the predictor (paper: 1024)")
    ap.add_argument("--front", type=int, default=16)
    ap.add_argument("--where", default="flops<=2M", help="search bound (empty: none)")
    ap.add_argument("--no-search", action="store_true")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        rows = []
        for seed in args.seeds:
            for v in args.variants:
                rows.append(train_variant(v, seed, args.epochs, root))
                r = rows[-1]
                print(f"{v} seed {seed}: conflict {r['conflict']:.1f}% (raw {r['conflict_raw']:.1f}%), smallest "
                      f"{r['val_smallest']:.1f}/{r['test_smallest']:.1f}, largest {r['val_largest']:.1f}/"
                      f"{r['test_largest']:.1f} (val/test), {r['seconds']:.0f} s", flush=True)
        print(f"\n{args.epochs} epochs on digits, seeds {args.seeds}, space {os.path.relpath(HYBRID, ROOT)}; "
              f"top-1 in %, mean ± spread over seeds")
        print("\n".join(summarise(rows, args.variants)))
        result = {"epochs": args.epochs, "seeds": args.seeds, "space": os.path.relpath(HYBRID, ROOT), "runs": rows}
        pick = "d" if "d" in args.variants else args.variants[-1]
        if not args.no_search:
            run = next(r["run"] for r in rows if r["variant"] == pick and r["seed"] == args.seeds[0])
            s = search_comparison(run, root, args.samples, args.front, args.where, args.seeds[0])
            result["search"] = {"supernet": f"{pick} seed {args.seeds[0]}", **s}
            print(f"\nsearch on ({pick}), seed {args.seeds[0]}, {args.where or 'no bound'}: predictor fitted on "
                  f"{s['fit']['train']} subnets, held-out ({s['fit']['held_out']}) Kendall tau {s['fit']['tau']:.3f}, "
                  f"RMSE {s['fit']['rmse']:.2f}; front ({len_front(s)}) tau {s['front_tau']:.3f}, RMSE "
                  f"{s['front_rmse']:.2f}; predicted evolution {s['candidates']} candidates in "
                  f"{s['evolution_seconds']:.1f} s")
            for k in ("predictor", "random"):
                b = s[k]
                print(f"  {k:9s} best of {s['measured']} measured: {b['val_accuracy']:.2f}% search-val, "
                      f"{b['accuracy']:.2f}% test, {b['flops'] / 1e6:.2f}M FLOPs ({s['seconds'][k]:.0f} s)")
        print(f"\ntotal {time.perf_counter() - t0:.0f} s")
        if args.out:
            with open(args.out, "w", encoding="utf-8") as f:
                json.dump(result, f, indent=1)


def len_front(s: dict) -> int:
    return s["measured"] - s["fit"]["train"] - s["fit"]["held_out"]


if __name__ == "__main__":
    main()
