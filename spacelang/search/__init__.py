"""Search over spaces: samplers, resource bands, evolution, random search, Pareto fronts.

Pure Python (no torch); every sampler and search takes a seed or a seeded ``random.Random``.
See docs/search.md for the protocols, the presets and the constrained sampler's distribution.
"""
from .costcache import CostCache
from .evolution import (PRESETS, EvolutionConfig, SearchResult, crossover, mutate, random_search, run_evolution)
from .pareto import front_of_records, pareto_front, pareto_front_n
from .sampling import ConstrainedSampler, SandwichSampler, UniformSampler, sampler_for
from .where import Bounds, InfeasibleError, Interval, WhereError
# S3 space evolution (Alg. 1): `evolve_space` rewrites a space, `run_evolution` above searches archs in one
from .et_error import et_errors, subspaces
from .rewrite import rewrite as rewrite_choices
from .s3_evolve import S3_STEPS, Evolution, SubspaceUpdate
from .s3_evolve import evolve_space
from .s3_loop import run_s3

__all__ = [
    "Bounds", "Interval", "WhereError", "InfeasibleError",
    "UniformSampler", "SandwichSampler", "ConstrainedSampler", "sampler_for", "CostCache",
    "EvolutionConfig", "PRESETS", "SearchResult", "run_evolution", "random_search", "mutate", "crossover",
    "pareto_front", "pareto_front_n", "front_of_records",
    "evolve_space", "Evolution", "SubspaceUpdate", "S3_STEPS", "subspaces", "et_errors", "run_s3", "rewrite_choices",
]
