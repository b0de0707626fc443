"""Training-rule step cost and predictor-evolution speed, side by side.

1. One optimizer step (zero_grad, the rule's forward/backward passes, AdamW step) of the
   ``nasvit`` rule with gradient projection (``--prioritize sub``, global and per tensor) against
   the same step without it (``--prioritize none``: the two gradient groups are still kept apart
   and the conflict ratio measured), and the ``sandwich`` rule for reference — on the digits hybrid
   space's supernet (or ``--space``), the same four archs (largest, smallest, 2 random), batch 32.
   Variants run alternately, order rotated every round; a ratio is the median of per-round
   ratios (cancels load drifting on a shared machine).  Target: projection ≤ 1.15× none.
2. Evolution on predicted accuracy (Algorithm 2, step 4) over NASViT's ImageNet space
   (``spaces/nasvit.space``): a random forest fitted on 1,024 archs, then 1,024 + 40 × 256
   candidates.  Target: under 10 s for 10,000 candidates.

Run: ``OMP_NUM_THREADS=1 python bench/bench_rules.py`` (``--rounds``, ``--batch``, ``--device``).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import torch

import spacelang as sl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {"nasvit none": {"rule": "nasvit", "prioritize": "none"},
            "nasvit sub/global": {"rule": "nasvit", "prioritize": "sub", "projection": "global"},
            "nasvit sub/tensor": {"rule": "nasvit", "prioritize": "sub", "projection": "tensor"},
            "sandwich": {"rule": "sandwich"}}
BASE = "nasvit none"


def step_runners(space, batch: int, device: str) -> dict:
    from spacelang.compiler import build_supernet
    from spacelang.compiler.distributed import SINGLE
    from spacelang.compiler.precision import grad_scaler
    from spacelang.compiler.rules import StepContext, create_rule
    from spacelang.compiler.train import TrainConfig
    torch.manual_seed(0)
    net = build_supernet(space, drop_path=0.0).to(device).train()
    params = list(net.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    c, r, _ = space.input_shape(space.max_arch())
    x = torch.randn(batch, c, r, r, device=device)
    y = torch.randint(0, space.classes, (batch,), device=device)
    crit = torch.nn.CrossEntropyLoss()
    scaler = grad_scaler(device, "none")
    out = {}
    for name, kw in VARIANTS.items():
        rule = create_rule(TrainConfig(sandwich_k=2, **kw))
        archs = rule.archs(space, 0, 0, space.sample)

        def run(rule=rule, archs=archs):
            opt.zero_grad(set_to_none=True)
            rule.step(StepContext(net, x, y, crit, 1.0, device, "none", scaler, SINGLE, params), archs)
            opt.step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        out[name] = run
    return out


def bench_steps(space, rounds: int, batch: int, device: str) -> None:
    runs = step_runners(space, batch, device)
    names = list(runs)
    for fn in runs.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(rounds):
        order = names[i % len(names):] + names[:i % len(names)]
        for n in order:
            t = time.perf_counter()
            runs[n]()
            times[n].append(time.perf_counter() - t)
    print(f"one training step on {space.name}, batch {batch}, 4 archs, {device}, {rounds} rounds "
          f"(median ms; ratio: median of per-round ratios to '{BASE}')")
    for n in names:
        ratio = statistics.median(a / b for a, b in zip(times[n], times[BASE]))
        flag = ""
        if n.startswith("nasvit sub"):
            flag = "  (target ≤ 1.15: " + ("met" if ratio <= 1.15 else "MISSED") + ")"
        print(f"  {n:18s} {1e3 * statistics.median(times[n]):8.1f} ms   × {ratio:.3f}{flag}")


def bench_predictor_evolution() -> None:
    from spacelang.search.costcache import CostCache
    from spacelang.search.predictor import PredictorConfig, fit_predictor, predicted_evolution
    space = sl.load(os.path.join(ROOT, "spaces", "nasvit.space"))
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(1024)]
    cost = CostCache(space)
    # a stand-in accuracy: log-FLOPs plus noise (the timing does not depend on the targets)
    accs = [60 + 3 * float(torch.tensor(cost(a).flops).log()) + rng.gauss(0, 1) for a in archs]
    t = time.perf_counter()
    pred, fit = fit_predictor(space, archs, accs, seed=0)
    t_fit = time.perf_counter() - t
    t = time.perf_counter()
    cands = predicted_evolution(space, pred.predict, PredictorConfig(), seed=0, exclude=archs, cost=cost)
    t_evo = time.perf_counter() - t
    per10k = t_evo * 10_000 / max(len(cands), 1)
    print(f"\npredictor on {space.name}: fit on 512 of 1,024 archs {t_fit:.2f} s (held-out tau {fit['tau']:.2f}); "
          f"evolution on predicted accuracy: {len(cands)} candidates in {t_evo:.2f} s = {per10k:.2f} s per 10,000 "
          f"(target < 10 s: {'met' if per10k < 10 else 'MISSED'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default=os.path.join(ROOT, "examples", "digits-hybrid.space"))
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bench_steps(sl.load(args.space), args.rounds, args.batch, args.device)
    bench_predictor_evolution()


if __name__ == "__main__":
    main()
