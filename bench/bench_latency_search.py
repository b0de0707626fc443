"""NASViT Appendix C.2 at small scale: search a trained supernet under a FLOPs bound and under a
latency bound with the same budget; compare the winners' accuracy, FLOPs and latency.

NASViT re-searched its A0–A2 (FLOPs-optimal) models for CPU latency at batch 1 and found B0–B2,
as accurate at lower latency.  Here, on a digits supernet (``spacelang train
examples/digits.space --data digits -o runs/lat --epochs 15 --threads 1``) and a latency profile
of its space on this machine:

1. *FLOPs search*: the best of ``--budget`` distinct archs drawn in the band
   ``flops <= F`` (F = the ``--quantile`` of the space's FLOPs over uniform archs);
2. *latency search, same quantile*: the same budget in ``latency <= L`` (L = the same quantile
   of predicted latency);
3. *latency search at the FLOPs winner's latency* (C.2's question: is there a more accurate
   arch at the latency the FLOPs winner has?): ``latency <= predicted latency of winner 1``.

Every search is a constrained random search (``ConstrainedSampler``: the same sampler with a
FLOPs or a latency band, the same seed, the same number of evaluations), ranked by search-val
accuracy with inherited weights; winners are then scored on the test split and re-measured on
this machine (the profile's timing, ``--reps`` samples).

    .venv/bin/python bench/bench_latency_search.py --run runs/lat --profile runs/latency/digits.json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from spacelang.latency import LatencyPredictor, load_profile  # noqa: E402
from spacelang.search.costcache import CostCache  # noqa: E402
from spacelang.search.sampling import ConstrainedSampler  # noqa: E402
from spacelang.search.where import Bounds  # noqa: E402
from spacelang.util.archkey import arch_json  # noqa: E402


def draw(space, band: str, predictor, budget: int, seed: int) -> list[dict]:
    sampler = ConstrainedSampler(space, random.Random(seed), Bounds.parse(band), latency=predictor)
    out, seen = [], set()
    for _ in range(50 * budget):
        a = sampler.sample()
        if arch_json(a) not in seen:
            seen.add(arch_json(a))
            out.append(a)
            if len(out) == budget:
                break
    return out


def quantile(values, q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=os.path.join(ROOT, "runs", "lat"), help="trained run directory")
    ap.add_argument("--profile", required=True, help="latency profile of the run's space (this machine)")
    ap.add_argument("--budget", type=int, default=100, help="archs evaluated per search (default 100)")
    ap.add_argument("--quantile", type=float, default=0.4, help="bound quantile over uniform archs (default 0.4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=41, help="timed samples per winner when re-measured (default 41)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)
    from spacelang.compiler import evaluate as ev
    from spacelang.compiler.bn import bn_batches
    from spacelang.compiler.data import load_data
    from spacelang.compiler.latency import Timing, remeasure
    from spacelang.compiler.train import load_supernet

    t0 = time.perf_counter()
    space, net, c = load_supernet(args.run)
    cfg = c.state.get("config") or {}
    profile = load_profile(args.profile, space)
    predictor = LatencyPredictor(space, profile)
    cost = CostCache(space)
    ds = load_data(cfg.get("data") or "digits", space.input_shape(space.max_arch()), space.classes)
    val, test = ds.eval_loader("val", 512), ds.eval_loader("test", 512)
    bn = bn_batches(net, ds, cfg)

    rng = random.Random(args.seed)
    uniform = [space.sample(rng) for _ in range(2000)]
    flops_bound = quantile([cost(a).flops for a in uniform], args.quantile)
    lat_bound = quantile([predictor(a) for a in uniform], args.quantile)

    def search(band: str) -> dict:
        archs = draw(space, band, predictor, args.budget, args.seed)
        accs = ev.evaluate(net, archs, val, bn_batches=bn)
        i = max(range(len(archs)), key=lambda j: (accs[j], -cost(archs[j]).flops))
        return {"band": band, "evaluated": len(archs), "arch": archs[i], "val_accuracy": accs[i]}

    searches = [("FLOPs", search(f"flops<={flops_bound}")),
                ("latency, same quantile", search(f"latency<={lat_bound:.6f}ms"))]
    at = predictor(searches[0][1]["arch"])
    searches.append(("latency at FLOPs winner's", search(f"latency<={at:.6f}ms")))
    winners = [s["arch"] for _, s in searches]
    timing = Timing.of(profile)._replace(reps=args.reps)
    measured = remeasure(profile, space, winners, timing=timing)
    for (_, s), m in zip(searches, measured):
        a = s["arch"]
        c_ = cost(a)
        s.update(test_accuracy=ev.evaluate(net, [a], test, bn_batches=bn)[0], params=c_.params, flops=c_.flops,
                 predicted_ms=round(predictor(a), 4), measured_ms=round(m, 4))

    print(f"{space.name}: budget {args.budget} archs per search, bounds at the {args.quantile:.0%} quantile "
          f"(flops <= {flops_bound:,}, latency <= {lat_bound:.3f} ms); profile {profile.path} "
          f"({profile.device_text()}); held-out error when built: {profile.heldout}")
    print(f"{'search':<28} {'val %':>6} {'test %':>7} {'FLOPs':>10} {'params':>8} {'pred ms':>8} {'meas ms':>8}")
    for name, s in searches:
        print(f"{name:<28} {s['val_accuracy']:6.2f} {s['test_accuracy']:7.2f} {s['flops']:10,} {s['params']:8,} "
              f"{s['predicted_ms']:8.3f} {s['measured_ms']:8.3f}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"searches": dict(searches), "flops_bound": flops_bound, "latency_bound_ms": lat_bound,
                       "budget": args.budget, "profile": profile.path}, f, indent=2, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
