"""Fused attention: our supernet against timm's fused ``VisionTransformer``, side by side on this CPU.

For the max and the min AutoFormer-T arch (``spaces/autoformer-tiny.space``; both have one width,
head count and MLP ratio in every block, so a timm ``VisionTransformer`` of the same widths is the
same network) at batch 8, 224×224, one torch thread by default, it times in one process:

- ``net``: the supernet running the arch (fused attention, the default);
- ``sub``: the extracted subnet (fused);
- ``timm``: timm's ``VisionTransformer`` (fused ``scaled_dot_product_attention``) holding the
  subnet's weights (logits checked equal first);
- ``net-explicit``: the supernet inside ``explicit_attention()`` (the counting path), to show the gain;

each for the forward pass (``torch.no_grad``, eval) and the training step a user runs (forward,
backward, AdamW step; train mode).  The training steps all use torch's fused AdamW kernel
(``fused=True``, timm's ``create_optimizer_v2``): ``spacelang train`` takes it where torch has it
for the device, because over the supernet's full tensors at partial widths it removes most of the
per-step optimizer overhead (issue 15 item 5); ``net-foreachadamw`` (timm's default kernel) shows
by how much.  Like ``spacelang``'s commands, the bench pins glibc's mmap threshold
(compiler/allocator.py; ``--glibc-default`` leaves it adaptive, which cost the supernet's forward
pass ~13% here).  The models run in a rotating order every round after warm-up, and a ratio is
the median of per-round ratios (load that drifts between rounds cancels).
Targets: supernet/timm ≤ 1.05 forward and ≤ 1.08 training step; supernet/subnet ≤ 1.10 / ≤ 1.15.

Then the peak memory of one training step (forward, backward, AdamW) at the max arch, supernet
against timm, each in a fresh subprocess (resident-set high-water mark, as bench_supernet.py;
target ≤ 1.10×), and the supernet's training step with ``--amp bf16`` autocast against fp32
(compiler/precision.py).

Run: ``python bench/bench_fused.py`` (``--help`` for options).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

import torch

import spacelang as sl
from spacelang.compiler import build_supernet
from spacelang.compiler.allocator import keep_large_allocations
from spacelang.compiler.ops.functional import explicit_attention
from spacelang.compiler.precision import autocast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_supernet import reset_peak, status_kb, trim  # noqa: E402  (sibling bench script)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = os.path.join(ROOT, "spaces", "autoformer-tiny.space")


def uniform_fields(space, arch) -> dict:
    """The one width, depth, head count, head dim and MLP hidden width of an AutoFormer-T arch."""
    dim, depth = arch["encoder.dim"], arch["encoder.depth"]
    heads = {arch[f"encoder.{i}.heads"] for i in range(depth)}
    ratios = {arch[f"encoder.{i}.mlp_ratio"] for i in range(depth)}
    if len(heads) != 1 or len(ratios) != 1:
        raise SystemExit("the arch varies across blocks; a timm VisionTransformer cannot match it")
    return dict(dim=dim, depth=depth, heads=heads.pop(), mlp_ratio=float(ratios.pop()))


def timm_twin(sub, f: dict):
    """timm's fused ``VisionTransformer`` of the arch's widths (head dim 64), with ``sub``'s weights."""
    from timm.layers import Attention
    from timm.models.vision_transformer import VisionTransformer

    class Attention64(Attention):  # AutoFormer's head dim is 64 at every width (timm's default: dim / heads)
        def __init__(self, dim, **kwargs):
            super().__init__(dim, attn_head_dim=64, **kwargs)

    m = VisionTransformer(img_size=224, patch_size=16, num_classes=1000, embed_dim=f["dim"], depth=f["depth"],
                          num_heads=f["heads"], mlp_ratio=f["mlp_ratio"], qkv_bias=True, attn_layer=Attention64)
    rename = (("stem.proj.", "patch_embed.proj."), ("stem.tokens.", ""), ("stages.0.", "blocks."),
              ("head.norm.", "norm."), ("head.fc.", "head."))
    state = {}
    for name, t in sub.state_dict().items():
        for a, b in rename:
            if name.startswith(a):
                name = b + name[len(a):]
                break
        state[name] = t
    m.load_state_dict(state, strict=True)
    return m


