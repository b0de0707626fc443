"""NASViT supernet overhead at NASViT-A1: ``net(x, arch)`` against ``net.extract(arch)``, side by side.

For NASViT-A1 (``spaces/nasvit/A1.json``, 192×192) at a small batch it prints the time ratio
supernet ÷ extracted subnet of

- the forward pass (inference: eval mode, ``torch.no_grad``),
- forward + backward (training mode),
- forward + backward + an AdamW step (the supernet's optimizer holds every weight; the step
  updates the ones the arch used — the others have no gradient — so it costs about what the
  subnet's does).

The two models run alternately (order swapped every round, after warm-up) and a ratio is the
median over rounds of the per-round ratio, which cancels load drifting between rounds on a shared
machine; wall-clock and process-CPU ratios are both printed.  One torch thread by default.
Targets (wall clock): ≤ 1.10 forward, ≤ 1.15 forward+backward(+step).  The depth-wise kernels of
the supernet are views of the stored weights (centred slices), never copies.

Run: ``python bench/bench_nasvit.py`` (``--help`` for options; ``--device cuda`` on a GPU).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

import spacelang as sl
from spacelang.compiler import build_supernet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = os.path.join(ROOT, "spaces", "nasvit.space")
ARCH = os.path.join(ROOT, "spaces", "nasvit", "A1.json")
TARGETS = {"forward": 1.10, "forward+backward": 1.15, "forward+backward+step": 1.15}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> tuple[float, float]:
    _sync(device)
    w, c = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - w, time.process_time() - c


def runners(net, sub, arch, x, y):
    """``{mode: (supernet step, subnet step)}``: closures that run one step of each mode."""
    loss = torch.nn.CrossEntropyLoss()
    opt_net = torch.optim.AdamW(net.parameters(), lr=1e-4)
    opt_sub = torch.optim.AdamW(sub.parameters(), lr=1e-4)

    def fwd(model, *a):
        def run():
            model.eval()
            with torch.no_grad():
                model(x, *a)
        return run

    def fwd_bwd(model, opt, *a, step=False):
        def run():
            model.train()
            opt.zero_grad(set_to_none=True)
            loss(model(x, *a), y).backward()
            if step:
                opt.step()
        return run

    return {"forward": (fwd(net, arch), fwd(sub)),
            "forward+backward": (fwd_bwd(net, opt_net, arch), fwd_bwd(sub, opt_sub)),
            "forward+backward+step": (fwd_bwd(net, opt_net, arch, step=True), fwd_bwd(sub, opt_sub, step=True))}


def measure(pair, rounds: int, warmup: int, device) -> dict:
    """Median per-round ratios (wall, cpu) of ``pair = (supernet step, subnet step)``."""
    for _ in range(warmup):
        pair[0]()
        pair[1]()
    walls, cpus, t_net, t_sub = [], [], [], []
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        got = {i: _timed(pair[i], device) for i in order}
        walls.append(got[0][0] / got[1][0])
        cpus.append(got[0][1] / max(got[1][1], 1e-9))
        t_net.append(got[0][0])
        t_sub.append(got[1][0])
    return {"wall_ratio": statistics.median(walls), "cpu_ratio": statistics.median(cpus),
            "supernet_ms": 1e3 * statistics.median(t_net), "subnet_ms": 1e3 * statistics.median(t_sub)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    space = sl.load(SPACE)
    with open(ARCH) as fh:
        arch = space.validate(json.load(fh))
    torch.manual_seed(0)
    net = build_supernet(space).to(device)
    sub = net.extract(arch)
    x = torch.randn(args.batch, *space.input_shape(arch), device=device)
    y = torch.randint(0, space.classes, (args.batch,), device=device)
    results = {mode: measure(pair, args.rounds, args.warmup, device)
               for mode, pair in runners(net, sub, arch, x, y).items()}
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"NASViT-A1 ({space.input_shape(arch)[1]}px), batch {args.batch}, {args.threads} thread(s), "
          f"{args.device}: supernet ÷ extracted (median of {args.rounds} rounds)")
    for mode, r in results.items():
        ok = "ok" if r["wall_ratio"] <= TARGETS[mode] else "OVER"
        print(f"  {mode:<22} wall {r['wall_ratio']:.3f}  cpu {r['cpu_ratio']:.3f}  "
              f"({r['supernet_ms']:.1f} ms vs {r['subnet_ms']:.1f} ms; target ≤ {TARGETS[mode]:.2f} {ok})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
