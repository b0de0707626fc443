"""Predictor-guided search (NASViT Appendix C.1, Algorithm 2): a random-forest accuracy predictor
fitted on measured subnets, evolution on predicted accuracy, the front measured at the end.

1. Measure ``samples`` random subnets (default 1,024) under the band with inherited weights on
   the search-validation split (the caller's ``measure``; here, :func:`random_search`, which
   resumes from its state file).
2. Split them in halves (seeded shuffle); fit scikit-learn's ``RandomForestRegressor`` on one half
   — features: one column per dimension of the space, the index of the arch's choice, and
   ``INACTIVE`` (−1, a value no active choice takes) where the arch's depth or an absent optional
   block leaves the dimension out — and report Kendall τ and RMSE on the other half.
3. Evolution on predicted accuracy: ``population`` random candidates, then ``iterations`` rounds
   of ``crossovers`` crossover and ``mutations`` mutation children of the ``parents`` best
   candidates (the operators of :mod:`spacelang.search.evolution`); children outside the band or
   seen before are redrawn up to ``max_tries`` times.  Parents are the best by predicted accuracy
   *within each of ``bins`` FLOPs bins* (quantiles of the first population), so that the search
   covers the accuracy–FLOPs front rather than only its expensive end (AlphaNet searches one
   FLOPs target at a time; ``bins = 1`` is the plain "best 128").  Measured archs are not
   candidates (their accuracy is known).
4. The Pareto front of the candidates (predicted accuracy against FLOPs), thinned to ``front``
   archs evenly along it, is measured; :func:`front_report` compares predicted and measured.

Pure Python with numpy and scikit-learn (no torch): the caller supplies ``measure``.  Everything
is a function of the seed: a resumed search (results cached by the caller) takes the same path.
"""
from __future__ import annotations

import math
import random
import time
from typing import Any, Callable, Mapping, Sequence

import attrs
import numpy as np

from ..errors import SearchError
from ..util.archkey import arch_json
from .costcache import CostCache
from .evolution import EvolutionConfig, crossover, mutate, random_search
from .pareto import pareto_front
from .sampling import ConstrainedSampler
from .where import Bounds

INACTIVE = -1.0  # the feature of a dimension the arch does not hold (depth-inactive, absent block)