def make_models(label: str, seed: int):
    torch.manual_seed(seed)
    space = sl.load(SPACE)
    arch = space.max_arch() if label == "max" else space.min_arch()
    net = build_supernet(space)
    sub = net.extract(arch)
    return space, arch, net, sub, timm_twin(sub, uniform_fields(space, arch))


def time_group(steps: dict, rounds: int, warmup: int = 2) -> dict:
    """Median wall seconds per step of each entry, rotating the order every round."""
    names = list(steps)
    for _ in range(warmup):
        for n in names:
            steps[n]()
    wall = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            t = time.perf_counter()
            steps[n]()
            wall[n].append(time.perf_counter() - t)
    return wall


def ratio(wall, a, b) -> float:
    return statistics.median(x / y for x, y in zip(wall[a], wall[b]))


def forward_steps(net, sub, tm, arch, x) -> dict:
    def fwd(fn, explicit=False):
        def run():
            with torch.no_grad(), explicit_attention(explicit):
                fn()
        return run
    for m in (net, sub, tm):
        m.eval()
    return {"net": fwd(lambda: net(x, arch)), "sub": fwd(lambda: sub(x)), "timm": fwd(lambda: tm(x)),
            "net-explicit": fwd(lambda: net(x, arch), explicit=True)}


def adamw(model, fused: bool = False):
    """timm's AdamW (``torch.optim.AdamW``, as ``spacelang train`` creates it); ``fused``: the same
    algorithm in torch's fused kernel (one pass over each tensor instead of foreach's several)."""
    from timm.optim import create_optimizer_v2
    return create_optimizer_v2(model, "adamw", lr=1e-4, weight_decay=0.05, **({"fused": True} if fused else {}))


def train_step(model, opt, call, explicit=False, amp="none"):
    def run():
        opt.zero_grad(set_to_none=True)
        with explicit_attention(explicit), autocast("cpu", amp):
            loss = call().float().sum()
        loss.backward()
        opt.step()
    return run


def training_steps(net, sub, tm, arch, x) -> dict:
    """Training steps with torch's fused AdamW for all three models — what ``spacelang train`` runs
    where torch has the kernel, and the fastest a timm script can run — plus the supernet with the
    foreach AdamW (timm's default) to show what the fused kernel saves."""
    for m in (net, sub, tm):
        m.train()
    f_net, f_sub, f_tm = adamw(net, fused=True), adamw(sub, fused=True), adamw(tm, fused=True)
    return {"net": train_step(net, f_net, lambda: net(x, arch)), "sub": train_step(sub, f_sub, lambda: sub(x)),
            "timm": train_step(tm, f_tm, lambda: tm(x)),
            "net-explicit": train_step(net, f_net, lambda: net(x, arch), explicit=True),
            "net-foreachadamw": train_step(net, adamw(net), lambda: net(x, arch))}


def bf16_vs_fp32(net, arch, x, rounds: int) -> None:
    """The supernet's training step under ``--amp bf16`` autocast against fp32, side by side."""
    net.train()
    opt = adamw(net)
    wall = time_group({"fp32": train_step(net, opt, lambda: net(x, arch)),
                       "bf16": train_step(net, opt, lambda: net(x, arch), amp="bf16")}, rounds)
    print(f"  bf16 autocast train step {statistics.median(wall['bf16']):.3f}s vs fp32 "
          f"{statistics.median(wall['fp32']):.3f}s: bf16/fp32 {ratio(wall, 'bf16', 'fp32'):.3f}")


