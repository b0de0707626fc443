"""Every situation a layer can meet: the enumeration behind the checker and the supernet spec.

A layer's normalised fields depend on the values of the dimensions its fields read and on its
context (input width, stage width, map size, class token), which in turn depend on the *trunk*:
dimensions read by layers every arch has (resolution, stage widths, stem/transition/head
fields).  :func:`layer_cases` walks the network (:func:`spacelang.walk.walk`, every block slot)
under every assignment of the trunk, recording each block slot's contexts, then visits every
block slot in each of its contexts under every assignment of the block's own dimensions.
Beyond :data:`MAX_COMBOS` assignments, the corners (all-lowest, all-highest) and a fixed-seed
sample stand in for the whole product.

Blocks keep their stage's width and map size (the checker enforces it), so the walk hands each
next block the stage width.  A block whose predecessors in the stage are all optional may also
be the first block that runs: it is visited with the stage's entry width too.
"""
from __future__ import annotations

import itertools
import random
from typing import Any, Callable, Iterable, NamedTuple

from .errors import EvalError, FieldError
from .ir import evaluate, refs
from .kinds.base import Context
from .walk import Role, Slot

MAX_COMBOS = 4096
_SAMPLES = 256


def assignments(space, paths: Iterable[str]) -> list[dict]:
    """Every assignment of ``paths`` (or corners + a fixed-seed sample past :data:`MAX_COMBOS`)."""
    dims = [space.dim(p) for p in sorted(paths)]
    total = 1
    for d in dims:
        total *= d.size
    if total <= MAX_COMBOS:
        return [dict(zip([d.path for d in dims], vals)) for vals in itertools.product(*[d.choices for d in dims])]
    rng = random.Random(0)
    out = [{d.path: d.lo for d in dims}, {d.path: d.hi for d in dims}]
    out += [{d.path: d.choices[rng.randrange(d.size)] for d in dims} for _ in range(_SAMPLES)]
    return out


class _Kept(NamedTuple):
    """A block's assumed output in the trunk walk: the stage width, the same map."""

    dim: int
    size: int


class Stop(Exception):
    """Raised by a visit to abandon the current trunk assignment (its layer already reported)."""


def layer_refs(layer) -> set[str]:
    out: set[str] = set()
    for e in layer.fields.values():
        out |= refs(e)
    return out


def layer_cases(space, visit: Callable[[Slot, Context, dict], Any],
                bad_width: Callable[[int, Any], None] | None = None,
                bad_eval: Callable[[Exception], None] | None = None) -> None:
    """Call ``visit(slot, ctx, env)`` for every layer slot in every case (see the module doc).

    ``visit`` returns the normalised layer (with ``.dim``/``.size``) or raises :class:`Stop`
    (non-block layers: abandon this trunk assignment).  ``bad_width(stage, value)`` is called for
    a stage width that is not a positive integer and ``bad_eval(err)`` for a trunk expression that
    cannot be evaluated; both abandon the enumeration.
    """
    trunk = set(space.trunk_paths) - space.depth_paths
    block_trunk = {s.number: layer_refs(s.layer) & trunk for s in space.slots if s.role is Role.BLOCK}
    # slot -> {(ctx, trunk values, the stage's entry width): env}
    contexts: dict[int, dict] = {n: {} for n in block_trunk}

    for env in assignments(space, trunk):
        try:
            widths = [evaluate(st.dim, env) for st in space.stages]
        except (EvalError, FieldError) as e:
            if bad_eval:
                bad_eval(e)
            return
        for si, w in enumerate(widths):
            if not isinstance(w, int) or isinstance(w, bool) or w < 1:
                if bad_width:
                    bad_width(si, w)
                return

        entry: dict[int, int] = {}

        def trunk_visit(slot: Slot, ctx: Context):
            if slot.role is not Role.BLOCK:
                return visit(slot, ctx, env)
            entry.setdefault(slot.stage, ctx.in_dim)
            key = (ctx, tuple(sorted((p, env[p]) for p in block_trunk[slot.number])), entry[slot.stage])
            contexts[slot.number].setdefault(key, env)
            return _Kept(ctx.dim, ctx.in_size)

        try:
            for _ in space.walk(env, trunk_visit, every_slot=True):
                pass
        except Stop:
            continue
        except (EvalError, FieldError) as e:
            if bad_eval:
                bad_eval(e)
            return

    for slot in space.slots:
        if slot.role is not Role.BLOCK:
            continue
        st = space.stages[slot.stage]
        own = layer_refs(slot.layer) - set(space.trunk_paths)
        can_be_first = slot.index > 0 and all(b.optional for b in st.blocks[: slot.index])
        for (ctx, _, entry_dim), env in contexts[slot.number].items():
            ctxs = [ctx]
            if can_be_first and entry_dim != ctx.in_dim:
                ctxs.append(ctx._replace(in_dim=entry_dim))
            for own_env in assignments(space, own):
                full = {**env, **own_env}
                for c in ctxs:
                    try:
                        visit(slot, c, full)
                    except Stop:
                        pass


__all__ = ["assignments", "layer_cases", "layer_refs", "Stop", "MAX_COMBOS"]
