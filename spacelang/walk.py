"""The one walk through a network: stem → for each stage (transition, then block slots) → head.

Every consumer of a network — resolving an arch to its :class:`~spacelang.netspec.NetSpec`, the
static checker, the cost cache, the supernet spec — iterates :func:`walk`.  It decides which
layers run and what each one sees (:class:`~spacelang.kinds.base.Context`: input width, stage
width, feature-map size, class token, role, input resolution); the caller decides what to do at
each layer (normalise it, cost it, check it) through a ``visit`` function whose result carries
the layer's output width and map size (``.dim``, ``.size``), which the walk hands on.

:class:`Slot` names a layer's place: ``stem``, ``STAGE.downsample``, ``STAGE.I`` (I the block's
slot in the supernet) or ``head``.  The slots of a space are fixed (:func:`slots`); an arch
activates a subset of the block slots (the first ``depth`` ones, minus skipped optional blocks).
"""
from __future__ import annotations

import enum
from typing import Any, Callable, Iterator, Mapping, Protocol

import attrs

from .fields import head_has_cls
from .ir import LayerIR, evaluate
from .kinds.base import Context


class Role(str, enum.Enum):
    """Where a layer sits in the network."""

    STEM = "stem"
    DOWNSAMPLE = "downsample"
    BLOCK = "block"
    HEAD = "head"

    __str__ = str.__str__
    __format__ = str.__format__


@attrs.frozen
class Slot:
    """One layer's place in the supernet.

    ``number`` is the slot's position in :func:`slots` (a dense id, handy as a cache key);
    ``stage`` the stage's index (None for stem and head); ``index`` the block's slot in its
    stage (0 for other roles); ``path`` the readable name.
    """

    number: int
    role: Role
    layer: LayerIR = attrs.field(eq=False, repr=False)
    stage: int | None = None
    index: int = 0
    path: str = ""

    @property
    def optional(self) -> bool:
        return self.layer.optional


class Shape(Protocol):
    """What a visit returns: at least the layer's output width and map side."""

    dim: int
    size: int


Visit = Callable[[Slot, Context], Shape]


_STEM, _DOWNSAMPLE, _BLOCK, _HEAD = (r.value for r in Role)  # plain strings: Context.role
_new = tuple.__new__


def slots(space) -> tuple[Slot, ...]:
    """Every layer slot of ``space`` in execution order (memoised on the space's skeleton)."""
    out: list[Slot] = []

    def add(role: Role, layer: LayerIR, stage: int | None = None, index: int = 0, path: str = "") -> None:
        out.append(Slot(len(out), role, layer, stage, index, path))

    add(Role.STEM, space.stem, path="stem")
    for si, st in enumerate(space.stages):
        if st.transition is not None:
            add(Role.DOWNSAMPLE, st.transition, si, path=f"{st.name}.downsample")
        for b in st.blocks:
            add(Role.BLOCK, b, si, b.index, path=f"{st.name}.{b.index}")
    add(Role.HEAD, space.head, path="head")
    return tuple(out)


def stage_depth(stage, env: Mapping[str, Any]) -> int:
    """How many of a stage's block slots an arch's depth reaches (all of them without a depth)."""
    if stage.depth is None:
        return len(stage.blocks)
    return evaluate(stage.depth, env)


def block_runs(block: LayerIR, env: Mapping[str, Any]) -> bool:
    """Whether a block within the depth runs: always, or, if optional, when its gate is true."""
    return not block.optional or env.get(block.present) is True


def walk(space, env: Mapping[str, Any], visit: Visit, *, every_slot: bool = False,
         cls_token: bool | None = None) -> Iterator[tuple[Slot, Context, Any]]:
    """Walk the network of ``env`` (an arch, or any assignment of the dimensions the walk reads).

    Yields ``(slot, context, visit(slot, context))`` for every layer that runs, in order.  With
    ``every_slot``, every block slot is visited regardless of depth and optional gates (the
    checker and the supernet spec look at all of them).  ``cls_token`` overrides the head's
    answer (callers that already know it skip re-evaluating the head's fields).
    """
    cls = head_has_cls(space.head, env) if cls_token is None else cls_token
    res = evaluate(space.resolution, env)
    stage_dims = [evaluate(st.dim, env) for st in space.stages]
    all_slots = space.slots
    # Contexts are built positionally, straight through tuple.__new__ (a third of the cost of the
    # named tuple's keyword-taking __new__): (in_dim, dim, in_size, index, cls_token, classes,
    # role, resolution) — this loop is the samplers' hot path.
    stem = all_slots[0]
    ctx = _new(Context, (space.channels, stage_dims[0] if stage_dims else space.channels, res, 0, cls, 0, _STEM, res))
    out = visit(stem, ctx)
    yield stem, ctx, out
    cur_dim, cur_size = out.dim, out.size
    pos = 1
    for si, st in enumerate(space.stages):
        dim = stage_dims[si]
        if st.transition is not None:
            slot = all_slots[pos]
            pos += 1
            ctx = _new(Context, (cur_dim, dim, cur_size, 0, cls, 0, _DOWNSAMPLE, res))
            out = visit(slot, ctx)
            yield slot, ctx, out
            cur_dim, cur_size = out.dim, out.size
        blocks = st.blocks
        if every_slot:
            depth = len(blocks)
        else:
            depth = len(blocks) if st.depth is None else evaluate(st.depth, env)
        for bi in range(min(depth, len(blocks))):
            b = blocks[bi]
            if b.optional and not every_slot and env.get(b.present) is not True:
                continue
            slot = all_slots[pos + bi]
            ctx = _new(Context, (cur_dim, dim, cur_size, b.index, cls, 0, _BLOCK, res))
            out = visit(slot, ctx)
            yield slot, ctx, out
            cur_dim, cur_size = out.dim, out.size
        pos += len(blocks)
    head = all_slots[pos]
    ctx = _new(Context, (cur_dim, cur_dim, cur_size, 0, cls, space.classes, _HEAD, res))
    yield head, ctx, visit(head, ctx)


__all__ = ["Role", "Slot", "Shape", "Visit", "slots", "walk", "stage_depth", "block_runs"]
