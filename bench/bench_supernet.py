"""Supernet overhead: ``net(x, arch)`` against ``net.extract(arch)``, side by side on this CPU.

For the max, a middle and the min AutoFormer-T subnet (``spaces/autoformer-tiny.space``) at
batch 8, 224×224, it prints the time ratio supernet ÷ extracted subnet of the forward pass
(inference, ``torch.no_grad``), of forward+backward, and of the whole training step a user runs
(forward, backward and timm's AdamW step: the optimizer updates the supernet's full tensors).
The two models run alternately in one process (order swapped every round, after warm-up); a
ratio is the median over rounds of the per-round ratio, which cancels load that drifts between
rounds on a shared machine.  Both wall-clock and process-CPU-time ratios are printed (CPU time is
the less load-sensitive of the two); one torch thread by default, for the same reason.
Targets (on the wall-clock ratio): ≤ 1.10 forward, ≤ 1.15 forward+backward and training step.

Memory (one forward+backward step, batch 8), for the supernet running the arch and the extracted
subnet, each measured in a fresh subprocess:

- ``params``/``grads``: bytes of the parameters and of the gradients the step leaves
  (the supernet's gradients are full-size: every weight is one shared tensor);
- ``saved``: bytes of the activations autograd saves for backward (``saved_tensors_hooks``,
  storages counted once, parameter storages excluded) — what grows with the batch;
- ``peak rss``: the kernel's resident-set high-water mark (``VmHWM``, reset through
  ``/proc/self/clear_refs`` just before the step) minus the resident set before the step — the
  real extra memory the step took, allocator slack included (params are already resident).

Run: ``python bench/bench_supernet.py`` (``--help`` for options).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time

import torch

import spacelang as sl
from spacelang.compiler import build_supernet
from spacelang.compiler.allocator import keep_large_allocations

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = os.path.join(ROOT, "spaces", "autoformer-tiny.space")


def middle_arch(space) -> dict:
    """Every dimension at its middle choice (the lower middle for an even number of choices)."""
    arch = {d.path: d.choices[(len(d.choices) - 1) // 2] for d in space.dims}
    active = set(space.active_paths(arch))
    return space.validate({p: v for p, v in arch.items() if p in active})


def archs(space) -> list[tuple[str, dict]]:
    return [("max", space.max_arch()), ("middle", middle_arch(space)), ("min", space.min_arch())]


def _forward(model, x, *arch):
    with torch.no_grad():
        model(x, *arch)


def _train_step(model, x, *arch):
    model.zero_grad(set_to_none=True)
    model(x, *arch).sum().backward()


def _optimizer_step(opts):
    """A training step with the model's own AdamW (timm's, as ``spacelang train`` uses)."""
    def step(model, x, *arch):
        opt = opts[id(model)]
        opt.zero_grad(set_to_none=True)
        model(x, *arch).sum().backward()
        opt.step()
    return step


def time_pair(net, sub, arch, x, step, rounds: int, warmup: int = 2) -> dict:
    """Median wall and CPU seconds of each model, and median per-round ratios supernet / subnet."""
    for _ in range(warmup):
        step(net, x, arch)
        step(sub, x)
    wall = {0: [], 1: []}
    cpu = {0: [], 1: []}
    for r in range(rounds):
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):
            w, c = time.perf_counter(), time.process_time()
            step(net, x, arch) if which == 0 else step(sub, x)
            cpu[which].append(time.process_time() - c)
            wall[which].append(time.perf_counter() - w)
    med = statistics.median
    return dict(wall_net=med(wall[0]), wall_sub=med(wall[1]), wall_ratio=med(a / b for a, b in zip(wall[0], wall[1])),
                cpu_net=med(cpu[0]), cpu_sub=med(cpu[1]), cpu_ratio=med(a / b for a, b in zip(cpu[0], cpu[1])))


# ---------------------------------------------------------------- memory (child processes)
def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


def trim() -> None:
    """Give freed heap memory back to the OS, so the step's allocations show up as new resident pages."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def saved_activation_bytes(model, x, *arch) -> int:
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[st.data_ptr()] = st.nbytes()
        return t

    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = model(x, *arch)
    y.sum().backward()
    return sum(seen.values())


