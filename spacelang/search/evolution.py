"""Evolutionary search over a space (AutoFormer/SPOS, S3, ViT-ResNAS) and its random baseline.

Protocol (every preset):

1. Draw ``population`` distinct archs from the constrained sampler (the space's constraints and
   the search's band) and evaluate them.
2. For ``generations`` generations: pick the ``parents`` best archs (of every arch evaluated so
   far, as SPOS's top-k and ViT-ResNAS's growing population do; ``parent_pool="generation"``
   picks from the last generation only), breed ``mutations`` children by mutation and
   ``crossovers`` by crossover, evaluate them.
3. The best arch evaluated is the result; the history gives its Pareto front.

Budget: ``population + generations × (mutations + crossovers)`` evaluations (fewer when the space
runs out of distinct in-band archs).

*Mutation* (AutoFormer §3.3, S3 Alg. 3, ViT-ResNAS §2.3): every depth gate (a stage's depth, an
optional block's presence) changes with probability ``p_depth``, then the stage widths with
``p_embed``, then every other active dimension with ``p_mutate``.  A change picks a *different*
choice uniformly.  A grown stage's new blocks get sampled values; a shrunk stage drops its
last blocks.  *Crossover* takes each dimension (``crossover="dim"``) or each block's dimensions
together (``"block"``, S3: "uniformly choose one block from them in each layer") from one of
two random parents.  Children are re-canonicalised by ``space.validate``; a child outside the
band, or already evaluated, or already bred this generation, is redrawn (``max_tries`` times,
then the constrained sampler supplies a fresh arch).

The evaluator is a batched callback ``evaluate(list[arch]) -> list[float]`` (accuracy, higher is
better).  After every generation the whole state — history, next generation, generation count,
RNG and sampler state — is written atomically as JSON to ``state_path``; a run started again
with the same arguments resumes from it and ends with the same history and best arch.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
from typing import Any, Callable, Mapping, Sequence

import attrs

from ..errors import SearchError
from ..ir import Origin
from .archops import complete, gate_paths
from .pareto import front_of_records
from .sampling import ConstrainedSampler
from .where import Bounds
from ..util.archkey import arch_json
from ..util.atomic import write_json
from ..util.rngstate import rng_from_json, rng_to_json

Evaluator = Callable[[list], Sequence[float]]
STATE_VERSION = 1


@attrs.frozen
class EvolutionConfig:
    """Settings of the evolutionary search (defaults: AutoFormer, §4.1, with SPOS's children)."""

    population: int = attrs.field(default=50, validator=attrs.validators.ge(1))   # P0: initial archs
    generations: int = attrs.field(default=20, validator=attrs.validators.ge(0))  # T: bred generations
    parents: int = attrs.field(default=10, validator=attrs.validators.ge(1))      # top-k
    mutations: int = attrs.field(default=25, validator=attrs.validators.ge(0))    # children / generation
    crossovers: int = attrs.field(default=25, validator=attrs.validators.ge(0))
    p_depth: float = attrs.field(default=0.2, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
    p_embed: float = attrs.field(default=0.4, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
    p_mutate: float = attrs.field(default=0.4, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
    crossover: str = attrs.field(default="dim", validator=attrs.validators.in_(("dim", "block")))
    parent_pool: str = attrs.field(default="history", validator=attrs.validators.in_(("history", "generation")))
    max_tries: int = attrs.field(default=20, validator=attrs.validators.ge(1))

    @property
    def budget(self) -> int:
        """Evaluations of a full run."""
        return self.population + self.generations * (self.mutations + self.crossovers)

    def to_json(self) -> dict:
        return attrs.asdict(self)


def autoformer() -> EvolutionConfig:
    """AutoFormer §4.1 (SPOS protocol): population 50, 20 generations, top 10 parents,
    P_d = 0.2, P_m = 0.4; 25 mutation and 25 crossover children per generation (SPOS's N/2 each —
    AutoFormer's text gives no split).  Stage widths mutate with P_m (the paper names no P_e)."""
    return EvolutionConfig()


def s3() -> EvolutionConfig:
    """S3 Appendix A, Alg. 3: as AutoFormer, with P_e = 0.2 for each stage's width and
    block-wise crossover."""
    return EvolutionConfig(p_depth=0.2, p_embed=0.2, p_mutate=0.4, crossover="block")


def vit_resnas() -> EvolutionConfig:
    """ViT-ResNAS §3.1: T = 20, 75 parents, P0 = 500, 150 children (half by mutation, half by
    crossover, §2.3), every architectural parameter mutates with p = 0.3, crossover per parameter."""
    return EvolutionConfig(population=500, generations=20, parents=75, mutations=75, crossovers=75,
                           p_depth=0.3, p_embed=0.3, p_mutate=0.3, crossover="dim")


PRESETS: dict[str, Callable[[], EvolutionConfig]] = {"autoformer": autoformer, "s3": s3, "vit-resnas": vit_resnas}


# ------------------------------------------------------------------------------ operators
def dim_class(space, path: str) -> str:
    """``depth`` (a depth or presence gate), ``embed`` (a stage width) or ``other``."""
    d = space.dim(path)
    if space.is_gate(path):
        return "depth"
    if d.origin is Origin.DIM:
        return "embed"
    return "other"


def _other(d, value, rng: random.Random):
    """A choice of ``d`` other than ``value``, uniformly (``value`` itself when it is the only one)."""
    if d.size < 2:
        return value
    i = d.choices.index(value)
    j = rng.randrange(d.size - 1)
    return d.choices[j + (j >= i)]


def mutate(space, arch: Mapping[str, Any], rng: random.Random, cfg: EvolutionConfig) -> dict:
    """Mutation as the module docstring describes; returns a canonical arch."""
    out = dict(arch)
    for p in gate_paths(space):
        if p in out and rng.random() < cfg.p_depth:
            out[p] = _other(space.dim(p), out[p], rng)
    out = complete(space, out, rng)
    for cls, prob in (("embed", cfg.p_embed), ("other", cfg.p_mutate)):
        for d in space.dims:
            if d.path in out and dim_class(space, d.path) == cls and rng.random() < prob:
                out[d.path] = _other(d, out[d.path], rng)
    return space.validate(out)


def crossover(space, a: Mapping[str, Any], b: Mapping[str, Any], rng: random.Random, mode: str = "dim") -> dict:
    """A child taking each dimension (``dim``) or each block (``block``) from ``a`` or ``b``."""
    parents = (a, b)
    slot_pick: dict[tuple, int] = {}
    out: dict[str, Any] = {}
    for d in space.dims:
        p = d.path
        have = [i for i in (0, 1) if p in parents[i]]
        if not have:
            continue
        if mode == "block" and d.block is not None and d.stage is not None:
            key = (d.stage, d.block)
            if key not in slot_pick:
                slot_pick[key] = rng.randrange(2)
            i = slot_pick[key]
        else:
            i = rng.randrange(2)
        out[p] = parents[i if i in have else have[0]][p]
    return space.validate(complete(space, out, rng))


# ------------------------------------------------------------------------------ results
@attrs.define
class SearchResult:
    """Every evaluated arch in order (``history``: ``{"arch", "score", "params", "flops",
    "generation"}``), the best one, and how many generations were evaluated."""

    history: list[dict]
    generations: int

    @property
    def best(self) -> dict | None:
        """The record with the highest score (the earliest among ties)."""
        best = None
        for r in self.history:
            if best is None or _key(r["score"]) > _key(best["score"]):
                best = r
        return best

    def pareto(self, metric: str = "params") -> list[dict]:
        """Records on the accuracy / ``metric`` Pareto front, by increasing ``metric``."""
        return front_of_records(self.history, metric)

    def best_per_generation(self) -> list[float]:
        """The best score seen up to and including each generation (convergence curve)."""
        out, best, g = [], -math.inf, 0
        for r in self.history:
            while r["generation"] > g:
                out.append(best)
                g += 1
            best = max(best, _key(r["score"]))
        out.append(best)
        return out


def _key(score) -> float:
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return -math.inf
    return float(score)


# ------------------------------------------------------------------------------ state
def save_state(path: str, state: Mapping[str, Any]) -> None:
    """Write the search state as one JSON line, atomically (:mod:`spacelang.util.atomic`)."""
    write_json(path, state, indent=None)


def load_state(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ------------------------------------------------------------------------------ the search
class _Run:
    """Shared machinery of evolution and random search: state, evaluation, persistence."""

    kind = ""

    def __init__(self, space, evaluate: Evaluator, *, seed: int, bounds: Bounds | None,
                 state_path: str | None, resume: bool, settings: dict, on_generation=None,
                 write_state: bool = True, latency=None):
        self.space = space
        self.evaluate = evaluate
        self.state_path = state_path
        self.write_state = write_state
        self.on_generation = on_generation
        self.rng = random.Random(seed)
        self.sampler = ConstrainedSampler(space, self.rng, bounds, latency=latency)
        self.identity = {"kind": self.kind, "space": space.name,
                         "space_sha256": hashlib.sha256(space.source.encode()).hexdigest(),
                         "seed": seed, "band": str(self.sampler.bounds), "settings": settings}
        self.history: list[dict] = []
        self.seen: set[str] = set()
        self.generation = 0
        self.pending: list[dict] = []
        self.done = False
        loaded = load_state(state_path) if (state_path and resume) else None
        if loaded is not None:
            self._restore(loaded)
        else:
            self.pending = self.first()
            self._save()

    # -- persistence
    def _restore(self, st: dict) -> None:
        if st.get("version") != STATE_VERSION or st.get("identity") != self.identity:
            raise SearchError(f"{self.state_path} holds the state of a different search "
                             f"(space, seed, band or settings differ); remove it or pass another path")
        self.history = st["history"]
        self.seen = {arch_json(r["arch"]) for r in self.history}
        self.generation = st["generation"]
        self.pending = st["pending"]
        self.seen |= {arch_json(a) for a in self.pending}
        self.done = st["done"]
        rng_from_json(st["rng"], self.rng)
        self.sampler.load_state(st["sampler"])

    def _save(self) -> None:
        if not self.state_path or not self.write_state:
            return
        save_state(self.state_path, {
            "version": STATE_VERSION, "identity": self.identity, "generation": self.generation,
            "done": self.done, "pending": self.pending, "history": self.history,
            "rng": rng_to_json(self.rng), "sampler": self.sampler.state()})

    # -- steps
    def fresh(self, n: int, out: list[dict], tries: int) -> None:
        """Append up to ``n`` archs from the constrained sampler, none seen before."""
        for _ in range(n):
            for _ in range(tries):
                a = self.sampler.sample()
                k = arch_json(a)
                if k not in self.seen:
                    self.seen.add(k)
                    out.append(a)
                    break

    def first(self) -> list[dict]:
        raise NotImplementedError

    def breed(self) -> list[dict]:
        raise NotImplementedError

    def last_generation(self) -> int:
        raise NotImplementedError

    def run(self) -> SearchResult:
        while not self.done:
            batch = self.pending
            if batch:
                scores = list(self.evaluate([dict(a) for a in batch]))
                if len(scores) != len(batch):
                    raise ValueError(f"evaluate returned {len(scores)} scores for {len(batch)} archs")
                for a, s in zip(batch, scores):
                    c = self.sampler.cost(a)
                    self.history.append({"arch": a, "score": None if s is None else float(s),
                                         "params": c.params, "flops": c.flops, "generation": self.generation})
            if self.on_generation is not None:
                self.on_generation(self.generation, self.history)
            self.generation += 1
            if self.generation > self.last_generation() or not batch:
                self.pending, self.done = [], True
            else:
                self.pending = self.breed()
            self._save()
        return SearchResult(self.history, self.generation)


class _Evolution(_Run):
    kind = "evolution"

    def __init__(self, space, evaluate, cfg: EvolutionConfig, **kw):
        self.cfg = cfg
        super().__init__(space, evaluate, settings=cfg.to_json(), **kw)

    def first(self) -> list[dict]:
        out: list[dict] = []
        self.fresh(self.cfg.population, out, self.cfg.max_tries)
        return out

    def last_generation(self) -> int:
        return self.cfg.generations

    def parents(self) -> list[dict]:
        pool = self.history
        if self.cfg.parent_pool == "generation":
            pool = [r for r in self.history if r["generation"] == self.generation - 1]
        # stable sort: among equal scores the earlier evaluated arch ranks first
        ranked = sorted(pool, key=lambda r: -_key(r["score"]))
        return [r["arch"] for r in ranked[: self.cfg.parents]]

    def breed(self) -> list[dict]:
        cfg, rng, space = self.cfg, self.rng, self.space
        parents = self.parents()
        out: list[dict] = []

        def child_by_mutation():
            return mutate(space, parents[rng.randrange(len(parents))], rng, cfg)

        def child_by_crossover():
            a = parents[rng.randrange(len(parents))]
            b = parents[rng.randrange(len(parents))]
            return crossover(space, a, b, rng, cfg.crossover)

        for make, n in ((child_by_mutation, cfg.mutations), (child_by_crossover, cfg.crossovers)):
            for _ in range(n):
                for _ in range(cfg.max_tries):
                    child = make()
                    k = arch_json(child)
                    if k not in self.seen and self.sampler.in_band(child):
                        self.seen.add(k)
                        out.append(child)
                        break
                else:
                    self.fresh(1, out, cfg.max_tries)
        return out


class _RandomSearch(_Run):
    kind = "random"

    def __init__(self, space, evaluate, budget: int, batch: int, **kw):
        self.budget, self.batch = budget, batch
        super().__init__(space, evaluate, settings={"budget": budget, "batch": batch}, **kw)

    def first(self) -> list[dict]:
        out: list[dict] = []
        self.fresh(min(self.batch, self.budget), out, 20)
        return out

    def last_generation(self) -> int:
        return math.ceil(self.budget / self.batch) - 1

    def breed(self) -> list[dict]:
        out: list[dict] = []
        self.fresh(min(self.batch, self.budget - len(self.history)), out, 20)
        return out


def run_evolution(space, evaluate: Evaluator, config: EvolutionConfig | None = None, *, seed: int = 0,
                  bounds: Bounds | None = None, state_path: str | None = None, resume: bool = True,
                  on_generation: Callable[[int, list], None] | None = None, write_state: bool = True,
                  latency=None) -> SearchResult:
    """Run (or resume, from ``state_path``) an evolutionary search; see the module docstring.

    ``bounds`` adds a band (e.g. ``Bounds.parse("params<=23M")``) to the space's constraints.
    ``on_generation(generation, history)`` is called after each generation is evaluated.
    ``write_state=False`` reads ``state_path`` but never writes it (the other ranks of a
    distributed search: rank 0 alone writes).  ``latency(arch) -> ms`` (a
    :class:`spacelang.latency.LatencyPredictor`) lets the bounds hold ``latency``.
    """
    return _Evolution(space, evaluate, config or EvolutionConfig(), seed=seed, bounds=bounds,
                      state_path=state_path, resume=resume, on_generation=on_generation,
                      write_state=write_state, latency=latency).run()


def random_search(space, evaluate: Evaluator, budget: int, *, seed: int = 0, bounds: Bounds | None = None,
                  batch: int = 50, state_path: str | None = None, resume: bool = True,
                  on_generation: Callable[[int, list], None] | None = None, write_state: bool = True,
                  latency=None) -> SearchResult:
    """The random-search baseline: ``budget`` distinct archs from the constrained sampler,
    evaluated ``batch`` at a time (each batch is a "generation" in the history)."""
    if budget < 1 or batch < 1:
        raise ValueError("random search needs budget >= 1 and batch >= 1")
    return _RandomSearch(space, evaluate, budget, batch, seed=seed, bounds=bounds, state_path=state_path,
                         resume=resume, on_generation=on_generation, write_state=write_state,
                         latency=latency).run()


__all__ = ["EvolutionConfig", "SearchResult", "PRESETS", "autoformer", "s3", "vit_resnas", "run_evolution",
           "random_search", "mutate", "crossover", "dim_class", "save_state", "load_state"]
