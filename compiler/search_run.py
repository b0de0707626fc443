"""The search driver behind ``spacelang search``: rank a trained supernet's subnets, report the best.

Candidates are ranked by their accuracy with inherited weights on the *search-validation* split;
the test split is touched once, for the chosen best subnet.  :func:`run_search` writes into OUT

- ``results.jsonl``  every evaluated arch (DESIGN.md §6: arch, error, accuracy, params, flops;
  search-validation accuracy, in percent), appended as they are evaluated;
- ``best.json``      ``{"arch", "accuracy", "params", "flops", "space"}`` — ``accuracy`` on the
  TEST split (``val_accuracy`` holds the search-validation accuracy it was chosen by), ``space``
  the name and hashes of the space the arch belongs to;
- ``pareto.png``     accuracy against params of every evaluated arch, the Pareto front, the best;
- ``search.json``    which checkpoint (weights sha256) and dataset the accuracies come from;
- with ``latency_profile`` (docs/latency.md): ``latency`` (predicted ms) in every row and in
  best.json, ``latency.json`` (the best arch and the top of the latency Pareto front re-measured
  on this machine: predicted vs measured) and ``pareto_latency.png``.

Resumable: the same call again continues a killed search — archs already in ``results.jsonl``
are not evaluated again, and evolution restarts from its state file in OUT.  OUT is locked
(:class:`~spacelang.compiler.runlock.RunLock`) for the life of the search.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import Callable

from spacelang.cost import Cost
from spacelang.errors import CheckpointError, OptionError, SearchError
from spacelang.util.archkey import arch_json
from spacelang.util.atomic import write_figure, write_json, write_jsonl

from . import distributed
from .distributed import SINGLE, Dist
from .identity import space_identity
from .outputs import ensure_dir
from .runlock import RunLock


class ResultLog:
    """``results.jsonl``: evaluated archs by canonical JSON; new rows appended and flushed at once,
    so a killed search loses at most the generation it was evaluating."""

    def __init__(self, path: str, write: bool = True):
        self.path = path
        self.write = write  # False on the other ranks of a distributed search: rank 0 alone writes
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
                    self.rows[arch_json(row["arch"])] = row
            if write:
                write_jsonl(path, self.rows.values())  # drop a truncated tail so appends start on a clean line

    def get(self, arch) -> dict | None:
        return self.rows.get(arch_json(arch))

    def add(self, rows: list[dict]) -> None:
        from spacelang.errors import OutputError
        from spacelang.util.atomic import os_error_message
        if not self.write:
            self.rows.update((arch_json(row["arch"]), row) for row in rows)
            return
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                for row in rows:
                    self.rows[arch_json(row["arch"])] = row
                    f.write(json.dumps(row, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {os_error_message(e)}") from None


def resolve_data(data: str) -> str:
    """A dataset name as stored in a run: ``digits``/``synthetic`` as they are, a folder as an
    absolute path (so the run can be searched and evaluated from any directory)."""
    return data if data in ("digits", "synthetic") else os.path.abspath(data)


def run_search(rundir: str, out: str, bounds=None, strategy: str = "evolution", num: int | None = None,
               data: str | None = None, seed: int = 0, batch_size: int = 256, plot: bool = True,
               log: Callable[[str], None] | None = None, net_space=None, device: str = "cpu",
               latency_profile: str | None = None, force_profile: bool = False, predictor_settings: dict | None = None,
               **evolution_settings) -> dict:
    """Search ``rundir``'s supernet; write results.jsonl, best.json and pareto.png into ``out``.

    Returns the best.json object.  ``evolution_settings`` are fields of
    :class:`spacelang.search.evolution.EvolutionConfig` (population, generations, parents, mutations,
    crossovers, p_depth, …); random search evaluates ``num`` archs, by default as many as evolution
    would.  ``net_space`` = ``(space, net, train_config_dict)`` skips loading the checkpoint
    (benchmarks reuse a net in memory).  ``strategy="predictor"`` is NASViT's predictor-guided
    search (:mod:`spacelang.search.predictor`; ``predictor_settings``: fields of its
    ``PredictorConfig``): results.jsonl also holds its predicted candidates (``"source":
    "predicted"``, ``predicted_accuracy``, no ``accuracy``) and OUT/predictor.json the predictor's
    held-out Kendall τ and RMSE and the measured front, predicted vs measured.
    """
    if num is not None and strategy != "random":  # never silently ignored
        raise OptionError(f"--evaluations sets random search's budget; {strategy} search's comes from its own "
                          f"settings", hint="drop --evaluations, or use --strategy random")
    dist = distributed.setup(device)
    if dist.main:
        ensure_dir(out)
    # under torchrun every rank evaluates its share of each batch; rank 0 alone writes OUT
    with RunLock(out) if dist.main else contextlib.nullcontext():
        return _search(rundir, out, bounds, strategy, num, data, seed, batch_size, plot,
                       (log or (lambda s: None)) if dist.main else (lambda s: None),
                       net_space, distributed.device_for(device, dist), evolution_settings, latency_profile,
                       force_profile, dist, predictor_settings)


def _search(rundir, out, bounds, strategy, num, data, seed, batch_size, plot, log, net_space, device,
            evolution_settings, latency_profile=None, force_profile=False, dist: Dist = SINGLE,
            predictor_settings: dict | None = None) -> dict:
    from . import evaluate as ev
    from .bn import bn_batches
    from .data import load_data
    from .progress import Progress
    from .train import load_supernet
    from spacelang.errors import InfeasibleError
    from spacelang.search import evolution as evo
    from spacelang.search.costcache import CostCache
    from spacelang.search.where import Bounds

    bounds = bounds if bounds is not None else Bounds()
    c = None
    if net_space is not None:
        space, net, cfg = net_space
    else:
        from . import checkpoint as ckpt
        if ckpt.checkpoint_dir(rundir) is None and not os.path.isfile(os.path.join(rundir, "state.json")):
            raise CheckpointError(f"{rundir}: no checkpoint (run `spacelang train FILE -o {rundir}` first)")
        space, net, c = load_supernet(rundir)
        cfg = c.state.get("config") or {}
        if c.epoch == 0:
            log(f"spacelang: warning: {rundir} holds an untrained supernet (epoch 0)")
    net = net.to(device)
    trained_on = cfg.get("data")
    data_name = resolve_data(data) if data else (trained_on or "digits")
    if data is None and trained_on not in (None, "digits", "synthetic") and not os.path.isabs(trained_on):
        raise CheckpointError(f"{rundir} was trained on the relative path {trained_on!r}, which cannot be "
                              f"located from here", hint="pass --data with the dataset's path")
    log(f"data: {data_name}" + ("" if data_name == trained_on else f" (the supernet was trained on {trained_on})"))
    ds = load_data(data_name, space.input_shape(space.max_arch()), space.classes)
    val = ev.CachedLoader(ds.eval_loader("val", batch_size), device) if ds.in_memory \
        else ds.eval_loader("val", batch_size)
    bn = bn_batches(net, ds, cfg)
    if c is not None and dist.main:
        _claim(out, {"checkpoint": os.path.abspath(c.path), "epoch": c.epoch, "step": c.step, "data": data_name,
                     "weights_sha256": (c.state.get("files") or {}).get("weights.safetensors")
                     or _file_sha256(os.path.join(c.path, "weights.safetensors")),
                     "space": space_identity(space)})
    cost = CostCache(space)
    band = Bounds.from_space(space) & bounds
    from .latency import search_predictor
    predictor = search_predictor(space, latency_profile, force_profile, log)
    if "latency" in band.intervals and predictor is None:
        raise SearchError(f"the band {band} bounds latency, which needs a latency profile",
                          hint="pass --latency-profile PROFILE.json (spacelang latency profile FILE -o PROFILE.json)")
    results = ResultLog(os.path.join(out, "results.jsonl"), write=dist.main)

    def evaluator(archs: list[dict]) -> list[float]:
        """Search-validation accuracy (%) of each arch; cached archs are not evaluated again."""
        todo, seen = [], set()
        for a in archs:
            k = arch_json(a)
            if "accuracy" not in (results.get(a) or {}) and k not in seen:  # predicted rows are not measured
                seen.add(k)
                todo.append(a)
        if todo:
            accs = ev.evaluate(net, todo, val, device=device, bn_batches=bn, dist=dist)
            rows = []
            for a, acc in zip(todo, accs):
                c_ = cost(a)
                rows.append({"arch": dict(sorted(a.items())), "accuracy": acc, "error": 100.0 - acc,
                             "params": c_.params, "flops": c_.flops, **measured_mark})
                if predictor is not None:
                    rows[-1]["latency"] = round(predictor(a), 4)  # milliseconds, predicted
            results.add(rows)
        bar.update(len(archs))
        return [results.get(a)["accuracy"] for a in archs]

    def progress(generation: int, history: list[dict]) -> None:
        bar.note(_progress(generation, history))

    bar = None  # a Progress over the search's evaluations, made once the budget is known
    measured_mark = {"source": "measured"} if strategy == "predictor" else {}  # beside its predicted rows
    try:
        if strategy == "evolution":
            ecfg = evo.EvolutionConfig(**evolution_settings)
            state_path = os.path.join(out, "evolution_state.json")
            log(f"evolution: population {ecfg.population}, {ecfg.generations} generations, "
                f"{ecfg.parents} parents, {ecfg.budget} evaluations")
            bar = Progress(ecfg.budget, desc="search", unit="arch", write=log, enabled=dist.main)
            res = evo.run_evolution(space, evaluator, ecfg, seed=seed, bounds=bounds, state_path=state_path,
                                    resume=True, on_generation=progress, write_state=dist.main, latency=predictor)
        elif strategy == "random":
            budget = num or evo.EvolutionConfig(**evolution_settings).budget
            state_path = os.path.join(out, "random_state.json")
            log(f"random search: {budget} evaluations")
            bar = Progress(budget, desc="search", unit="arch", write=log, enabled=dist.main)
            res = evo.random_search(space, evaluator, budget, seed=seed, bounds=bounds, state_path=state_path,
                                    resume=True, on_generation=progress, write_state=dist.main, latency=predictor)
        elif strategy == "predictor":  # NASViT Appendix C.1, Algorithm 2
            from spacelang.search import predictor as guided
            pcfg = guided.PredictorConfig(**(predictor_settings or {}))
            log(f"predictor-guided search: {pcfg.samples} measured subnets, evolution on predicted accuracy "
                f"({pcfg.population} + {pcfg.iterations} × {pcfg.crossovers + pcfg.mutations} candidates), "
                f"up to {pcfg.front} front subnets measured")
            bar = Progress(pcfg.samples + pcfg.front, desc="search", unit="arch", write=log, enabled=dist.main)
            res = guided.run_predictor_search(
                space, evaluator, pcfg, seed=seed, bounds=bounds, log=log, latency=predictor,
                random_state_path=os.path.join(out, "random_state.json"), write_state=dist.main,
                record=lambda rows: results.add([r for r in rows if results.get(r["arch"]) is None]))
            if dist.main:
                write_json(os.path.join(out, "predictor.json"), {**res.report(), "settings": pcfg.to_json()})
        else:
            raise SearchError(f"unknown strategy {strategy!r} (evolution, random or predictor)")
    except InfeasibleError as e:
        raise SearchError(e.message, hint=e.hint) from None
    finally:
        if bar is not None:
            bar.close()

    # the best of this search's history (results.jsonl may also hold archs of an earlier search in OUT)
    wanted = {arch_json(r["arch"]) for r in res.history}
    rows = [r for k, r in results.rows.items() if k in wanted and band.contains(_row_cost(r, predictor))]
    if not rows:
        raise SearchError("no evaluated arch satisfies the bounds")
    top = max(rows, key=lambda r: (r["accuracy"], -r["params"], -r["flops"]))
    test = ev.CachedLoader(ds.eval_loader("test", batch_size), device) if ds.in_memory \
        else ds.eval_loader("test", batch_size)
    test_acc = ev.evaluate(net, [top["arch"]], test, device=device, bn_batches=bn, dist=dist)[0]
    best = {"arch": top["arch"], "accuracy": test_acc, "val_accuracy": top["accuracy"], "split": "test",
            "params": top["params"], "flops": top["flops"], "strategy": strategy, "evaluated": len(rows),
            "bounds": str(band), "space": space_identity(space), "data": data_name}
    if not dist.main:
        return best
    if predictor is not None:
        from .latency import plot_latency_pareto, remeasure_candidates
        rows = [r if "latency" in r else {**r, "latency": round(predictor(r["arch"]), 4)} for r in rows]
        best["latency"] = round(predictor(top["arch"]), 4)
        report = remeasure_candidates(predictor, rows, best, os.path.join(out, "latency.json"), log)
        if "candidates" in report:
            best["latency_measured"] = report["candidates"][0]["measured_ms"]
        if plot:
            plot_latency_pareto(rows, best, os.path.join(out, "pareto_latency.png"),
                                title=f"{space.name}: {strategy} search, predicted latency")
    write_json(os.path.join(out, "best.json"), best)
    if plot:
        iv = band.intervals.get("params")
        plot_pareto(rows, best, os.path.join(out, "pareto.png"),
                    title=f"{space.name}: {strategy} search, {len(rows)} subnets",
                    params_limit=float(iv.hi) if iv is not None and iv.hi is not None else None)
    return best


def _row_cost(row: dict, predictor):
    """A results row's cost for the band: params and FLOPs, and predicted latency with a profile."""
    if predictor is None:
        return Cost(row["params"], row["flops"])
    from spacelang.latency import LatencyCost
    # predicted again, not read from the row: the row holds it rounded, the sampler checked it exact
    return LatencyCost(row["params"], row["flops"], predictor(row["arch"]))


