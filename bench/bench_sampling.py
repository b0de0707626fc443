"""Sampler throughput on AutoFormer-S (``spaces/autoformer-small.space``), archs per second.

Rows: uniform sampling (``space.sample``); the exact cost of an arch through
``spacelang.cost.cost`` and through the search's memoised :class:`CostCache`; constrained
sampling in a wide band (rejection), in a narrow middle band and in bands at either end of the
range (trunk mode); the CLI's whole process for ``-n 2000 --where "18M<=params<=23M"``.
Each constrained row builds a fresh sampler, so the one-off setup (cost range, trunk model) is
included.

    .venv/bin/python bench/bench_sampling.py [--n 2000]
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import spacelang as sl  # noqa: E402
from spacelang.cost import cost  # noqa: E402
from spacelang.search import Bounds, ConstrainedSampler, CostCache  # noqa: E402


def rate(n: int, fn) -> tuple[float, float]:
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    return n / dt, dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="archs per row (default 2000)")
    args = ap.parse_args()
    n = args.n
    path = os.path.join(ROOT, "spaces", "autoformer-small.space")
    space = sl.load(path)
    lo, hi = space.cost_range()
    print(f"space {space.name}: {space.size():.3e} subnets, params {lo.params / 1e6:.2f}M – {hi.params / 1e6:.2f}M")
    print(f"{'row':<44} {'archs/s':>10} {'seconds':>8}  notes")

    rng = random.Random(0)
    archs = []
    r, dt = rate(n, lambda: archs.extend(space.sample(rng) for _ in range(n)))
    print(f"{'uniform  space.sample':<44} {r:>10,.0f} {dt:>8.2f}")
    m = min(n, 500)
    r, dt = rate(m, lambda: [cost(space, a) for a in archs[:m]])
    print(f"{'cost     spacelang.cost.cost':<44} {r:>10,.0f} {dt:>8.2f}  validate + resolve + sum")
    cache = CostCache(space)
    r, dt = rate(n, lambda: [cache(a) for a in archs])
    print(f"{'cost     CostCache (cold, then warm)':<44} {r:>10,.0f} {dt:>8.2f}")
    r, dt = rate(n, lambda: [cache(a) for a in archs])
    print(f"{'cost     CostCache (warm)':<44} {r:>10,.0f} {dt:>8.2f}")

    for band in ("18M<=params<=23M", "20M<=params<=20.2M", "33.5M<=params", "params<=13.5M",
                 "4G<=flops<=4.1G, params<=23M"):
        s = ConstrainedSampler(space, random.Random(0), Bounds.parse(band))
        r, dt = rate(n, lambda: [s.sample() for _ in range(n)])
        st = s.stats
        print(f"{'band     ' + band:<44} {r:>10,.0f} {dt:>8.2f}  mode {st['mode']}, "
              f"{st['draws']:,} draws, acceptance {st['acceptance']:.3f}")
    s = ConstrainedSampler(space, random.Random(0), Bounds.parse("20M<=params<=20.2M"), mode="rejection")
    m = min(n, 500)
    r, dt = rate(m, lambda: [s.sample() for _ in range(m)])
    print(f"{'rejection only  20M<=params<=20.2M':<44} {r:>10,.0f} {dt:>8.2f}  "
          f"acceptance {s.stats['acceptance']:.3f} (for comparison)")

    cmd = [sys.executable, "-m", "spacelang", "sample", path, "-n", str(n), "--where", "18M<=params<=23M",
           "--seed", "0"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    print(f"{'CLI      sample -n %d --where 18M<=params<=23M' % n:<44} {n / dt:>10,.0f} {dt:>8.2f}  "
          f"whole process, {len(out.stdout.splitlines())} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