def memory_child(which: str, label: str, batch: int, seed: int) -> dict:
    torch.manual_seed(seed)
    space = sl.load(SPACE)
    arch = dict(archs(space))[label]
    net = build_supernet(space)
    if which == "subnet":
        model, args = net.extract(arch), ()
        del net
    else:
        model, args = net, (arch,)
    gc.collect()
    x = torch.randn(batch, 3, 224, 224)
    _train_step(model, x, *args)  # warm-up: allocator and lazy initialisation settle
    saved = saved_activation_bytes(model, x, *args)
    model.zero_grad(set_to_none=True)
    gc.collect()
    trim()
    before = status_kb("VmRSS")
    exact = reset_peak()
    _train_step(model, x, *args)
    peak = (status_kb("VmHWM") if exact else status_kb("VmRSS")) - before
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    return dict(params=params, grads=grads, saved=saved, peak_rss=peak * 1024, exact_peak=exact)


def run_memory(labels, batch: int, seed: int) -> dict:
    out = {}
    for label in labels:
        for which in ("supernet", "subnet"):
            cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", which, label,
                   "--batch", str(batch), "--seed", str(seed), "--threads", str(torch.get_num_threads())]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            out[(label, which)] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds per arch and mode (default 7)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared machine one thread gives stable ratios)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    ap.add_argument("--memory-child", nargs=2, metavar=("WHICH", "ARCH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_large_allocations()  # as every spacelang command that runs networks
    if args.memory_child:
        print(json.dumps(memory_child(*args.memory_child, args.batch, args.seed)))
        return 0

    torch.manual_seed(args.seed)
    space = sl.load(SPACE)
    net = build_supernet(space)
    x = torch.randn(args.batch, 3, 224, 224)
    print(f"AutoFormer-T supernet ({sum(p.numel() for p in net.parameters()) / 1e6:.2f}M params), batch {args.batch}, "
          f"224x224, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds")
    print("ratio = supernet / extracted subnet (median of per-round ratios); wall = elapsed, cpu = process CPU time")
    print(f"{'arch':<8}{'params':>8} | {'fwd net':>8}{'fwd sub':>8}{'wall':>7}{'cpu':>7} | "
          f"{'f+b net':>8}{'f+b sub':>8}{'wall':>7}{'cpu':>7} | {'step net':>8}{'step sub':>8}{'wall':>7}{'cpu':>7}")
    from timm.optim import create_optimizer_v2
    ok = True
    for label, arch in archs(space):
        sub = net.extract(arch)
        n = sum(p.numel() for p in sub.parameters()) / 1e6
        f = time_pair(net.eval(), sub.eval(), arch, x, _forward, args.rounds)
        b = time_pair(net.train(), sub.train(), arch, x, _train_step, args.rounds)
        opts = {id(m): create_optimizer_v2(m, "adamw", lr=1e-4, weight_decay=0.05) for m in (net, sub)}
        o = time_pair(net, sub, arch, x, _optimizer_step(opts), args.rounds)
        ok &= f["wall_ratio"] <= 1.10 and b["wall_ratio"] <= 1.15 and o["wall_ratio"] <= 1.15
        cols = " | ".join(f"{t['wall_net']:>7.3f}s{t['wall_sub']:>7.3f}s{t['wall_ratio']:>7.3f}{t['cpu_ratio']:>7.3f}"
                          for t in (f, b, o))
        print(f"{label:<8}{n:>7.2f}M | {cols}")
        del sub
    print(f"targets (fwd <= 1.10, fwd+bwd and training step <= 1.15): {'met' if ok else 'NOT met'}")
    if not args.no_memory:
        mem = run_memory(["max", "min"], args.batch, args.seed)
        def mb(b):
            return f"{b / 2**20:8.1f}"
        print(f"\nmemory of one forward+backward step, batch {args.batch} (MiB; each in a fresh process)")
        print(f"{'arch':<8}{'model':<10}{'params':>9}{'grads':>9}{'saved':>9}{'peak rss':>10}")
        for (label, which), m in mem.items():
            print(f"{label:<8}{which:<10}{mb(m['params'])}{mb(m['grads'])}{mb(m['saved'])}{mb(m['peak_rss']):>10}"
                  + ("" if m["exact_peak"] else "  (VmHWM reset unavailable: RSS after the step)"))
        for label in ("max", "min"):
            s, e = mem[(label, "supernet")], mem[(label, "subnet")]
            print(f"{label}: supernet/subnet  saved activations {s['saved'] / e['saved']:.3f}, "
                  f"peak rss of the step {s['peak_rss'] / e['peak_rss']:.3f}, "
                  f"params+grads {(s['params'] + s['grads']) / (e['params'] + e['grads']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
