"""Latency prediction speed, µs per arch, next to the exact cost cache's, on a bundled space.

The predictor walks the network and memoises each layer's time on (slot, context, values of
the dimensions it reads), as :class:`CostCache` memoises cost.  Rows: the first pass over N
random archs (memo filling), a second pass over the same archs (memo hits only), N fresh archs
on the warm memo — the samplers' steady state — and the cost cache on the same fresh archs.
Without ``--profile`` a synthetic profile (layer time ∝ FLOPs) stands in: the speed does not
depend on the times.

    .venv/bin/python bench/bench_latency.py [--space spaces/autoformer-tiny.space] [--profile P.json] [--n 2000]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import spacelang as sl  # noqa: E402
from spacelang import kinds as K  # noqa: E402
from spacelang.compiler.identity import space_identity  # noqa: E402
from spacelang.latency import (FORMAT, VERSION, LatencyPredictor, Profile, layer_configs, layer_fields,  # noqa: E402
                               load_profile, machine_fingerprint)
from spacelang.search import CostCache  # noqa: E402


def synthetic(space) -> Profile:
    layers = [{"role": c.role, "kind": c.kind, "fields": layer_fields(c.layer),
               "ms": K.get(c.kind).cost(c.layer, "fvcore")[1] * 1e-6 + 0.01} for c in layer_configs(space).values()]
    return Profile({"format": FORMAT, "version": VERSION, "space": space_identity(space), "source": space.source,
                    "fingerprint": machine_fingerprint(), "layers": layers, "correction": {"a": 1.0, "b_ms": 0.0}},
                   "<synthetic>")


def per_arch_us(fn, archs) -> float:
    """Median over 5 passes of the mean µs per arch of one pass."""
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for a in archs:
            fn(a)
        runs.append((time.perf_counter() - t0) / len(archs) * 1e6)
    return statistics.median(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default=os.path.join(ROOT, "spaces", "autoformer-tiny.space"))
    ap.add_argument("--profile", default=None, help="a profile of the space (default: synthetic)")
    ap.add_argument("--n", type=int, default=2000, help="archs per row (default 2000)")
    args = ap.parse_args()
    space = sl.load(args.space)
    profile = load_profile(args.profile, space) if args.profile else synthetic(space)
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(args.n)]
    fresh = [space.sample(rng) for _ in range(args.n)]
    predictor = LatencyPredictor(space, profile)
    t0 = time.perf_counter()
    for a in archs:
        predictor(a)
    first = (time.perf_counter() - t0) / len(archs) * 1e6
    warm = per_arch_us(predictor, archs)
    steady = per_arch_us(predictor, fresh)
    cache = CostCache(space)
    for a in archs:
        cache(a)
    cost_us = per_arch_us(cache, fresh)
    print(f"{space.name}: {len(space.slots)} layer slots, {len(profile.layers)} layer configurations, "
          f"profile {profile.path}")
    print(f"{'predict, first pass (memo filling)':<42} {first:8.1f} µs/arch")
    print(f"{'predict, same archs again':<42} {warm:8.1f} µs/arch")
    print(f"{'predict, fresh archs (steady state)':<42} {steady:8.1f} µs/arch   (target < 100)")
    print(f"{'exact cost (CostCache), fresh archs':<42} {cost_us:8.1f} µs/arch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
