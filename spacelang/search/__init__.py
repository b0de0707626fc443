"""Search over spaces: samplers, resource bands, evolution, random search, Pareto fronts.

Pure Python (no torch); every sampler and search takes a seed or a seeded ``random.Random``.
See docs/search.md for the protocols, the presets and the constrained sampler's distribution.

The names below are loaded on first use (PEP 562), so importing one submodule — the checker
needs ``where``, ``Space.cost_range`` the cost cache — does not import every search algorithm:
``spacelang check`` stays a fraction of a second.
"""
from __future__ import annotations

import importlib

#: public name -> (submodule, attribute)
_EXPORTS = {
    "CostCache": ("costcache", "CostCache"),
    "PRESETS": ("evolution", "PRESETS"), "EvolutionConfig": ("evolution", "EvolutionConfig"),
    "SearchResult": ("evolution", "SearchResult"), "crossover": ("evolution", "crossover"),
    "mutate": ("evolution", "mutate"), "random_search": ("evolution", "random_search"),
    "run_evolution": ("evolution", "run_evolution"),
    "front_of_records": ("pareto", "front_of_records"), "pareto_front": ("pareto", "pareto_front"),
    "pareto_front_n": ("pareto", "pareto_front_n"),
    "ConstrainedSampler": ("sampling", "ConstrainedSampler"), "SandwichSampler": ("sampling", "SandwichSampler"),
    "UniformSampler": ("sampling", "UniformSampler"), "sampler_for": ("sampling", "sampler_for"),
    "Bounds": ("where", "Bounds"), "InfeasibleError": ("where", "InfeasibleError"),
    "Interval": ("where", "Interval"), "WhereError": ("where", "WhereError"),
    # S3 space evolution (Alg. 1): `evolve_space` rewrites a space, `run_evolution` searches archs in one
    "et_errors": ("et_error", "et_errors"), "subspaces": ("et_error", "subspaces"),
    "rewrite_choices": ("rewrite", "rewrite"),
    "S3_STEPS": ("s3_evolve", "S3_STEPS"), "Evolution": ("s3_evolve", "Evolution"),
    "SubspaceUpdate": ("s3_evolve", "SubspaceUpdate"), "evolve_space": ("s3_evolve", "evolve_space"),
    "run_s3": ("s3_loop", "run_s3"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
