"""``spacelang latency profile FILE -o PROFILE.json`` and ``spacelang latency check PROFILE``.

``profile`` times every distinct layer configuration of the space on this machine, then whole
subnets spread over the space, fits ``latency = a · Σ layers + b`` on three quarters of them and
prints the error on the rest (held out of the fit).  ``check`` re-measures fresh random subnets
against a profile's predictions and prints MAPE and the share within ±10 % (``--json``:
``{"mape_percent": …, "within_10_percent": …, "n": …}``).  docs/latency.md has the details.
"""
from __future__ import annotations

import json
import sys

HELP = "measure a space's latency on this machine (profile) and check a profile's predictions (check)"


def add_arguments(p) -> None:
    from .options import add_threads, at_least, count, seed
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True,
                           help="profile: measure a space on this machine; check: re-measure against a profile")
    prof = sub.add_parser("profile", help="measure every layer configuration and whole subnets of a space",
                          description="measure every layer configuration and whole subnets of a space")
    prof.add_argument("file", metavar="FILE", help="the .space file")
    prof.add_argument("-o", "--output", required=True, metavar="PROFILE.json", help="where to write the profile")
    prof.add_argument("--device", choices=("cpu",), default="cpu", help="the device (default cpu, the only one so far)")
    prof.add_argument("--batch", type=count, default=1, metavar="B", help="images per call (default 1)")
    add_threads(prof)
    prof.add_argument("--layers-only", action="store_true",
                      help="time the layers only: no whole subnets, no correction, no held-out error")
    prof.add_argument("--subnets", type=at_least(4), default=100, metavar="N",
                      help="whole subnets to time; every 4th is held out of the fit (default 100)")
    _timing_options(prof, at_least)
    prof.add_argument("--seed", type=seed, default=0, help="random seed of the subnets (default 0)")

    chk = sub.add_parser("check", help="re-measure random subnets against a profile's predictions",
                         description="re-measure random subnets against a profile's predictions")
    chk.add_argument("profile", metavar="PROFILE", help="a profile written by `spacelang latency profile`")
    chk.add_argument("-n", type=count, default=20, metavar="N", help="subnets to measure (default 20)")
    chk.add_argument("--seed", type=seed, default=1, help="random seed of the subnets (default 1)")
    chk.add_argument("--clock", choices=("cpu", "wall"), default=None, help="override the profile's clock")
    chk.add_argument("--statistic", choices=("median", "min"), default=None,
                     help="override the profile's statistic")
    chk.add_argument("--force", action="store_true", help="measure even on a machine other than the profile's")
    chk.add_argument("--json", action="store_true", help='print {"mape_percent", "within_10_percent", "n"}')


def _timing_options(p, at_least) -> None:
    p.add_argument("--warmup", type=at_least(0), default=3, metavar="K", help="untimed runs first (default 3)")
    p.add_argument("--reps", type=at_least(1), default=15, metavar="R", help="timed samples (default 15)")
    p.add_argument("--min-sample-ms", type=at_least(0.0, float), default=2.0, metavar="MS",
                   help="a sample repeats the call until it lasts this long (default 2)")
    p.add_argument("--clock", choices=("cpu", "wall"), default=None,
                   help="cpu: the thread's CPU time (default at 1 thread: other processes' load does not "
                        "count); wall: elapsed time (default with more threads)")
    p.add_argument("--statistic", choices=("median", "min"), default="median",
                   help="summary of the samples (default median)")


def run(args) -> int:
    from ..errors import SpacelangError
    try:
        return _profile(args) if args.action == "profile" else _check(args)
    except SpacelangError as e:
        print(e.render(), file=sys.stderr)
        return 2


def _log(text: str) -> None:
    print(f"latency: {text}", file=sys.stderr, flush=True)


