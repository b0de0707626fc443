"""``spacelang compile FILE [-o DIR] [--json]``: build the supernet, summarise it, optionally save it.

With ``-o DIR`` the freshly initialised supernet is written as ``DIR/checkpoint`` (epoch 0), which
``spacelang train FILE -o DIR --resume`` continues and ``spacelang search DIR`` can load.  The
initialisation uses ``--seed`` exactly as ``train`` does, so compile-then-train equals train.
"""
from __future__ import annotations

HELP = "compile a space into its weight-entangled supernet; print a summary, optionally save it"


def add_arguments(p) -> None:
    from spacelang.commands.options import add_threads, seed
    p.add_argument("file", metavar="FILE", help="the .space file to compile")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="write an initialised checkpoint directory (default: write nothing)")
    p.add_argument("--seed", type=seed, default=0, help="initialisation seed (default 0, as train)")
    p.add_argument("--force", action="store_true", help="overwrite a trained checkpoint in DIR")
    p.add_argument("--json", action="store_true", help="the summary as JSON")
    add_threads(p)


def run(args) -> int:
    from spacelang.commands.common import human, load_or_report, print_json
    from spacelang.errors import SpacelangError
    from .common import error, report, set_threads, trained_checkpoint

    space = load_or_report(args.file, quiet_warnings=args.json)
    if space is None:
        return 2
    set_threads(args.threads)
    from .. import checkpoint as ckpt
    from ..runlock import RunLock
    from ..summary import summary
    from ..supernet import build_supernet
    from ..train import seed_everything
    try:
        busy = trained_checkpoint(args.output) if args.output and not args.force else None
        if busy:
            return error(busy + "; pass --force to overwrite it")
        seed_everything(args.seed)
        net = build_supernet(space)
        info = summary(space, net)
        if args.output:
            state = {"epoch": 0, "step": 0, "config": None, "rng": ckpt.rng_state(), "sampler": None,
                     "metrics": {}, "space_name": space.name, "init_seed": args.seed}
            with RunLock(args.output):
                info["checkpoint"] = ckpt.save(args.output, net, space.source, state)
    except SpacelangError as e:
        return report(e)
    if args.json:
        print_json(info)
        return 0
    c, h, w = info["input"]
    print(f"{space.name}: {info['subnets']:,} subnets, {info['dimensions']} dimensions, input {c}×{h}×{w}, "
          f"{info['classes']} classes")
    print(f"  supernet parameters: {human(info['supernet_params'])} ({info['supernet_params']:,})")
    print(f"  subnet params: {human(info['params']['min'])} – {human(info['params']['max'])}   "
          f"FLOPs: {human(info['flops']['min'])} – {human(info['flops']['max'])}   "
          f"MACs: {human(info['macs']['min'])} – {human(info['macs']['max'])}")
    for st in info["stages"]:
        trans = f"{st['transition']} → " if st["transition"] else ""
        dim = st["dim"][0] if st["dim"][0] == st["dim"][1] else f"{st['dim'][0]}–{st['dim'][1]}"
        depth = st["depth"][0] if st["depth"][0] == st["depth"][1] else f"{st['depth'][0]}–{st['depth'][1]}"
        print(f"  stage {st['name']}: {trans}{st['size']}×{st['size']} tokens, dim {dim}, depth {depth} "
              f"({', '.join(st['kinds'])})")
    if args.output:
        print(f"  wrote {info['checkpoint']}")
    return 0
