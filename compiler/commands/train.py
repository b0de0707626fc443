"""``spacelang train FILE --data digits|synthetic|PATH -o RUNDIR``: train a space's supernet.

Checkpoints go to ``RUNDIR/checkpoint`` after every epoch and the per-epoch log to
``RUNDIR/log.csv``.  ``--resume`` continues from the checkpoint with the settings stored in it
(flags that would change the trained weights are ignored with a warning, except ``--epochs``,
which extends or shortens the run and so changes its cosine schedule).
"""
from __future__ import annotations

import sys

HELP = "train the weight-entangled supernet of a space (rules: uniform, sandwich, nasvit, multiarch)"

# flags whose value is stored in the checkpoint's config (argparse default None = "not given")
_CONFIG_FLAGS = ("data", "epochs", "batch_size", "rule", "sandwich_k", "kd", "prioritize", "projection", "recipe",
                 "na", "warmup_sampling", "token_label",
                 "lr", "min_lr", "warmup_epochs",
                 "weight_decay", "label_smoothing", "drop_path", "mixup", "cutmix", "shift", "clip_grad", "seed",
                 "workers", "amp", "retokenize")


def add_arguments(p) -> None:
    from spacelang.commands.options import (add_threads, count, nonnegative, positive, positive_int, seed,
                                            unit_interval)

    from ..devices import device
    p.add_argument("file", metavar="FILE", help="the .space file whose supernet is trained")
    p.add_argument("--data", default=None, metavar="digits|synthetic|PATH",
                   help="dataset: scikit-learn digits, synthetic, or an ImageFolder with train/ and val/ "
                        "(default digits)")
    p.add_argument("-o", "--output", required=True, metavar="RUNDIR", help="run directory (checkpoint, log.csv)")
    # defaults depend on the dataset (TrainConfig.for_data); the help says what each dataset gets
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="total epochs (default: 100; 300 for an ImageFolder)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="batch size per process; under torchrun the effective batch is processes × batch "
                        "(default: 32 for digits, 64 for synthetic, 128 for an ImageFolder)")
    p.add_argument("--rule", default=None, metavar="RULE",
                   help="training rule (compiler/rules/): uniform — one subnet per step (AutoFormer); "
                        "sandwich — max, min and k random (S3); nasvit — max with labels, min and k random "
                        "with in-place KD, gradient projection (NASViT); multiarch — N_a subnets on N_a "
                        "sub-batches in one masked forward/backward pass (ViT-ResNAS) (default uniform)")
    p.add_argument("--sampler", choices=("uniform", "sandwich"), default=None,
                   help="the old name of --rule (uniform or sandwich)")
    p.add_argument("--sandwich-k", type=count, default=None, metavar="K",
                   help="random subnets per sandwich or nasvit step (default 2)")
    p.add_argument("--kd", choices=("kl", "alpha"), default=None,
                   help="nasvit: in-place distillation by KL or AlphaNet's alpha-divergence (default kl)")
    p.add_argument("--prioritize", choices=("sub", "sup", "none"), default=None,
                   help="nasvit: gradient projection (NASViT Eq. 1) prioritising the subnets (sub), the "
                        "largest (sup), or none (default sub)")
    p.add_argument("--projection", choices=("global", "tensor"), default=None,
                   help="nasvit: project the whole gradient vector or each parameter tensor (default global; "
                        "docs/nasvit-training.md)")
    p.add_argument("--na", type=positive_int, default=None, metavar="N",
                   help="multiarch: subnets sampled a step, each trained on 1/N of the batch (ViT-ResNAS N_a; "
                        "default 16)")
    p.add_argument("--warmup-sampling", type=nonnegative, default=None, metavar="E",
                   help="multiarch: sample only the largest subnet at first and widen every width and depth "
                        "range linearly over E epochs (ViT-ResNAS App. C uses a quarter of the epochs; "
                        "default 0, off)")
    p.add_argument("--token-label", action="store_true", default=None,
                   help="multiarch: token labelling with patch-wise CutMix/Mixup switching (ViT-ResNAS §2.4; "
                        "--mixup/--cutmix give the alphas); the head needs `token_label true`")
    p.add_argument("--recipe", choices=("deit", "nasvit"), default=None,
                   help="regularisation/augmentation preset: deit (AutoFormer/DeiT) or nasvit (NASViT Table 5: "
                        "RandAugment n=1 m=1 on image folders, 1-px shifts on digits, no weight decay, no drop "
                        "path, no mixup); the flags below still win (default deit)")
    p.add_argument("--lr", type=positive, default=None,
                   help="peak learning rate (default: 2e-3 for digits, 1e-3 otherwise)")
    p.add_argument("--min-lr", type=nonnegative, default=None,
                   help="final learning rate of the cosine (default 1e-5)")
    p.add_argument("--warmup-epochs", type=nonnegative, default=None,
                   help="linear warm-up epochs (default: 5 of 100 epochs, 20 of 300 for an ImageFolder; "
                        "with --epochs, scaled to keep that share of the run)")
    p.add_argument("--weight-decay", type=nonnegative, default=None, help="AdamW weight decay (default 0.05)")
    p.add_argument("--label-smoothing", type=unit_interval, default=None,
                   help="label smoothing of the cross-entropy, in [0, 1) (default 0.1)")
    p.add_argument("--drop-path", type=unit_interval, default=None,
                   help="stochastic depth of the last block, in [0, 1) (default 0.1)")
    p.add_argument("--mixup", type=nonnegative, default=None,
                   help="mixup alpha (default: 0.8 for an ImageFolder, 0 otherwise)")
    p.add_argument("--cutmix", type=nonnegative, default=None,
                   help="cutmix alpha (default: 1.0 for an ImageFolder, 0 otherwise)")
    p.add_argument("--shift", type=count, default=None,
                   help="random translation in pixels (default: 2 for digits, 0 otherwise)")
    p.add_argument("--clip-grad", type=positive, default=None, help="clip the gradient norm (default off)")
    p.add_argument("--seed", type=seed, default=None,
                   help="seed of initialisation, data order and sampling (default 0)")
    p.add_argument("--workers", type=count, default=None,
                   help="data-loading processes for image folders (default 0)")
    p.add_argument("--retokenize", default=None, metavar="SCHEDULE",
                   help="progressive re-tokenization (As-ViT §4): the stem's stride,dilation by epoch, e.g. "
                        "\"1-40:16,5 41-70:8,2 71-:4,1\" (1-based, inclusive; an optional third number sets the "
                        "padding); the same weights, fewer tokens early; docs/asvit.md (default off)")
    p.add_argument("--resume", action="store_true", help="continue from RUNDIR/checkpoint")
    p.add_argument("--force", action="store_true", help="start afresh even if RUNDIR holds a trained checkpoint")
    p.add_argument("--stop-after", type=positive_int, default=None, metavar="N",
                   help="stop this invocation after N epochs (a later --resume continues the same run; "
                        "default: run to the end)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1, mps (default cpu); under "
                   "torchrun, cuda means each process's own GPU (LOCAL_RANK)")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default=None,
                   help="mixed precision: bf16 (CPU or GPU) or fp16 (GPU, with loss scaling) (default none)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar: one line per epoch only")
    add_threads(p)


