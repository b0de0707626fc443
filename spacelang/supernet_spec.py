"""The supernet's spec: every block slot present, every numeric field at its largest value.

The compiler allocates each weight once, at its largest size, so each layer slot's spec is the
field-wise maximum of its normalised layers over every situation the slot can meet (the same
enumeration the checker runs: :func:`spacelang.cases.layer_cases`).  Booleans are or-ed (a
feature any arch uses must have its weights); other fields keep the first value seen.
"""
from __future__ import annotations

from typing import Any

import attrs

from .cases import layer_cases
from .ir import evaluate, refs
from .netspec import Layer, NetSpec, StageSpec
from .walk import Role


def _as_dict(f) -> dict[str, Any]:
    return attrs.asdict(f, recurse=False) if attrs.has(type(f)) else dict(f)


def _merge(cur: dict, new: dict) -> None:
    for k, v in new.items():
        old = cur.get(k)
        if isinstance(v, bool) or isinstance(old, bool):
            cur[k] = bool(old) or bool(v)
        elif isinstance(v, (int, float)) and isinstance(old, (int, float)):
            cur[k] = max(old, v)


def supernet_spec(space) -> NetSpec:
    """The :class:`~spacelang.netspec.NetSpec` whose layers hold each slot's largest fields."""
    from .fields import normalize
    largest: dict[int, dict] = {}
    types: dict[int, type] = {}

    def visit(slot, ctx, env):
        f = normalize(slot.layer, env, ctx)
        d = _as_dict(f)
        if slot.number in largest:
            _merge(largest[slot.number], d)
        else:
            largest[slot.number], types[slot.number] = d, type(f)
        return f

    layer_cases(space, visit)

    def layer(slot) -> Layer:
        d = largest[slot.number]
        f = types[slot.number](**d) if attrs.has(types[slot.number]) else d
        return Layer(slot.layer.kind, f, slot.index)

    stem = head = None
    stages: list[list] = [[None, []] for _ in space.stages]
    for slot in space.slots:
        if slot.role is Role.STEM:
            stem = layer(slot)
        elif slot.role is Role.HEAD:
            head = layer(slot)
        elif slot.role is Role.DOWNSAMPLE:
            stages[slot.stage][0] = layer(slot)
        else:
            stages[slot.stage][1].append(layer(slot))
    specs = tuple(StageSpec(st.name, max(b.fields.dim for b in blocks), trans, tuple(blocks))
                  for st, (trans, blocks) in zip(space.stages, stages))
    res_refs = refs(space.resolution)
    res = max(space.dim(p).hi for p in res_refs) if res_refs else evaluate(space.resolution, {})
    return NetSpec(space.channels, res, space.classes, stem, specs, head)


__all__ = ["supernet_spec"]