# ---------------------------------------------------------------- memory (child processes)
def memory_child(which: str, batch: int, seed: int) -> dict:
    _, arch, net, sub, tm = make_models("max", seed)
    if which == "timm":
        del net, sub
        model, call = tm, (lambda: tm(x))
    else:
        del sub, tm
        model, call = net, (lambda: net(x, arch))
    gc.collect()
    model.train()
    x = torch.randn(batch, 3, 224, 224)
    step = train_step(model, adamw(model), call)
    step()  # warm-up: optimizer state, allocator and lazy initialisation settle
    gc.collect()
    trim()
    before = status_kb("VmRSS")
    exact = reset_peak()
    step()
    peak = (status_kb("VmHWM") if exact else status_kb("VmRSS")) - before
    return dict(peak_rss=peak * 1024, exact_peak=exact)


def run_memory(batch: int, seed: int, threads: int) -> dict:
    out = {}
    for which in ("supernet", "timm"):
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", which,
               "--batch", str(batch), "--seed", str(seed), "--threads", str(threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[which] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per arch and mode (default 5)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    ap.add_argument("--glibc-default", action="store_true",
                    help="leave glibc's adaptive mmap threshold alone (spacelang's commands pin it: "
                         "compiler/allocator.py) to see what it costs")
    ap.add_argument("--memory-child", metavar="WHICH", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.glibc_default:  # as every spacelang command that runs networks
        keep_large_allocations()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.batch, args.seed)))
        return 0

    load = os.getloadavg()
    print(f"AutoFormer-T, batch {args.batch}, 224x224, torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.rounds} rounds, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print("seconds = median per step; ratios = median of per-round ratios")
    ok = True
    for label in ("max", "min"):
        space, arch, net, sub, tm = make_models(label, args.seed)
        x = torch.randn(args.batch, 3, 224, 224)
        with torch.no_grad():
            diff = (net.eval()(x[:2], arch) - tm.eval()(x[:2])).abs().max().item()
        print(f"\n{label} arch {uniform_fields(space, arch)}: supernet vs timm logits max |diff| {diff:.2e}")
        for mode, make, t_timm, t_sub in (("forward", forward_steps, 1.05, 1.10),
                                          ("train step", training_steps, 1.08, 1.15)):
            wall = time_group(make(net, sub, tm, arch, x), args.rounds)
            secs = "  ".join(f"{n} {statistics.median(w):.3f}s" for n, w in wall.items())
            r_timm, r_sub, r_fused = ratio(wall, "net", "timm"), ratio(wall, "net", "sub"), \
                ratio(wall, "net-explicit", "net")
            ok &= r_timm <= t_timm and r_sub <= t_sub
            print(f"  {mode:<10} {secs}")
            print(f"  {'':<10} net/timm {r_timm:.3f} (target <= {t_timm})  net/sub {r_sub:.3f} "
                  f"(target <= {t_sub})  sub/timm {ratio(wall, 'sub', 'timm'):.3f}  explicit/fused {r_fused:.3f}")
            if "net-foreachadamw" in wall:
                print(f"  {'':<10} (all with fused AdamW)  net with foreach/fused AdamW "
                      f"{ratio(wall, 'net-foreachadamw', 'net'):.3f}")
        if label == "max":
            bf16_vs_fp32(net, arch, x, args.rounds)
        del net, sub, tm
        gc.collect()
    if not args.no_memory:
        mem = run_memory(args.batch, args.seed, args.threads)
        s, t = mem["supernet"]["peak_rss"], mem["timm"]["peak_rss"]
        ok &= s / t <= 1.10
        print(f"\npeak rss of one training step (AdamW) at the max arch, batch {args.batch}, fresh processes: "
              f"supernet {s / 2**20:.1f} MiB, timm {t / 2**20:.1f} MiB, ratio {s / t:.3f} (target <= 1.10)"
              + ("" if mem["supernet"]["exact_peak"] else "  (VmHWM reset unavailable: RSS after the step)"))
    print(f"\ntargets: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