def run(args) -> int:
    from spacelang.commands.common import load_or_report
    from spacelang.errors import SpacelangError
    from .common import error, report, set_threads, trained_checkpoint

    space = load_or_report(args.file)
    if space is None:
        return 2
    set_threads(args.threads)
    from .. import checkpoint as ckpt
    from ..search_run import resolve_data
    from ..train import TrainConfig, train

    given = {k: getattr(args, k) for k in _CONFIG_FLAGS if getattr(args, k) is not None}
    if args.sampler is not None:  # the old name of --rule
        if given.setdefault("rule", args.sampler) != args.sampler:
            return error(f"--sampler {args.sampler} and --rule {given['rule']} disagree (--sampler is the old "
                         f"name of --rule)")
    if "data" in given:
        given["data"] = resolve_data(given["data"])  # stored absolute: the run is searchable from anywhere
    stored = None
    if args.resume and ckpt.checkpoint_dir(args.output) is not None:
        try:
            stored = ckpt.load(args.output, optimizer=False).state.get("config")
        except SpacelangError as e:
            return report(e)
    elif args.resume:
        print(f"spacelang: note: {args.output} has no checkpoint yet; starting a new run", file=sys.stderr)
    elif not args.force and (busy := trained_checkpoint(args.output)):
        return error(busy + "; pass --resume to continue it or --force to start afresh")
    try:
        if stored:
            cfg = TrainConfig.from_json(stored)
            ignored = [k for k, v in given.items() if k != "epochs" and getattr(cfg, k) != v]
            if ignored:
                print("spacelang: warning: resuming with the checkpoint's settings; ignoring "
                      + ", ".join(f"--{k.replace('_', '-')}" for k in ignored), file=sys.stderr)
            if "epochs" in given and given["epochs"] != cfg.epochs:
                print(f"spacelang: warning: --epochs {given['epochs']} changes the stored schedule "
                      f"({cfg.epochs} epochs); the result will differ from an uninterrupted run", file=sys.stderr)
                cfg.epochs = given["epochs"]
        else:
            cfg = TrainConfig.for_data(given.pop("data", "digits"), **given)
    except SpacelangError as e:
        return report(e)
    try:
        res = train(space, cfg, args.output, resume=args.resume, progress=not args.no_progress,
                    stop_after=args.stop_after, device=args.device)
    except SpacelangError as e:
        return report(e)
    from ..distributed import current
    if res.val_acc_max is not None and current().main:
        print(f"{args.output}: epoch {res.epoch}/{cfg.epochs}, step {res.step}; search-val accuracy "
              f"largest subnet {res.val_acc_max:.2f}%, smallest subnet {res.val_acc_min:.2f}% "
              f"({res.seconds:.0f} s); trained on {cfg.data}")
    return 0
