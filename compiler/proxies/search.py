"""``spacelang search FILE --strategy reinforce --proxy le,ntk``: As-ViT's training-free topology search.

The search command calls :func:`add_reinforce_arguments` from its ``add_arguments`` and
:func:`run_proxy_search` from its ``run`` when ``--strategy reinforce``: the positional argument
is then a ``.space`` file (no trained supernet is needed).  The REINFORCE loop is
:func:`spacelang.search.reinforce.run_reinforce`; this module only supplies its evaluator (the
proxies' mean over random initialisations, :func:`score_arch`) and the command's output.
"""
from __future__ import annotations

import json
import os
import sys

from spacelang.errors import OptionError, SpacelangError


#: the reinforce options' values when not given (the options default to None, so that the search
#: command can refuse them with another strategy instead of ignoring them)
DEFAULTS = {"proxy": "le,ntk", "steps": 500, "inits": 5, "policy_lr": 0.05}


def add_reinforce_arguments(p) -> None:
    """The options of ``--strategy reinforce`` (``--seed``, ``--json``, ``--threads``, ``-o`` are the command's)."""
    from spacelang.commands.options import positive, positive_int
    g = p.add_argument_group("reinforce (As-ViT topology search; the positional argument is a .space file)")
    g.add_argument("--proxy", default=None, metavar="LIST",
                   help="proxies of the reward: le (L_E, higher is better), ntk (κ, lower is better); default le,ntk")
    g.add_argument("--steps", type=positive_int, default=None, help="policy-gradient steps (default 500, as As-ViT)")
    g.add_argument("--inits", type=positive_int, default=None, help="random initialisations per proxy score (default 5)")
    g.add_argument("--policy-lr", type=positive, default=None, help="Adam step on the policy's logits (default 0.05)")


def proxy_evaluator(space, proxies, seed: int, inits: int):
    """``evaluate(arch) -> {proxy name: mean score}`` for :func:`run_reinforce` and the auto-scaler."""
    from .score import score_arch

    def evaluate(arch):
        r = score_arch(space, arch, proxies, seed=seed, inits=inits)
        return {p.name: r[p.name] for p in proxies}
    return evaluate


def run_proxy_search(args) -> int:
    """Run REINFORCE on ``args.rundir`` (a .space file) into ``args.output``; exit code."""
    from spacelang.commands.common import load_or_report
    from spacelang.search.reinforce import run_reinforce

    from ..commands.common import report, set_threads
    from . import parse_list

    set_threads(getattr(args, "threads", None))
    path = getattr(args, "file", None) or args.rundir
    if os.path.isdir(path) or not path.endswith(".space"):
        return report(OptionError(f"--strategy reinforce searches a .space file, not {path}",
                                  hint="spacelang search FILE.space --strategy reinforce -o OUT"))
    space = load_or_report(path)
    if space is None:
        return 2
    steps, inits = args.steps or DEFAULTS["steps"], args.inits or DEFAULTS["inits"]
    try:
        proxies = parse_list(args.proxy or DEFAULTS["proxy"])
        objectives = {p.name: 1 if p.higher_is_better else -1 for p in proxies}
        every = max(1, steps // 20)

        def log(row):
            if row["step"] % every == 0 or row["step"] == steps - 1:
                scores = "  ".join(f"{p.alias} {row[p.name]:.4g}" for p in proxies)
                print(f"step {row['step']:>4}  {scores}  reward {row['reward']:+.3f}  entropy {row['entropy']:.2f}",
                      file=sys.stderr)
        result = run_reinforce(space, proxy_evaluator(space, proxies, args.seed, inits), steps=steps,
                               seed=args.seed, out_dir=args.output, lr=args.policy_lr or DEFAULTS["policy_lr"],
                               objectives=objectives,
                               on_step=log)
    except SpacelangError as e:
        return report(e)
    if getattr(args, "json", False):
        with open(os.path.join(args.output, "best.json"), encoding="utf-8") as f:
            print(f.read(), end="")
    else:
        print(f"most probable topology after {len(result.rows)} steps ({result.evaluations} proxy evaluations, "
              f"entropy {result.entropy[0]:.1f} → {result.entropy[-1]:.1f}): {json.dumps(result.best, sort_keys=True)}; "
              f"wrote {os.path.join(args.output, 'best.json')}")
    return 0


__all__ = ["add_reinforce_arguments", "proxy_evaluator", "run_proxy_search"]