def _profile(args) -> int:
    from ..latency import describe_error
    from ..util.atomic import write_json
    from .common import load_or_report
    space = load_or_report(args.file)
    if space is None:
        return 2
    from ..compiler.latency import Timing, build_profile, default_clock
    threads = args.threads or 1
    timing = Timing(args.warmup, args.reps, args.min_sample_ms, args.clock or default_clock(threads),
                    args.statistic).check()
    data = build_profile(space, batch=args.batch, threads=threads, subnets=args.subnets,
                         layers_only=args.layers_only, timing=timing, seed=args.seed, log=_log)
    write_json(args.output, data)
    corr = data["correction"]
    print(f"{space.name}: {len(data['layers'])} layer configurations timed"
          + ("" if args.layers_only else f", {len(data['subnets'])} whole subnets"))
    print(f"device: {data['fingerprint']['cpu']}, {threads} thread(s), batch {args.batch}, float32, "
          f"{timing.statistic} of {timing.reps} samples ({timing.clock} clock)")
    if args.layers_only:
        print("correction: none (--layers-only: latency = Σ layers); held-out error: not measured — "
              "run `spacelang latency check` for it")
    else:
        print(f"correction: latency = {corr['a']:.4f} · Σ layers {corr['b_ms']:+.4f} ms (fitted on {corr['fit_n']})")
        print(f"held-out error: {describe_error(data['heldout'])}")
    print(f"built in {data['build_seconds']:.1f} s; wrote {args.output}")
    return 0


def _check(args) -> int:
    from ..latency import Profile, describe_error
    profile = Profile.load(args.profile)
    from ..compiler.latency import check_profile
    res = check_profile(profile, n=args.n, seed=args.seed, force=args.force, clock=args.clock,
                        statistic=args.statistic, log=_log)
    if args.json:
        print(json.dumps({k: res[k] for k in ("mape_percent", "within_10_percent", "n")}, sort_keys=True))
        return 0
    print(f"{profile.space.get('name')} on {profile.device_text()} ({res['statistic']}, {res['clock']} clock)")
    print(f"{'predicted':>10} {'measured':>10} {'error':>7}")
    for r in res["rows"]:
        err = 100.0 * (r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"]
        print(f"{r['predicted_ms']:>8.3f}ms {r['measured_ms']:>8.3f}ms {err:>+6.1f}%")
    print(f"held-out error: {describe_error(res)}")
    if "drift" in res:
        print(f"machine drift: the profile's own subnets run ×{res['drift']:.2f} their profiled time now; "
              f"predictions scaled by it: {describe_error(res['drift_corrected'])}")
    recorded = profile.heldout
    if recorded.get("n"):
        print(f"(when built: {describe_error(recorded)})")
    return 0


# ------------------------------------------------------------------------------ for other commands
def add_profile_options(p) -> None:
    """``--latency-profile PROFILE.json`` and ``--force-profile``, for commands that predict latency
    (``sample``, ``search``): with a profile, ``latency`` bounds work and outputs gain ``latency``."""
    p.add_argument("--latency-profile", metavar="PROFILE.json", default=None,
                   help="predict latency with this profile (from `spacelang latency profile`): enables "
                        "'latency<=20ms' bounds and the space's latency constraints, adds latency to outputs")
    p.add_argument("--force-profile", action="store_true",
                   help="use the latency profile even if it was measured on another space")


def predictor_from_args(space, args, warn=None):
    """The :class:`~spacelang.latency.LatencyPredictor` of ``args.latency_profile`` for ``space``
    (None without one).  Another space is refused unless ``--force-profile``; another machine is
    a warning (through ``warn``, default stderr): the predictions are for the profile's device,
    which is the point of a profile measured there."""
    path = getattr(args, "latency_profile", None)
    if not path:
        return None
    from ..latency import LatencyPredictor, load_profile
    profile = load_profile(path, space, force=getattr(args, "force_profile", False), force_flag="--force-profile")
    diff = profile.machine_differences()
    if diff:
        (warn or (lambda s: print(s, file=sys.stderr)))(
            f"warning: latency is predicted for the profile's machine ({profile.device_text()}), not this one "
            f"({'; '.join(diff)})")
    return LatencyPredictor(space, profile)
