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

from typing import Any, Mapping

from .. import kinds as K
from ..cost import Cost
from ..diagnostics import ArchError
from ..fields import FieldError, head_has_cls, normalize
from ..ir import EvalError, evaluate, refs
from ..kinds.base import Context, FieldError

MAX_ENTRIES = 500_000  # per-layer entries; cleared beyond this so memory stays bounded


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
        self._memo: dict[tuple, tuple[int, int, int, int]] = {}
        self._cls: dict[tuple, bool] = {}
        # every layer gets a slot number; its memo key is (slot, in_dim, dim, in_size, cls, *dim values)
        self._layers = []
        self._refs: list[tuple[str, ...]] = []
        self._head = self._add(space.head, 0)
        self._stem = self._add(space.stem, 0)
        self._stages = []
        #: (stage index, block index) -> layer slot number of that block
        self.block_slot: dict[tuple[int, int], int] = {}
        for si, st in enumerate(space.stages):
            trans = self._add(st.transition, 0) if st.transition is not None else None
            blocks = tuple((self._add(b, b.index), b.optional, b.present) for b in st.blocks)
            for b, ((slot, _), _, _) in zip(st.blocks, blocks):
                self.block_slot[(si, b.index)] = slot
            self._stages.append((st.dim, st.depth, len(st.blocks), trans, blocks))

    def _add(self, layer, index) -> tuple:
        slot = len(self._layers)
        self._layers.append((layer, index))
        self._refs.append(tuple(sorted(_layer_refs(layer))))
        return slot, self._refs[slot]

    def __call__(self, arch: Mapping[str, Any]) -> Cost:
        try:
            return self._cost(arch)
        except (FieldError, EvalError) as e:
            raise ArchError(None, f"arch is not buildable: {getattr(e, 'message', e)}") from None
        except KeyError as e:
            raise ArchError(e.args[0], "missing from the arch") from None

    def layer_refs(self, slot: int) -> tuple[str, ...]:
        """The dimension paths a layer's fields reference."""
        return self._refs[slot]

    def layer_cost(self, slot: int, ctx: tuple, env: Mapping[str, Any]) -> tuple[int, int]:
        """(params, flops) of one layer in context ``ctx = (in_dim, dim, in_size, cls)`` under ``env``."""
        key = (slot, *ctx, *[env[p] for p in self._refs[slot]])
        hit = self._memo.get(key) or self._miss(key, env)
        return hit[0], hit[1]

    def block_contexts(self, env: Mapping[str, Any]) -> dict[tuple[int, int], tuple]:
        """``(stage, block) -> (in_dim, dim, in_size, cls)`` of every active block of ``env``."""
        sp = self.space
        cls = head_has_cls(sp.head, env)
        dims = [evaluate(st[0], env) for st in self._stages]
        slot, refs_ = self._stem
        key = (slot, sp.channels, dims[0], evaluate(sp.resolution, env), cls, *[env[p] for p in refs_])
        _, _, cur_dim, cur_size = self._memo.get(key) or self._miss(key, env)
        out = {}
        for si, ((_, depth, n, trans, blocks), dim) in enumerate(zip(self._stages, dims)):
            if trans is not None:
                slot, refs_ = trans
                key = (slot, cur_dim, dim, cur_size, cls, *[env[p] for p in refs_])
                _, _, cur_dim, cur_size = self._memo.get(key) or self._miss(key, env)
            for (slot, refs_), optional, present in blocks[: n if depth is None else evaluate(depth, env)]:
                if optional and env.get(present) is not True:
                    continue
                out[(si, self._layers[slot][1])] = (cur_dim, dim, cur_size, cls)
                key = (slot, cur_dim, dim, cur_size, cls, *[env[p] for p in refs_])
                _, _, cur_dim, cur_size = self._memo.get(key) or self._miss(key, env)
        return out

    def _miss(self, key: tuple, env, classes: int = 0) -> tuple[int, int, int, int]:
        layer, index = self._layers[key[0]]
        _, in_dim, dim, in_size, cls = key[:5]
        f = normalize(layer, env, Context(in_dim, dim, in_size, index=index, cls_token=cls, classes=classes))
        kind = K.get(layer.kind)
        if kind is None or kind.cost is None:
            raise ValueError(f"no cost model for layer kind {layer.kind!r}")
        p, fl = kind.cost(f, self.convention)
        hit = (p, fl, f["dim"], f["size"])
        if len(self._memo) >= MAX_ENTRIES:
            self._memo.clear()
        self._memo[key] = hit
        return hit

    def _cost(self, env) -> Cost:
        sp = self.space
        memo = self._memo
        slot, refs_ = self._head
        hk = tuple([env[p] for p in refs_])
        cls = self._cls.get(hk)
        if cls is None:
            cls = self._cls[hk] = head_has_cls(sp.head, env)
        res = evaluate(sp.resolution, env)
        dims = [evaluate(st[0], env) for st in self._stages]
        slot, refs_ = self._stem
        key = (slot, sp.channels, dims[0], res, cls, *[env[p] for p in refs_])
        params, flops, cur_dim, cur_size = memo.get(key) or self._miss(key, env)
        for (_, depth, n, trans, blocks), dim in zip(self._stages, dims):
            if trans is not None:
                slot, refs_ = trans
                key = (slot, cur_dim, dim, cur_size, cls, *[env[p] for p in refs_])
                p, f, cur_dim, cur_size = memo.get(key) or self._miss(key, env)
                params += p
                flops += f
            for (slot, refs_), optional, present in blocks[: n if depth is None else evaluate(depth, env)]:
                if optional and env.get(present) is not True:
                    continue
                key = (slot, cur_dim, dim, cur_size, cls, *[env[p] for p in refs_])
                p, f, cur_dim, cur_size = memo.get(key) or self._miss(key, env)
                params += p
                flops += f
        slot, refs_ = self._head
        key = (slot, cur_dim, cur_dim, cur_size, cls, *[env[p] for p in refs_])
        p, f, _, _ = memo.get(key) or self._miss(key, env, sp.classes)
        return Cost(params + p, flops + f)


def _layer_refs(layer) -> set[str]:
    out: set[str] = set()
    for e in layer.fields.values():
        out |= refs(e)
    return out


__all__ = ["CostCache"]
