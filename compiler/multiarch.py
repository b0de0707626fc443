"""Multi-architectural sampling (ViT-ResNAS §2.3, Figs. 5–6): N_a subnets in one forward pass.

``forward_multi(net, x, archs, assign)`` runs one forward of the *union* network of the archs —
per layer slot, every width field at the largest value among the archs that run the slot (the
carried embedding width at the largest stage width among all of them) — in which sample ``s``
belongs to arch ``assign[s]`` and all of ``s``'s activations are kept zero beyond ``s``'s own
widths (prefix channel masks, :mod:`.ops.masked`).  Every op runs its ``forward_masked(x, layer,
m)``: masked LayerNorm over each sample's own channels, masks after every bias and activation,
attention heads masked per sample, BatchNorm (the conv stem) per arch group.  A block that only
some archs run is computed on their samples only (``index_select`` in, ``index_copy`` out: the
other samples keep their tokens), which costs less than computing it for all and discarding;
a slot no arch runs is skipped.  So each sub-batch ``x[assign == g]`` gets
exactly ``net(x[assign == g], archs[g])``, and the mean loss's gradients are the sub-batches'
gradients weighted by their share of the batch.

Only archs that differ in widths and in which blocks run can share a pass: ``check_multiarch``
refuses a space with any other dimension (a window, splits, kernel, patch, the input
resolution, …) or a kind without a masked forward; ``forward_multi`` also checks, per step, that
the archs' layers agree in every field that is not a maskable width.
"""
from __future__ import annotations

import functools
import weakref
from typing import Any, Mapping, Sequence

import attrs
import torch

from spacelang.errors import CompileError
from spacelang.ir import refs
from spacelang.netspec import Layer

from .ops import get_op
from .ops.masked import SlotMasks, StepMasks

_HINT = ("multi-architecture sampling trains subnets that differ only in widths (embedding, heads, "
         "head dim, MLP hidden) and in which blocks run; fix the other dimensions, or train with a "
         "single-arch rule (--rule uniform)")

_checked: "weakref.WeakSet" = weakref.WeakSet()


def _op(kind: str):
    op = get_op(kind)
    if not getattr(op, "masked", False):
        raise CompileError(f"kind {kind!r} has no masked (multi-architecture) forward",
                           hint="NASViT's kinds train with --rule nasvit; other kinds with a single-arch rule"
                           if kind in ("conv", "mbconv", "mbpool", "nasvit_transformer") else _HINT)
    return op


def check_multiarch(space) -> None:
    """Raise :class:`CompileError` unless every arch of ``space`` can share a multiarch pass.

    Decided from the space alone: every kind needs a masked forward (an op class with
    ``masked = True``), and every dimension may change only widths the ops mask (the input
    resolution never; a layer field only if the op lists it in ``maskable_fields``; stage widths,
    depths and optional blocks always).
    """
    if space in _checked:
        return
    for slot in space.slots:
        _op(slot.layer.kind)
    if refs(space.resolution):
        raise CompileError("the input resolution is a dimension: multi-architecture sampling runs all the "
                           "subnets of a step on one batch of one resolution", hint=_HINT)
    for d in space.dims:  # a stage width, depth or presence gate passes unless a layer field reads it
        for slot in space.slots:
            layer = slot.layer
            op = get_op(layer.kind)
            for name, expr in layer.fields.items():
                if d.path in refs(expr) and name not in op.maskable_fields:
                    raise CompileError(
                        f"dimension {d.path} changes `{name}` of {slot.path} ({layer.kind}), which "
                        f"multi-architecture sampling cannot mask", hint=_HINT)
    _checked.add(space)


# ---------------------------------------------------------------- the union network of one step
def _union(layers: Sequence[Layer | None], carried: Mapping[str, tuple[int, ...]], what: str):
    """``(union Layer, SlotMasks values, present)`` of one slot over the archs' layers (None: absent)."""
    present = tuple(lay is not None for lay in layers)
    running = [lay for lay in layers if lay is not None]
    first = running[0]
    op = _op(first.kind)
    widths = op.masked_widths
    values: dict[str, tuple[int, ...]] = {}
    union: dict[str, int] = {}
    for name in widths:
        if name in carried:  # the carried embedding widths: every arch's own, union over all archs
            values[name] = carried[name]
            union[name] = max(carried[name])
            continue
        own = [getattr(lay.fields, name) for lay in running]
        union[name] = max(own)
        values[name] = tuple(getattr(lay.fields, name) if lay is not None else union[name] for lay in layers)
    fixed = _fixed_fields(type(first.fields), widths)
    for lay in running[1:]:
        if lay.fields is first.fields:  # the space memoises normalised layers: the common case
            continue
        if lay.kind != first.kind:
            raise CompileError(f"{what}: archs of one multiarch step run different kinds ({first.kind}, {lay.kind})",
                               hint=_HINT)
        for k in fixed:
            v, other = getattr(first.fields, k), getattr(lay.fields, k)
            if other != v:
                raise CompileError(f"{what} ({first.kind}): the archs of one multiarch step differ in `{k}` "
                                   f"({v!r} vs {other!r}), which is not a maskable width", hint=_HINT)
    return Layer(first.kind, attrs.evolve(first.fields, **union), first.index), values, present


