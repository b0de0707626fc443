"""Exact arch cost with per-layer memoisation: the samplers' and evolution's hot path.

``spacelang.cost.cost(space, arch)`` validates the arch, evaluates every field expression and
normalises every layer — about 200 µs for an AutoFormer-S arch, most of it re-normalising layers
whose inputs did not change.  A layer's normalised fields, and so its cost and its output width
and map size, are a function of the values of the dimensions its field expressions reference and
of its context (input width, stage width, input map size, class token).  :class:`CostCache` keys
each layer's ``(params, flops, out dim, out size)`` by exactly those, and walks the network the
way :meth:`spacelang.Space.resolve` does, so a cached cost is the same integer pair as
``spacelang.cost.cost`` (``tests/test_sampling.py`` holds them equal on every bundled space).
"""
from __future__ import annotations

import operator
from typing import Any, Mapping, NamedTuple

from .. import kinds as K
from ..cost import Cost
from ..errors import ArchError, EvalError, FieldError
from ..fields import head_has_cls, normalize
from ..cases import layer_refs
from ..kinds.base import Context
from ..walk import Role, Slot

MAX_ENTRIES = 500_000  # per-layer entries; cleared beyond this so memory stays bounded


class LayerEntry(NamedTuple):
    """One layer's memoised cost and output shape."""

    params: int
    flops: int
    dim: int
    size: int


class CostCache:
    """``cache(arch) -> Cost`` for canonical archs of ``space`` (exact, memoised per layer).

    The arch is not validated (callers hold canonical archs: sampled, or re-canonicalised by
    ``space.validate``); use ``spacelang.cost.cost`` for untrusted input.
    """

    def __init__(self, space, convention: str = "fvcore"):
        from ..kinds.counting import CONVENTIONS
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown counting convention {convention!r}")
        self.space = space
        self.convention = convention
        self._memo: dict[tuple, LayerEntry] = {}
        self._cls: dict[tuple, bool] = {}
        #: slot number -> the dimension paths its fields reference (part of its memo key)
        self._refs: list[tuple[str, ...]] = [tuple(sorted(layer_refs(s.layer))) for s in space.slots]
        # the values a slot's key needs, read from an arch in C (itemgetter) — the hot path
        self._values = [_getter(r) for r in self._refs]
        self._head_refs = self._refs[space.slots[-1].number]
        #: (stage index, block index) -> slot number of that block
        self.block_slot: dict[tuple[int, int], int] = {
            (s.stage, s.index): s.number for s in space.slots if s.role is Role.BLOCK}

    def __call__(self, arch: Mapping[str, Any]) -> Cost:
        try:
            return self._cost(arch)
        except (FieldError, EvalError) as e:
            raise ArchError(None, f"arch is not buildable: {e.message}") from None
        except KeyError as e:
            raise ArchError(e.args[0], "missing from the arch") from None

    def layer_refs(self, slot: int) -> tuple[str, ...]:
        """The dimension paths a layer's fields reference."""
        return self._refs[slot]

    def layer_cost(self, slot: int, ctx: Context, env: Mapping[str, Any]) -> tuple[int, int]:
        """(params, flops) of one layer (slot number) in context ``ctx`` under ``env``."""
        e = self._entry(self.space.slots[slot], ctx, env)
        return e.params, e.flops

    def block_contexts(self, env: Mapping[str, Any]) -> dict[tuple[int, int], Context]:
        """``(stage, block) -> Context`` of every active block of ``env``."""
        return {(s.stage, s.index): ctx for s, ctx, _ in self._walk(env) if s.role is Role.BLOCK}

    def _entry(self, slot: Slot, ctx: Context, env: Mapping[str, Any]) -> LayerEntry:
        key = (slot.number, ctx, self._values[slot.number](env))
        hit = self._memo.get(key)
        if hit is None:
            f = normalize(slot.layer, env, ctx)
            kind = K.get(slot.layer.kind)
            if kind is None or kind.cost is None:
                raise ValueError(f"no cost model for layer kind {slot.layer.kind!r}")
            p, fl = kind.cost(f, self.convention)
            hit = LayerEntry(p, fl, f.dim, f.size)
            if len(self._memo) >= MAX_ENTRIES:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    def _walk(self, env: Mapping[str, Any]):
        hk = tuple([env[p] for p in self._head_refs])
        cls = self._cls.get(hk)
        if cls is None:
            cls = self._cls[hk] = head_has_cls(self.space.head, env)
        memo, values = self._memo, self._values

        def visit(slot: Slot, ctx: Context) -> LayerEntry:
            n = slot.number
            hit = memo.get((n, ctx, values[n](env)))
            return hit if hit is not None else self._entry(slot, ctx, env)
        return self.space.walk(env, visit, cls_token=cls)

    def _cost(self, env) -> Cost:
        params = flops = 0
        for _, _, e in self._walk(env):
            params += e.params
            flops += e.flops
        return Cost(params, flops)


def _getter(paths: tuple[str, ...]):
    """A function of an arch returning the values of ``paths`` (one value, a tuple, or ())."""
    if not paths:
        return lambda env: ()
    return operator.itemgetter(*paths)


__all__ = ["CostCache", "LayerEntry"]
