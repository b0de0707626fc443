"""Editing canonical archs: set a dimension, grow or shrink a stage, re-complete.

An arch holds exactly its active dimensions.  Changing a *gate* (a stage depth, an optional
block's presence) changes which dimensions are active: :func:`complete` keeps every value that
is still active, drops the rest and draws the newly active ones uniformly (a grown stage's new
blocks get sampled values), so the result is again a canonical arch.
"""
from __future__ import annotations

import random
from typing import Any, Mapping


def gate_paths(space) -> list[str]:
    """Dimensions that switch blocks on and off: stage depths, then optional blocks' presence."""
    return [d.path for d in space.gates]


def complete(space, partial: Mapping[str, Any], rng: random.Random) -> dict:
    """The canonical arch that keeps ``partial``'s values where they are active and draws every
    other active dimension uniformly (gates first, as ``space.sample`` does)."""
    gates = {}
    for p in gate_paths(space):
        if p in partial:
            gates[p] = partial[p]
        else:
            d = space.dim(p)
            gates[p] = d.choices[rng.randrange(d.size)]
    out = {}
    for p in space.active_paths(gates):
        if p in partial:
            out[p] = partial[p]
        elif p in gates:
            out[p] = gates[p]
        else:
            d = space.dim(p)
            out[p] = d.choices[rng.randrange(d.size)]
    return dict(sorted(out.items()))


def with_value(space, arch: Mapping[str, Any], path: str, value, rng: random.Random, gates) -> dict:
    """``arch`` with one dimension set to ``value``, re-completed when ``path`` is in ``gates``."""
    out = dict(arch)
    out[path] = value
    if path in gates:
        return complete(space, out, rng)
    return out


__all__ = ["gate_paths", "complete", "with_value"]