@functools.lru_cache(maxsize=None)
def _fixed_fields(cls: type, widths: tuple[str, ...]) -> tuple[str, ...]:
    """The fields of a normalised layer class that are not maskable widths."""
    return tuple(a.name for a in attrs.fields(cls) if a.name not in widths)


def _check_assign(x: torch.Tensor, archs: Sequence, assign: torch.Tensor) -> torch.Tensor:
    if not archs:
        raise ValueError("forward_multi needs at least one arch")
    if not isinstance(assign, torch.Tensor) or assign.dtype != torch.long or assign.shape != (x.shape[0],):
        raise ValueError(f"assign must be a LongTensor of shape ({x.shape[0]},) giving each sample's arch index")
    if assign.device != x.device:
        raise ValueError(f"assign is on {assign.device}, the batch on {x.device}")
    host = assign.cpu()  # one device-to-host copy per step (StepMasks reuses it)
    if len(host) and (int(host.min()) < 0 or int(host.max()) >= len(archs)):
        raise ValueError(f"assign holds arch indices outside [0, {len(archs)})")
    return host


def forward_multi(net, x: torch.Tensor, archs: Sequence[Mapping[str, Any]], assign: torch.Tensor, *,
                  tokens: bool = False):
    """Logits ``(B, classes)`` of sample ``s`` under ``archs[assign[s]]``, in one masked forward pass
    of ``net`` (a :class:`~spacelang.compiler.supernet.Supernet`); with ``tokens`` also the token
    labelling classifier's logits ``(B, N_patches, classes)`` (the head needs ``token_label``)."""
    from .supernet import check_input
    check_multiarch(net.space)
    host = _check_assign(x, archs, assign)
    specs = [net.resolve(a) for a in archs]
    shapes = {(s.channels, s.resolution) for s in specs}
    if len(shapes) > 1:
        raise CompileError(f"the archs of one multiarch step take different inputs {sorted(shapes)}", hint=_HINT)
    check_input(x, (specs[0].channels, specs[0].resolution, specs[0].resolution))
    if getattr(net, "channels_last", False):  # as Supernet.forward does
        x = x.contiguous(memory_format=torch.channels_last)
    step = StepMasks(assign, len(specs), x.dtype, host=host)

    def run(module, x, layers, carried, what, **kw):
        layer, values, present = _union(layers, carried, what)
        if all(present):
            return module.forward_masked(x, layer, SlotMasks(step, values, present), **kw)
        # a block only some archs run: computed on their samples only, the others keep their tokens
        rows = step.rows(present)
        if len(rows) == len(x):
            return module.forward_masked(x, layer, SlotMasks(step, values, present), **kw)
        if len(rows) == 0:
            return x
        y = module.forward_masked(x.index_select(0, rows), layer, SlotMasks(step.subset(rows), values, present), **kw)
        return x.index_copy(0, rows, y)

    dims = tuple(s.stem.fields.dim for s in specs)
    x = run(net.stem, x, [s.stem for s in specs], {"in_dim": tuple(s.stem.fields.in_dim for s in specs),
                                                 "dim": dims}, "the stem")
    for i, name in enumerate(st.name for st in specs[0].stages):
        stages = [s.stages[i] for s in specs]
        stage = net.stages[net.stage_index[name]]
        if stages[0].transition is not None:
            new = tuple(st.dim for st in stages)
            x = run(stage.transition, x, [st.transition for st in stages], {"in_dim": dims, "dim": new},
                     f"{name}'s downsample")
            dims = new
        by_slot = [{b.index: b for b in st.blocks} for st in stages]
        for slot in sorted(set().union(*by_slot)):
            layers = [blocks.get(slot) for blocks in by_slot]
            x = run(stage.blocks[slot], x, layers, {"in_dim": dims, "dim": dims}, f"block {name}.{slot}")
    return run(net.head, x, [s.head for s in specs], {"in_dim": dims, "dim": dims}, "the head", tokens=tokens)


__all__ = ["check_multiarch", "forward_multi"]
