"""Analytic cost model vs fvcore on the same AutoFormer-T subnets, side by side in one run.

For each subnet: params and FLOPs from ``spacelang.cost`` and from ``sum(numel)`` +
``fvcore.nn.FlopCountAnalysis`` on the compiler's extracted subnet (batch 1), and the time each
takes.  The analytic time is given twice: on the resolved NetSpec alone (``netspec_cost``) and
from the arch (``cost(space, arch)``, which includes ``space.resolve``).  fvcore's time is the
trace and count of an already extracted subnet (the extraction itself is listed apart).

    .venv/bin/python bench/bench_cost.py [--archs 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
import timeit
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import spacelang as sl  # noqa: E402
from spacelang.cost import cost, netspec_cost  # noqa: E402

def autoformer_t_space():
    """AutoFormer-T as released (a fixed space: its MLP ratio 3.0 is outside supernet-tiny)."""
    return sl.load(os.path.join(ROOT, "examples", "autoformer-t-subnet.space"))


def best_per_call(fn, number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def fvcore_count(model, x) -> int:
    from fvcore.nn import FlopCountAnalysis

    from spacelang.compiler.ops.functional import explicit_attention

    fa = FlopCountAnalysis(model, x)
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    with explicit_attention():  # fvcore sees the attention's matmuls, not the fused kernel
        return int(fa.total())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=3, help="random AutoFormer-tiny subnets besides max/min")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for fvcore's trace")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    try:
        from spacelang.compiler import build_supernet
    except ImportError:
        from spacelang.compiler.supernet import build_supernet
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    tiny = sl.load(os.path.join(ROOT, "spaces", "autoformer-tiny.space"))
    ref = autoformer_t_space()
    rng = random.Random(args.seed)
    cases = [("AutoFormer-T (paper)", ref, ref.max_arch()),
             ("supernet-tiny max", tiny, tiny.max_arch()),
             ("supernet-tiny min", tiny, tiny.min_arch())]
    cases += [(f"supernet-tiny random {i}", tiny, tiny.sample(rng)) for i in range(args.archs)]

    nets = {}
    head = (f"{'subnet':<24} {'params':>11} {'FLOPs (ours)':>14} {'FLOPs (fvcore)':>14} {'equal':>5} "
            f"{'ours µs':>8} {'+resolve µs':>11} {'fvcore ms':>9} {'extract ms':>10} {'speed-up':>9} {'incl. resolve':>13}")
    print(head)
    print("-" * len(head))
    ratios, ratios_resolve, all_equal = [], [], True
    for name, space, arch in cases:
        if id(space) not in nets:
            nets[id(space)] = build_supernet(space).eval()
        net = nets[id(space)]
        spec = space.resolve(arch)
        ours = netspec_cost(spec)
        t_ours = best_per_call(lambda: netspec_cost(spec), number=2000, repeat=5)
        t_full = best_per_call(lambda: cost(space, arch), number=200, repeat=5)

        t0 = time.perf_counter()
        sub = net.extract(arch).eval()
        t_extract = time.perf_counter() - t0
        x = torch.zeros(1, *space.input_shape(arch))
        params = sum(p.numel() for p in sub.parameters())
        flops = fvcore_count(sub, x)
        t_fv = best_per_call(lambda: fvcore_count(sub, x), number=1, repeat=3)

        equal = ours.params == params and ours.flops == flops
        all_equal &= equal
        ratios.append(t_fv / t_ours)
        ratios_resolve.append(t_fv / t_full)
        print(f"{name:<24} {params:>11,} {ours.flops:>14,} {flops:>14,} {'yes' if equal else 'NO':>5} "
              f"{t_ours * 1e6:>8.1f} {t_full * 1e6:>11.1f} {t_fv * 1e3:>9.1f} {t_extract * 1e3:>10.1f} "
              f"{t_fv / t_ours:>8.0f}× {t_fv / t_full:>12.0f}×")
    # the headline is what a user calls, sl.cost(space, arch) (validation and resolution included)
    print(f"\nall counts equal: {all_equal}; sl.cost(space, arch) is {min(ratios_resolve):.0f}×–"
          f"{max(ratios_resolve):.0f}× faster than fvcore on the extracted subnet "
          f"(on an already resolved NetSpec alone: {min(ratios):.0f}×–{max(ratios):.0f}×); torch threads {args.threads}")
    return 0 if all_equal else 1


if __name__ == "__main__":
    sys.exit(main())
