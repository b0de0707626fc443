"""Proxy speed at full scale: L_E + κ_Θ of one As-ViT topology at 224×224 on CPU threads.

Scores As-ViT's searched seed topology (Table 4: K 8-4-4-4, S 2-1-1-1, E 3-2-4-6, 32 final heads;
C = 32, one block per stage) of spaces/asvit-topology.space with both proxies, ``--inits``
random networks, and reports wall and CPU time (process time of all threads) per init and in
all, the 1-minute load average beside them (on a shared machine wall time includes waiting for
cores; CPU time / threads estimates the wall time of an idle machine), and the coefficient of
variation of each proxy across the inits (its noise).  The issue's target: L_E + κ under 5 s on
2 CPU cores (As-ViT reports 12.8 s for L_E alone on a V100).

    .venv/bin/python bench/bench_asvit_speed.py [--threads 2] [--inits 5] [--space FILE --arch A.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SEED = {"stem.kernel": 8, "s2.downsample.kernel": 4, "s3.downsample.kernel": 4, "s4.downsample.kernel": 4,
        "s1.split": 2, "s2.split": 1, "s3.split": 1, "s1.ffn": 3, "s2.ffn": 2, "s3.ffn": 4, "s4.ffn": 6,
        "final_heads": 32}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--inits", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--space", default=os.path.join(ROOT, "spaces", "asvit-topology.space"))
    ap.add_argument("--arch", default=None, help="arch JSON (default: As-ViT's Table 4 seed topology)")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    import spacelang as sl
    from spacelang.compiler import proxies as P

    space = sl.load(args.space)
    arch = json.load(open(args.arch)) if args.arch else SEED
    c = sl.cost(space, arch)
    print(f"{space.name}: {c.params / 1e6:.2f}M params, {c.flops / 1e9:.3f}G MACs at {space.input_shape(arch)}; "
          f"{args.threads} threads")
    P.score_arch(space, arch, P.parse_list("le,ntk"), seed=args.seed + 99, inits=1)  # warm-up (allocator, caches)
    per, cpu_per = {}, {}
    for name in ("le", "ntk"):
        t, c = time.perf_counter(), time.process_time()
        r = P.score_arch(space, arch, P.parse_list(name), seed=args.seed, inits=args.inits)
        per[name] = (time.perf_counter() - t) / args.inits
        cpu_per[name] = (time.process_time() - c) / args.inits
        cv = r["cv"][P.get(name).name]
        noise = f"cv {cv:.3f} over {args.inits} inits" if cv is not None else "1 init"
        print(f"  {name:>3}: {r[P.get(name).name]:.5g} ({noise}), {per[name]:.2f} s wall, "
              f"{cpu_per[name]:.2f} CPU-s per init (load {os.getloadavg()[0]:.1f})")
    load_before = os.getloadavg()[0]
    t, cpu = time.perf_counter(), time.process_time()
    r = P.score_arch(space, arch, P.parse_list("le,ntk"), seed=args.seed, inits=args.inits)
    total, cpu = time.perf_counter() - t, time.process_time() - cpu
    out = {"threads": args.threads, "inits": args.inits, "seconds_total": total, "cpu_seconds_total": cpu,
           "idle_estimate_seconds_per_init": cpu / args.threads / args.inits,
           "load_average_1min": [load_before, os.getloadavg()[0]],
           "seconds_per_init": total / args.inits, "cpu_seconds_per_init": cpu / args.inits,
           "le_seconds_per_init": per["le"], "ntk_seconds_per_init": per["ntk"],
           "le_cpu_seconds_per_init": cpu_per["le"], "ntk_cpu_seconds_per_init": cpu_per["ntk"],
           "length_distortion": r["length_distortion"], "ntk_condition": r["ntk_condition"],
           "cv": r["cv"], "values": r["values"]}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
