"""Gradient reduction under torchrun: ours against ``DistributedDataParallel(find_unused_parameters=True)``.

Weight entanglement leaves parameters unused at every step.  spacelang reduces the gradients that
exist in one flat all-reduce after the backward pass (``compiler/distributed.py``); the stock
alternative wraps the supernet in DDP with ``find_unused_parameters=True``, which walks the
autograd graph each step to mark the unused ones and overlaps bucketed all-reduces with the
backward pass.  Both run here on the same supernet and the same per-step archs (uniform sampling
from the seed), ours first; rank 0 prints each one's median step time (forward, backward,
reduction, AdamW step), or the error DDP stops with.

Run (2 Gloo processes on this CPU):
``OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 bench/bench_ddp_reduce.py [--space F --batch B]``
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import torch
import torch.distributed as torch_dist
from timm.optim import create_optimizer_v2

import spacelang as sl
from spacelang.compiler import build_supernet
from spacelang.compiler import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default="examples/digits.space")
    ap.add_argument("--batch", type=int, default=32, help="per process")
    ap.add_argument("--steps", type=int, default=10, help="steps per block")
    ap.add_argument("--blocks", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    dist = distributed.setup("cpu")
    space = sl.load(os.path.join(ROOT, args.space))
    torch.manual_seed(0)
    net = build_supernet(space)
    ddp = torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=True) if dist.active else net
    params = list(net.parameters())
    opt = create_optimizer_v2(net, "adamw", lr=1e-4, weight_decay=0.05, fused=True)
    x = torch.randn(args.batch, *net.input_shape(space.max_arch()))
    y = torch.randint(0, space.classes, (args.batch,))

    def step(model, arch, ours: bool) -> float:
        t = time.perf_counter()
        # DDP needs defined gradients: with None ones it stops with "Encountered gradient which is
        # undefined, but still allreduced by DDP reducer" on the first arch that leaves a weight unused
        opt.zero_grad(set_to_none=ours)
        torch.nn.functional.cross_entropy(model(x, arch), y).backward()
        if ours:
            dist.reduce_gradients(params)
        opt.step()
        return time.perf_counter() - t

    rng = random.Random(0)  # the same archs on every rank
    archs = [space.sample(rng) for _ in range(args.steps * (args.blocks + 1))]
    ours = [step(net, a, True) for a in archs][args.steps:]  # the first block warms up
    failure, theirs = None, []
    try:
        theirs = [step(ddp, a, False) for a in archs][args.steps:]
    except RuntimeError as e:  # reported, not hidden: it is the finding
        failure = str(e).splitlines()[0]
    if dist.main:
        print(f"{args.space}, batch {args.batch} per process, {dist.world} processes, "
              f"{len(ours)} timed steps, load {os.getloadavg()[0]:.1f}")
        base = statistics.median(ours)
        print(f"  ours (flat all-reduce)       median step {base * 1e3:7.1f} ms")
        if failure:
            print(f"  DDP find_unused_parameters   FAILED: {failure}")
        else:
            t = statistics.median(theirs)
            print(f"  DDP find_unused_parameters   median step {t * 1e3:7.1f} ms  ({t / base:.3f}×)")
    if dist.active:
        torch_dist.destroy_process_group()


if __name__ == "__main__":
    main()