@attrs.frozen
class PredictorConfig:
    """Settings of the predictor-guided search (defaults: NASViT Appendix C.1)."""

    samples: int = attrs.field(default=1024, validator=attrs.validators.ge(4))     # measured to fit
    trees: int = attrs.field(default=100, validator=attrs.validators.ge(1))        # random-forest size
    population: int = attrs.field(default=1024, validator=attrs.validators.ge(1))  # first candidates
    parents: int = attrs.field(default=128, validator=attrs.validators.ge(1))
    crossovers: int = attrs.field(default=128, validator=attrs.validators.ge(0))
    mutations: int = attrs.field(default=128, validator=attrs.validators.ge(0))
    iterations: int = attrs.field(default=40, validator=attrs.validators.ge(0))
    bins: int = attrs.field(default=8, validator=attrs.validators.ge(1))           # FLOPs bins of parents
    front: int = attrs.field(default=16, validator=attrs.validators.ge(1))         # front archs measured
    max_tries: int = attrs.field(default=10, validator=attrs.validators.ge(1))

    def to_json(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def settings_from_flags(cls, samples=None, population=None, generations=None, parents=None, children=None,
                            front=None) -> dict:
        """Fields from ``spacelang search``'s flags (None: not given): ``--generations`` sets the
        iterations, ``--children`` splits into crossover and mutation halves."""
        out = {k: v for k, v in (("samples", samples), ("population", population), ("iterations", generations),
                                 ("parents", parents), ("front", front)) if v is not None}
        if children is not None:
            out["crossovers"], out["mutations"] = children - children // 2, children // 2
        return out


# ---------------------------------------------------------------------------------------------- features
def feature_names(space) -> list[str]:
    """One column per dimension of the space, by path."""
    return [d.path for d in space.dims]


def encode(space, archs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The feature matrix: the index of each dimension's choice, :data:`INACTIVE` where absent."""
    columns = [(d.path, _choice_table(d.choices), list(d.choices)) for d in space.dims]
    rows = []
    for a in archs:
        row = []
        for path, table, choices in columns:
            if path not in a:
                row.append(INACTIVE)
                continue
            v = a[path]
            i = table.get(v) if table is not None and not isinstance(v, list) else None
            row.append(i if i is not None else choices.index(v))
        rows.append(row)
    return np.asarray(rows, dtype=np.float32).reshape(len(archs), len(columns))


def _choice_table(choices: Sequence) -> dict | None:
    """value -> index among ``choices``, or None when the choices are not hashable (lists)."""
    try:
        return {c: i for i, c in enumerate(choices)}
    except TypeError:
        return None


class AccuracyPredictor:
    """A random forest from arch features to accuracy (percent)."""

    def __init__(self, space, trees: int = 100, seed: int = 0):
        from sklearn.ensemble import RandomForestRegressor
        self.space = space
        self.model = RandomForestRegressor(n_estimators=trees, random_state=seed % (2 ** 32), n_jobs=1)

    def fit(self, archs: Sequence[Mapping], accuracies: Sequence[float]) -> "AccuracyPredictor":
        self.model.fit(encode(self.space, archs), np.asarray(accuracies, dtype=float))
        return self

    def predict(self, archs: Sequence[Mapping]) -> np.ndarray:
        """Predicted accuracies: the mean of the trees' predictions, as the forest's ``predict``
        computes it, without its per-call input validation and thread pool (the features are
        already float32; evolution predicts thousands of small batches)."""
        if not archs:
            return np.zeros(0)
        x = encode(self.space, archs)
        trees = self.model.estimators_
        return sum(t.predict(x, check_input=False) for t in trees) / len(trees)


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's τ-b of two score lists (NaN for fewer than 2 items or a constant list)."""
    from scipy.stats import kendalltau
    if len(a) < 2:
        return float("nan")
    return float(kendalltau(a, b).statistic)


def fit_predictor(space, archs: Sequence[Mapping], accuracies: Sequence[float], *, trees: int = 100,
                  seed: int = 0) -> tuple[AccuracyPredictor, dict]:
    """Algorithm 2, line 3: split the measured archs in halves (seeded), fit on one, validate on
    the other.  Returns the predictor (fitted on the training half) and ``{"tau", "rmse", "train",
    "held_out"}``."""
    if len(archs) < 4:
        raise SearchError(f"the predictor needs at least 4 measured subnets, got {len(archs)}")
    order = list(range(len(archs)))
    random.Random(f"spacelang-predictor/{seed}").shuffle(order)
    half = len(order) // 2
    train, held = order[:half], order[half:]
    pred = AccuracyPredictor(space, trees, seed).fit([archs[i] for i in train], [accuracies[i] for i in train])
    got = pred.predict([archs[i] for i in held])
    want = np.asarray([accuracies[i] for i in held], dtype=float)
    return pred, {"tau": kendall_tau(got, want), "rmse": float(np.sqrt(np.mean((got - want) ** 2))),
                  "train": len(train), "held_out": len(held)}


# ---------------------------------------------------------------------------------------------- evolution
def predicted_evolution(space, predict: Callable[[list], np.ndarray], cfg: PredictorConfig, *, seed: int = 0,
                        bounds: Bounds | None = None, exclude: Sequence[Mapping] = (),
                        cost: CostCache | None = None, latency=None) -> list[dict]:
    """Step 3: every candidate as ``{"arch", "predicted", "params", "flops", "generation"}``
    (``latency``: a latency predictor, when the bounds hold latency)."""
    rng = random.Random(f"spacelang-predicted-evolution/{seed}")
    sampler = ConstrainedSampler(space, rng, bounds, cost=cost, latency=latency)
    ops = EvolutionConfig()  # mutation probabilities and crossover mode of the evolution module
    seen = {arch_json(a) for a in exclude}
    out: list[dict] = []

    def admit(arch: dict, generation: int, batch: list) -> bool:
        k = arch_json(arch)
        if k in seen:
            return False
        c = sampler.cost(arch)
        if not sampler.bounds.contains(c):  # the space's constraints and the search's bounds
            return False
        seen.add(k)
        batch.append({"arch": arch, "predicted": None, "params": c.params, "flops": c.flops,
                      "generation": generation})
        return True

    def score(batch: list) -> None:
        for r, p in zip(batch, predict([r["arch"] for r in batch])):
            r["predicted"] = float(p)
        out.extend(batch)

    first: list[dict] = []
    for _ in range(cfg.population):
        for _ in range(cfg.max_tries):
            if admit(sampler.sample(), 0, first):
                break
    score(first)
    if not out:
        return out
    edges = np.quantile([r["flops"] for r in out], np.linspace(0, 1, cfg.bins + 1)[1:-1]) if cfg.bins > 1 else []
    bins: dict[int, list[dict]] = {}  # FLOPs bin -> its candidates

    def file(records: list) -> None:
        for r in records:
            bins.setdefault(int(np.searchsorted(edges, r["flops"], side="right")), []).append(r)

    file(out)
    for g in range(1, cfg.iterations + 1):
        parents = _parents(bins, cfg.parents)
        batch: list[dict] = []
        for make, n in ((lambda: crossover(space, rng.choice(parents), rng.choice(parents), rng, ops.crossover),
                         cfg.crossovers),
                        (lambda: mutate(space, rng.choice(parents), rng, ops), cfg.mutations)):
            for _ in range(n):
                for _ in range(cfg.max_tries):
                    if admit(make(), g, batch):
                        break
        if not batch:
            break  # the band holds no unseen arch near the parents
        score(batch)
        file(batch)
    return out


def _parents(bins: dict[int, list[dict]], n: int) -> list[dict]:
    """The best ``n`` archs by predicted accuracy, drawn evenly from the FLOPs bins (a bin with
    fewer candidates leaves its share to the others); earlier candidates first among ties."""
    ranked = [sorted(b, key=lambda r: -r["predicted"])[:n] for _, b in sorted(bins.items())]
    picked: list[dict] = []
    depth = 0
    while len(picked) < n and any(depth < len(b) for b in ranked):
        for b in ranked:
            if depth < len(b) and len(picked) < n:
                picked.append(b[depth])
        depth += 1
    return [r["arch"] for r in picked]


def thin_front(candidates: list[dict], n: int) -> list[dict]:
    """The Pareto front (predicted accuracy against FLOPs), thinned to ``n`` archs evenly spread
    along it (its two ends always kept)."""
    front = pareto_front(candidates, cost=lambda r: r["flops"], score=lambda r: r["predicted"])
    if len(front) <= n:
        return front
    keep = sorted({round(i * (len(front) - 1) / (n - 1)) for i in range(n)}) if n > 1 else [len(front) - 1]
    return [front[i] for i in keep]


# ---------------------------------------------------------------------------------------------- driver
@attrs.define
class PredictorSearch:
    """What a predictor-guided search produced: the measured records (``{"arch", "score", "params",
    "flops", "generation"}``, as :class:`spacelang.search.evolution.SearchResult` holds them), the
    fit report, the predicted front with measured accuracies, and timings."""

    history: list[dict]
    fit: dict
    front: list[dict]
    candidates: int
    seconds: dict

    def report(self) -> dict:
        """JSON of the fit, the front (predicted vs measured) and the timings."""
        return {"fit": self.fit, "front": self.front, "candidates": self.candidates, "seconds": self.seconds,
                "front_tau": kendall_tau([r["predicted"] for r in self.front], [r["measured"] for r in self.front]),
                "front_rmse": math.sqrt(sum((r["predicted"] - r["measured"]) ** 2 for r in self.front)
                                        / max(len(self.front), 1))}


def run_predictor_search(space, measure: Callable[[list], Sequence[float]], cfg: PredictorConfig | None = None, *,
                         seed: int = 0, bounds: Bounds | None = None, random_state_path: str | None = None,
                         record: Callable[[list[dict]], None] | None = None, write_state: bool = True,
                         latency=None, log: Callable[[str], None] = lambda s: None) -> PredictorSearch:
    """Algorithm 2 end to end (see the module docstring).  ``measure(archs)`` returns accuracies
    (cached by the caller, so a resumed search does not measure an arch twice); ``record(rows)``
    receives the predicted candidates (``{"arch", "predicted_accuracy", "params", "flops",
    "generation", "source": "predicted"}``) before the front is measured; ``latency`` is a latency
    predictor for bounds on latency."""
    cfg = cfg or PredictorConfig()
    t0 = time.perf_counter()
    sampled = random_search(space, measure, cfg.samples, seed=seed, bounds=bounds, state_path=random_state_path,
                            resume=True, write_state=write_state, latency=latency)
    measured = [r for r in sampled.history if r["score"] is not None]
    t1 = time.perf_counter()
    predictor, fit = fit_predictor(space, [r["arch"] for r in measured], [r["score"] for r in measured],
                                   trees=cfg.trees, seed=seed)
    log(f"predictor: random forest of {cfg.trees} trees on {fit['train']} subnets; held-out "
        f"({fit['held_out']}) Kendall tau {fit['tau']:.3f}, RMSE {fit['rmse']:.2f} points")
    t2 = time.perf_counter()
    candidates = predicted_evolution(space, predictor.predict, cfg, seed=seed, bounds=bounds,
                                     exclude=[r["arch"] for r in measured], latency=latency)
    t3 = time.perf_counter()
    log(f"predicted evolution: {len(candidates)} candidates in {t3 - t2:.1f} s")
    if record is not None:
        record([{"arch": r["arch"], "predicted_accuracy": r["predicted"], "params": r["params"],
                 "flops": r["flops"], "generation": r["generation"], "source": "predicted"} for r in candidates])
    front = thin_front(candidates, cfg.front)
    accs = list(measure([r["arch"] for r in front])) if front else []
    t4 = time.perf_counter()
    gen = (max(r["generation"] for r in sampled.history) + 1) if sampled.history else 0
    history = measured + [{"arch": r["arch"], "score": float(a), "params": r["params"], "flops": r["flops"],
                           "generation": gen} for r, a in zip(front, accs)]
    front_rows = [{"arch": r["arch"], "params": r["params"], "flops": r["flops"], "predicted": r["predicted"],
                   "measured": float(a)} for r, a in zip(front, accs)]
    return PredictorSearch(history, fit, front_rows, len(candidates),
                           {"sample": t1 - t0, "fit": t2 - t1, "evolution": t3 - t2, "front": t4 - t3})


__all__ = ["INACTIVE", "PredictorConfig", "AccuracyPredictor", "PredictorSearch", "feature_names", "encode",
           "kendall_tau", "fit_predictor", "predicted_evolution", "thin_front", "run_predictor_search"]
