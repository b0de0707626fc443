"""``spacelang search RUNDIR -o OUT``: find the best subnet of a trained supernet.

Candidates are ranked by their accuracy with inherited weights on the *search-validation* split;
the test split is touched once, for the chosen best subnet.  Writes

- ``OUT/results.jsonl``  every evaluated arch (DESIGN.md §6: arch, error, accuracy, params, flops;
  search-validation accuracy, in percent), appended as they are evaluated;
- ``OUT/best.json``      ``{"arch", "accuracy", "params", "flops"}`` — ``accuracy`` on the TEST
  split (``val_accuracy`` holds the search-validation accuracy it was chosen by);
- ``OUT/pareto.png``     accuracy against params of every evaluated arch, the Pareto front, the best;
- ``OUT/search.json``    which checkpoint (weights sha256) and dataset the accuracies come from.

Resumable: rerunning the same command continues a killed search — archs already in
``results.jsonl`` are not evaluated again, and evolution restarts from its state file in OUT.
"""
from __future__ import annotations

import json
import os
import sys

HELP = "search a trained supernet (evolution or random) under params/FLOPs bounds; report the best subnet"


def add_arguments(p) -> None:
    from .common import add_threads
    p.add_argument("rundir", metavar="RUNDIR", help="a run directory (train -o) or a compiled checkpoint (compile -o)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory")
    p.add_argument("--where", action="append", default=[], metavar="EXPR",
                   help="cost bound, e.g. 'params<=200K' or '1M <= flops <= 5M' (repeatable; all must hold)")
    p.add_argument("--strategy", choices=("evolution", "random"), default="evolution")
    p.add_argument("--preset", choices=("autoformer", "s3", "vit-resnas"), default="autoformer",
                   help="evolution settings of a paper (default autoformer: population 50, 20 generations, "
                        "10 parents, P_d 0.2, P_m 0.4); the flags below override them")
    p.add_argument("--population", type=int, default=None, help="initial population (AutoFormer: 50)")
    p.add_argument("--generations", type=int, default=None, help="bred generations (AutoFormer: 20)")
    p.add_argument("--parents", type=int, default=None, help="top archs kept as parents (AutoFormer: 10)")
    p.add_argument("--children", type=int, default=None,
                   help="children per generation, half by mutation, half by crossover (default = population)")
    p.add_argument("--num", type=int, default=None,
                   help="archs evaluated by random search (default: as many as evolution evaluates)")
    p.add_argument("--data", default=None, help="dataset (default: the one the supernet was trained on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256, help="evaluation batch size")
    p.add_argument("--device", default="cpu", help="cpu, cuda, … (default cpu)")
    p.add_argument("--json", action="store_true", help="print best.json to stdout")
    p.add_argument("--no-plot", action="store_true", help="skip pareto.png")
    add_threads(p)


def run(args) -> int:
    from .common import error, set_threads
    set_threads(args.threads)
    from spacelang.diagnostics import SpaceError
    try:
        from spacelang.search.where import Bounds, WhereError
        bounds = Bounds.parse(args.where) if args.where else Bounds()
    except WhereError as e:
        return error(str(e))
    try:
        settings = evolution_settings(args)
        best = run_search(args.rundir, args.output, bounds=bounds, strategy=args.strategy, num=args.num,
                          data=args.data, seed=args.seed, batch_size=args.batch_size, plot=not args.no_plot,
                          log=lambda s: print(s, file=sys.stderr), device=args.device, **settings)
    except (SearchError, FileNotFoundError, SpaceError, ValueError) as e:
        return error(str(e))
    if args.json:
        print(json.dumps(best, indent=2, sort_keys=True))
    else:
        from spacelang.commands.common import human
        print(f"best subnet: {best['accuracy']:.2f}% test accuracy ({best['val_accuracy']:.2f}% search-val), "
              f"{human(best['params'])} params, {human(best['flops'])} FLOPs; wrote "
              f"{os.path.join(args.output, 'best.json')}")
    return 0


def evolution_settings(args) -> dict:
    """EvolutionConfig fields from ``--preset`` and the flags that override it."""
    from spacelang.search.evolution import PRESETS
    base = PRESETS[args.preset]().to_json()
    for name in ("population", "generations", "parents"):
        if getattr(args, name) is not None:
            base[name] = getattr(args, name)
    children = args.children if args.children is not None else (
        base["population"] if args.population is not None else None)
    if children is not None:
        base["mutations"], base["crossovers"] = children // 2, children - children // 2
    if base["parents"] > base["population"]:
        base["parents"] = base["population"]
    return base


# ---------------------------------------------------------------------------------------------- the driver
class SearchError(Exception):
    """A search that cannot run (no checkpoint, infeasible bounds, mismatched state)."""


class ResultLog:
    """``results.jsonl``: evaluated archs by canonical JSON; new rows appended and flushed at once,
    so a killed search loses at most the generation it was evaluating."""

    def __init__(self, path: str):
        self.path = path
        self.rows: dict[str, dict] = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        break  # a line cut by a kill: everything before it is good
                    self.rows[key(row["arch"])] = row
            self._rewrite()  # drop a truncated tail so appends start on a clean line

    def _rewrite(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for row in self.rows.values():
                f.write(json.dumps(row, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

    def get(self, arch) -> dict | None:
        return self.rows.get(key(arch))

    def add(self, rows: list[dict]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            for row in rows:
                self.rows[key(row["arch"])] = row
                f.write(json.dumps(row, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


def key(arch) -> str:
    return json.dumps(arch, sort_keys=True)


def run_search(rundir: str, out: str, bounds=None, strategy: str = "evolution", num: int | None = None,
               data: str | None = None, seed: int = 0, batch_size: int = 256, plot: bool = True, log=None,
               net_space=None, device: str = "cpu", **evolution_settings) -> dict:
    """Search ``rundir``'s supernet; write results.jsonl, best.json and pareto.png into ``out``.

    Returns the best.json object.  ``evolution_settings`` are fields of
    :class:`spacelang.search.evolution.EvolutionConfig` (population, generations, parents, mutations,
    crossovers, p_depth, …); random search evaluates ``num`` archs, by default as many as evolution
    would.  ``net_space`` = ``(space, net, train_config_dict)`` skips loading the checkpoint
    (benchmarks reuse a net in memory).
    """
    from ..data import load_data
    from ..evaluate import CachedLoader, evaluate, has_batchnorm
    from ..train import load_supernet
    from spacelang.search.costcache import CostCache
    from spacelang.search.where import Bounds, InfeasibleError

    log = log or (lambda s: None)
    bounds = bounds if bounds is not None else Bounds()
    if net_space is not None:
        space, net, cfg = net_space
    else:
        from .. import checkpoint as ckpt
        if ckpt.checkpoint_dir(rundir) is None and not os.path.isfile(os.path.join(rundir, "state.json")):
            raise SearchError(f"{rundir}: no checkpoint (run `spacelang train FILE -o {rundir}` first)")
        space, net, c = load_supernet(rundir)
        cfg = c.state.get("config") or {}
        if c.epoch == 0:
            log(f"spacelang: warning: {rundir} holds an untrained supernet (epoch 0)")
    net = net.to(device)
    data_name = data or cfg.get("data") or "digits"
    ds = load_data(data_name, space.input_shape(space.max_arch()), space.classes)
    val = CachedLoader(ds.eval_loader("val", batch_size), device) if ds.in_memory \
        else ds.eval_loader("val", batch_size)
    bn = None
    if has_batchnorm(net):
        it = iter(ds.train_loader(int(cfg.get("batch_size", 64)), int(cfg.get("seed", 0)), 0))
        bn = [b for _, b in zip(range(4), it)]
    os.makedirs(out, exist_ok=True)
    if net_space is None:
        _claim(out, {"checkpoint": os.path.abspath(c.path), "epoch": c.epoch, "step": c.step, "data": data_name,
                     "weights_sha256": _file_sha256(os.path.join(c.path, "weights.safetensors"))})
    cost = CostCache(space)
    band = Bounds.from_space(space) & bounds
    results = ResultLog(os.path.join(out, "results.jsonl"))

    def evaluator(archs: list[dict]) -> list[float]:
        """Search-validation accuracy (%) of each arch; cached archs are not evaluated again."""
        todo, seen = [], set()
        for a in archs:
            k = key(a)
            if results.get(a) is None and k not in seen:
                seen.add(k)
                todo.append(a)
        if todo:
            accs = evaluate(net, todo, val, device=device, bn_batches=bn)
            rows = []
            for a, acc in zip(todo, accs):
                c_ = cost(a)
                rows.append({"arch": dict(sorted(a.items())), "accuracy": acc, "error": 100.0 - acc,
                             "params": c_.params, "flops": c_.flops})
            results.add(rows)
        return [results.get(a)["accuracy"] for a in archs]

    from spacelang.search import evolution as evo
    budget = num
    try:
        if strategy == "evolution":
            ecfg = evo.EvolutionConfig(**evolution_settings)
            log(f"evolution: population {ecfg.population}, {ecfg.generations} generations, "
                f"{ecfg.parents} parents, {ecfg.budget} evaluations")
            res = evo.run_evolution(space, evaluator, ecfg, seed=seed, bounds=bounds,
                             state_path=os.path.join(out, "evolution_state.json"), resume=True,
                             on_generation=lambda g, h: log(_progress(g, h)))
        elif strategy == "random":
            budget = budget or evo.EvolutionConfig(**evolution_settings).budget
            log(f"random search: {budget} evaluations")
            res = evo.random_search(space, evaluator, budget, seed=seed, bounds=bounds,
                                    state_path=os.path.join(out, "random_state.json"), resume=True,
                                    on_generation=lambda g, h: log(_progress(g, h)))
        else:
            raise SearchError(f"unknown strategy {strategy!r}")
    except InfeasibleError as e:
        raise SearchError(str(e)) from None
    except ValueError as e:  # a state file of another search in OUT
        raise SearchError(str(e)) from None

    # the best of this search's history (results.jsonl may also hold archs of an earlier search in OUT)
    wanted = {key(r["arch"]) for r in res.history}
    rows = [r for k, r in results.rows.items() if k in wanted and band.contains(_Cost(r["params"], r["flops"]))]
    if not rows:
        raise SearchError("no evaluated arch satisfies the bounds")
    top = max(rows, key=lambda r: (r["accuracy"], -r["params"], -r["flops"]))
    test = CachedLoader(ds.eval_loader("test", batch_size), device) if ds.in_memory \
        else ds.eval_loader("test", batch_size)
    test_acc = evaluate(net, [top["arch"]], test, device=device, bn_batches=bn)[0]
    best = {"arch": top["arch"], "accuracy": test_acc, "val_accuracy": top["accuracy"], "split": "test",
            "params": top["params"], "flops": top["flops"], "strategy": strategy, "evaluated": len(rows),
            "bounds": str(band)}
    from .common import write_json_atomic
    write_json_atomic(os.path.join(out, "best.json"), best)
    if plot:
        iv = band.intervals.get("params")
        plot_pareto(rows, best, os.path.join(out, "pareto.png"),
                    title=f"{space.name}: {strategy} search, {len(rows)} subnets",
                    params_limit=float(iv.hi) if iv is not None and iv.hi is not None else None)
    return best


class _Cost:
    def __init__(self, params, flops):
        self.params, self.flops = params, flops


def _file_sha256(path: str) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _claim(out: str, identity: dict) -> None:
    """Record which supernet OUT's accuracies come from; refuse to mix in another one's.

    ``results.jsonl`` doubles as the evaluation cache of a resumed search, so its rows are only
    valid for the weights that produced them.
    """
    from .common import read_json, write_json_atomic
    path = os.path.join(out, "search.json")
    if os.path.exists(path):
        old = read_json(path)
        if old.get("weights_sha256") != identity["weights_sha256"] or old.get("data") != identity["data"]:
            raise SearchError(f"{out} holds results of another supernet or dataset ({old.get('checkpoint')}, "
                              f"epoch {old.get('epoch')}, data {old.get('data')}); choose another -o")
        return
    if os.path.exists(os.path.join(out, "results.jsonl")):
        raise SearchError(f"{out}/results.jsonl exists but not search.json: cannot tell which supernet it "
                          f"comes from; choose another -o")
    write_json_atomic(path, identity)


def _progress(generation: int, history: list[dict]) -> str:
    best = max((r["score"] for r in history if r["score"] is not None), default=float("nan"))
    return f"generation {generation}: {len(history)} archs evaluated, best search-val accuracy {best:.2f}%"


def plot_pareto(rows: list[dict], best: dict | None, path: str, title: str = "",
                params_limit: float | None = None) -> None:
    """Search-validation accuracy against params: every arch, the Pareto front, the best (Agg backend)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["params"] / 1e6 for r in rows]
    ys = [r["accuracy"] for r in rows]
    front = pareto_front(rows)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.scatter(xs, ys, s=10, c="0.65", label=f"evaluated ({len(rows)})", zorder=1)
    ax.plot([r["params"] / 1e6 for r in front], [r["accuracy"] for r in front], "-o", c="tab:blue", ms=4,
            lw=1.2, label="Pareto front", zorder=2)
    if best is not None:
        ax.scatter([best["params"] / 1e6], [best.get("val_accuracy", best["accuracy"])], marker="*", s=220,
                   c="tab:red", edgecolors="k", linewidths=0.6, zorder=3,
                   label=f"best: {best['accuracy']:.1f}% test")
    if params_limit is not None:
        ax.axvline(params_limit / 1e6, ls="--", c="0.4", lw=1, label="params bound", zorder=0)
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel("search-validation accuracy (%)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def pareto_front(rows: list[dict]) -> list[dict]:
    """Rows not dominated in (fewer params, higher accuracy), by increasing params."""
    from spacelang.search.pareto import pareto_front as front
    return front(rows, cost=lambda r: r["params"], score=lambda r: r["accuracy"])