def _file_sha256(path: str) -> str:
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
    path = os.path.join(out, "search.json")
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            raise SearchError(f"{path}: unreadable; choose another -o") from None
        if old.get("weights_sha256") != identity["weights_sha256"] or old.get("data") != identity["data"]:
            raise SearchError(f"{out} holds results of another supernet or dataset ({old.get('checkpoint')}, "
                              f"epoch {old.get('epoch')}, data {old.get('data')}); choose another -o")
        return
    if os.path.exists(os.path.join(out, "results.jsonl")):
        raise SearchError(f"{out}/results.jsonl exists but not search.json: cannot tell which supernet it "
                          f"comes from; choose another -o")
    write_json(path, identity)


def _progress(generation: int, history: list[dict]) -> str:
    best = max((r["score"] for r in history if r["score"] is not None), default=float("nan"))
    return f"generation {generation}: {len(history)} archs evaluated, best search-val accuracy {best:.2f}%"


def count_unit(values) -> tuple[float, str]:
    """``(scale, suffix)`` that shows ``values`` (counts) as readable numbers: G, M, K or none."""
    top = max((abs(v) for v in values), default=0)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if top >= scale:
            return scale, suffix
    return 1.0, ""


def plot_pareto(rows: list[dict], best: dict | None, path: str, title: str = "",
                params_limit: float | None = None) -> None:
    """Search-validation accuracy against params: every arch, the Pareto front, the best (Agg backend).

    The x-axis unit (K, M, G) follows the data; the star sits at the best arch's search-validation
    accuracy (the y-axis), and its label gives both that and its test accuracy.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale, suffix = count_unit([r["params"] for r in rows] + ([params_limit] if params_limit else []))
    front = pareto_front(rows)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.scatter([r["params"] / scale for r in rows], [r["accuracy"] for r in rows], s=10, c="0.65",
               label=f"evaluated ({len(rows)})", zorder=1)
    ax.plot([r["params"] / scale for r in front], [r["accuracy"] for r in front], "-o", c="tab:blue", ms=4,
            lw=1.2, label="Pareto front", zorder=2)
    if best is not None:
        val = best.get("val_accuracy", best["accuracy"])
        label = f"best: {val:.1f}% search-val" + (f", {best['accuracy']:.1f}% test" if "val_accuracy" in best else "")
        ax.scatter([best["params"] / scale], [val], marker="*", s=220, c="tab:red", edgecolors="k",
                   linewidths=0.6, zorder=3, label=label)
    if params_limit is not None:
        ax.axvline(params_limit / scale, ls="--", c="0.4", lw=1, label="params bound", zorder=0)
    ax.set_xlabel(f"parameters ({suffix})" if suffix else "parameters")
    ax.set_ylabel("search-validation accuracy (%)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    write_figure(path, fig)


def pareto_front(rows: list[dict]) -> list[dict]:
    """Rows not dominated in (fewer params, higher accuracy), by increasing params."""
    from spacelang.search.pareto import pareto_front as front
    return front(rows, cost=lambda r: r["params"], score=lambda r: r["accuracy"])


__all__ = ["run_search", "ResultLog", "plot_pareto", "pareto_front", "count_unit", "resolve_data"]
