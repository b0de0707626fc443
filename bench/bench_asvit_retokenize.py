"""Progressive re-tokenization (As-ViT §4, Table 6) at digits scale: accuracy, training FLOPs and
time with and without a (stride, dilation) schedule on the stem, the same epochs and recipe.

The network is one fixed topology of ``examples/digits-asvit.space`` (32×32 digits, the 8×8
images upsampled by the data module; stem stride 4 → 8×8 → 4×4 → 2×2 tokens): REINFORCE's
seed-0 topology from docs/asvit.md (K = 6-4-2, S = 2-2-1, E = 6-4-4, 16 final heads).  At 32×32
the paper's 16× phase (stride 16) leaves a 2×2 stem map whose 2×2 re-embedding at stride 2
comes out empty two stages later, so the schedule is the paper's 4× phase then full resolution:
stride 8 with As-ViT's dilation for K1 = 6 (``round((8/4 − 1)·6/5) + 1 = 2``) → stride 4,
dilation 1 — as Table 6's "4× / N/A" epochs.  Each run is ``spacelang train``'s loop
(:func:`spacelang.compiler.train.train`) on the fixed space, digits defaults (batch 32, AdamW
2e-3, cosine, 2-pixel shifts); accuracy on the test split (270 images) after the last epoch.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_asvit_retokenize.py --epochs 20 --seeds 0 1
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SPACE = os.path.join(ROOT, "examples", "digits-asvit.space")
ARCH = {"final_heads": 16, "stem.kernel": 6, "s1.split": 2, "s1.ffn": 6, "s2.downsample.kernel": 4, "s2.split": 2,
        "s2.ffn": 4, "s3.downsample.kernel": 2, "s3.ffn": 4}


def schedules(epochs: int) -> dict[str, str | None]:
    """Baseline, and the 4× phase for 30 % and 50 % of the epochs (Table 6's rows, rescaled)."""
    out: dict[str, str | None] = {"baseline": None}
    for share in (0.3, 0.5):
        k = max(1, round(epochs * share))
        out[f"4x for {k}/{epochs} epochs"] = f"1-{k}:8,2 {k + 1}-:4,1"
    return out


def run(space, schedule: str | None, seed: int, epochs: int, rundir: str) -> dict:
    import csv

    from spacelang.compiler.data import load_data
    from spacelang.compiler.evaluate import evaluate
    from spacelang.compiler.retokenize import summary
    from spacelang.compiler.train import TrainConfig, load_supernet, train
    from spacelang.cost import netspec_cost

    cfg = TrainConfig.for_data("digits", epochs=epochs, seed=seed, retokenize=schedule)
    data = load_data("digits", space.input_shape(space.max_arch()), space.classes)
    t, cpu = time.perf_counter(), time.process_time()
    train(space, cfg, rundir, progress=False, data=data, log=lambda s: None)
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    _, net, _ = load_supernet(rundir)
    acc = evaluate(net, [space.max_arch()], data.eval_loader("test"))[0]
    with open(os.path.join(rundir, "log.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    s = summary(rows)
    full = len(data.train) * epochs * netspec_cost(space.resolve(space.max_arch())).flops
    flops = s["train_flops"] if s else full
    speed: dict[str, list[float]] = {}
    for r in rows:
        speed.setdefault(r.get("phase") or "4,1", []).append(float(r["images_per_s"]))
    return {"schedule": schedule, "seed": seed, "test_acc": acc, "val_acc": float(rows[-1]["acc_largest"]),
            "seconds": seconds, "cpu_seconds": cpu,
            "images_per_s": {k: sorted(v)[len(v) // 2] for k, v in speed.items()},
            "train_flops": flops, "train_flops_full": full, "flops_share": flops / full}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args()
    import spacelang as sl
    from spacelang.search.fixspace import fixed_space
    space = fixed_space(sl.load(SPACE), ARCH, name="digits_asvit_retok")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name, sched in schedules(args.epochs).items():
                r = run(space, sched, seed, args.epochs, os.path.join(tmp, f"{seed}-{len(rows)}"))
                r["name"] = name
                rows.append(r)
                print(f"seed {seed}  {name:<22} test {r['test_acc']:6.2f}%  val {r['val_acc']:6.2f}%  "
                      f"FLOPs {r['flops_share']:6.1%}  {r['seconds']:6.1f} s wall  {r['cpu_seconds']:6.1f} s CPU  "
                      f"median images/s by phase {r['images_per_s']}", flush=True)
    print("\n| schedule | phases | test acc (mean over seeds) | training FLOPs | FLOPs saving | wall | CPU |")
    print("|---|---|---|---|---|---|---|")
    for name in schedules(args.epochs):
        rs = [r for r in rows if r["name"] == name]
        acc = sum(r["test_acc"] for r in rs) / len(rs)
        share = rs[0]["flops_share"]
        secs = sum(r["seconds"] for r in rs) / len(rs)
        cpu = sum(r["cpu_seconds"] for r in rs) / len(rs)
        accs = " / ".join(f"{r['test_acc']:.2f}" for r in rs)
        print(f"| {name} | {rs[0]['schedule'] or '4,1 throughout'} | {acc:.2f} % ({accs}) | "
              f"{share:.1%} | {1 - share:.1%} | {secs:.0f} s | {cpu:.0f} s |")
    if args.out:
        from spacelang.util.atomic import write_json
        write_json(args.out, rows)


if __name__ == "__main__":
    main()
