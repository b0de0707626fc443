"""Exact counting of a space's distinct subnets (archs), without enumerating them.

A dimension used by something every arch has multiplies the count once.  Block-local
dimensions multiply their block's configurations; a depth or an optional block's gate sums over
its choices.  A ``let`` shared by several blocks of one or more stages (a conditional dimension:
active only when one of its blocks is) is counted with a subset DP: each stage's configurations
are tallied by *which* shared dimensions they activate, and the sets are combined across stages,
so a shared dimension is counted once however many of its blocks run.
"""
from __future__ import annotations

from collections import defaultdict

from .ir import Ref


def count_archs(space) -> int:
    """The number of distinct archs of ``space`` (each gated block counted once)."""
    always = 1
    local: dict[tuple, int] = defaultdict(lambda: 1)       # (stage, block) -> its own configurations
    slot_shared: dict[tuple, frozenset] = defaultdict(frozenset)  # (stage, block) -> shared dims it uses
    for d in space.dims:
        if space.is_gate(d.path):
            continue
        uses = space.uses(d.path)
        if any(u.always for u in uses):
            always *= d.size
        elif len(uses) == 1:
            u = next(iter(uses))
            local[(u.stage, u.block)] *= d.size
        else:
            for u in uses:
                slot_shared[(u.stage, u.block)] |= {d.path}
    total_by_set: dict[frozenset, int] = {frozenset(): 1}
    for si, st in enumerate(space.stages):
        if isinstance(st.depth, Ref):
            depths = space.dim(st.depth.path).choices
        else:
            depths = (st.depth.value,) if st.depth is not None else (len(st.blocks),)
        stage_by_set: dict[frozenset, int] = defaultdict(int)
        states: dict[frozenset, int] = {frozenset(): 1}
        for bi in range(max(depths) + 1):
            if bi in depths:
                for s, n in states.items():
                    stage_by_set[s] += n
            if bi == len(st.blocks):
                break
            b = st.blocks[bi]
            key = (si, bi)
            new: dict[frozenset, int] = defaultdict(int)
            for s, n in states.items():
                if b.optional:
                    new[s] += n
                new[s | slot_shared[key]] += n * local[key]
            states = new
        combined: dict[frozenset, int] = defaultdict(int)
        for s1, n1 in total_by_set.items():
            for s2, n2 in stage_by_set.items():
                combined[s1 | s2] += n1 * n2
        total_by_set = combined
    total = 0
    for s, n in total_by_set.items():
        for p in s:
            n *= space.dim(p).size
        total += n
    return always * total


__all__ = ["count_archs"]
