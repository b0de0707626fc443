"""channels_last against contiguous memory format: the training step a user runs, side by side.

For each network, one supernet is built and its training step (forward, backward, timm's fused
AdamW step) timed alternately in the two formats (the weights converted in place between rounds,
outside the timing; the order swapped every round).  A ratio is the median over rounds of the
per-round ratio channels_last ÷ contiguous, in process CPU time (the less load-sensitive measure
on a shared machine) and wall time.  ``build_supernet`` turns channels_last on by itself for
conv-heavy networks (those whose layers carry maps: NASViT's kinds); the token network is here to
show why it stays off for the others.

Run: ``python bench/bench_channels_last.py [--rounds N] [--threads T]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from timm.optim import create_optimizer_v2

import spacelang as sl
from spacelang.compiler import build_supernet
from spacelang.compiler.allocator import keep_large_allocations
from spacelang.compiler.supernet import conv_heavy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = [  # (space, batch)
    ("examples/digits-hybrid.space", 64),
    ("spaces/nasvit/authors-code.space", 4),
    ("spaces/autoformer-tiny.space", 8),
]


def timed(step) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - w, time.process_time() - c


def compare(path: str, batch: int, rounds: int) -> None:
    space = sl.load(os.path.join(ROOT, path))
    torch.manual_seed(0)
    net = build_supernet(space, channels_last=False)
    opt = create_optimizer_v2(net, "adamw", lr=1e-4, weight_decay=0.05, fused=True)
    for name, arch in (("min", space.min_arch()), ("max", space.max_arch())):
        x = torch.randn(batch, *net.input_shape(arch))

        def step():
            opt.zero_grad(set_to_none=True)
            net(x, arch).sum().backward()
            opt.step()

        ratios_cpu, ratios_wall, base = [], [], []
        for r in range(rounds + 1):  # round 0 warms both formats up
            got = {}
            for on in ((False, True) if r % 2 else (True, False)):
                net.use_channels_last(on)
                got[on] = timed(step)
            if r:
                ratios_wall.append(got[True][0] / got[False][0])
                ratios_cpu.append(got[True][1] / got[False][1])
                base.append(got[False][1])
        print(f"{path:34s} {name:3s} batch {batch:2d} (auto: {'on ' if conv_heavy(net.spec) else 'off'})  "
              f"contiguous {statistics.median(base) * 1e3:7.0f} CPU-ms   channels_last ÷ contiguous: "
              f"CPU {statistics.median(ratios_cpu):.3f}  wall {statistics.median(ratios_wall):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_large_allocations()  # as every spacelang command that runs networks
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds, load {os.getloadavg()[0]:.1f}")
    for path, batch in CASES:
        compare(path, batch, args.rounds)


if __name__ == "__main__":
    main()
