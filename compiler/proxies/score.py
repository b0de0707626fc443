"""Score archs with proxies: the mean over several randomly initialised networks.

Init ``i`` of seed ``s`` draws its weights, its plane and its batch from seeds derived from
``(s, i)`` only, so a score depends on the arch, the proxy settings and the seed — never on what
was scored before it.  As-ViT's released code averages L_E over 5 random initialisations; we do
the same for every proxy (the same 5 networks serve L_E and κ).
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Any, Mapping, Sequence

import torch

from .network import build_network, features
from .registry import Proxy

INITS = 5


def init_seed(seed: int, i: int) -> int:
    """The seed of init ``i`` of a score with ``seed`` (distinct for small values, 63 bits)."""
    return (int(seed) * 1_000_003 + 7919 * int(i) + 104_729) % (2 ** 63)


def score_arch(space, arch: Mapping[str, Any], proxies: Sequence[Proxy], seed: int = 0, inits: int = INITS,
               norms: str | Mapping[str, str] = "identity",
               options: Mapping[str, Mapping[str, Any]] | None = None) -> dict:
    """``{proxy name: mean score, …, "values": {name: [per init]}, "cv": {name: std/mean}, "seconds": s}``.

    ``norms`` is one setting for every proxy or a mapping proxy name → setting (``"identity"``
    where a proxy is not named); the networks of one init have the same weights either way.
    ``options`` maps a proxy name to extra keyword arguments of its function (``angles``,
    ``batch``, ``radius``, ``params``).  The space validates the arch
    (:class:`~spacelang.errors.ArchError` otherwise).
    """
    arch = space.validate(arch)
    options = options or {}
    per_proxy = {p.name: (norms if isinstance(norms, str) else norms.get(p.name, "identity")) for p in proxies}
    values: dict[str, list[float]] = {p.name: [] for p in proxies}
    start = time.perf_counter()
    for i in range(inits):
        s = init_seed(seed, i)
        nets = {n: features(build_network(space, arch, s), n) for n in dict.fromkeys(per_proxy.values())}
        for k, p in enumerate(proxies):
            g = torch.Generator().manual_seed(s + k + 1)
            values[p.name].append(p.fn(nets[per_proxy[p.name]], space.input_shape(arch), g,
                                       **options.get(p.name, {})))
    out: dict[str, Any] = {p.name: statistics.fmean(values[p.name]) for p in proxies}
    out["values"] = values
    out["cv"] = {n: _cv(v) for n, v in values.items()}
    out["seconds"] = time.perf_counter() - start
    return out


def _cv(v: Sequence[float]) -> float | None:
    if len(v) < 2:
        return None
    m = statistics.fmean(v)
    return statistics.stdev(v) / abs(m) if m and math.isfinite(m) else None


__all__ = ["score_arch", "init_seed", "INITS"]
