"""Registry of elastic ops keyed by block kind name (timm-style ``@register("transformer")``).

The op protocol
===============

An op is an ``nn.Module`` class registered for one block kind.  It reads the layer it is given
through ``layer.fields``, the kind's typed normalised layer (a subclass of
:class:`spacelang.kinds.base.Normalized`, e.g. ``TransformerLayer``; see ``spacelang/kinds``):
attribute access only, so a renamed field is an ``AttributeError`` at the op, caught by the
registry tests, never a silent default.

``Op(layer)``
    ``layer`` is the supernet's :class:`~spacelang.netspec.Layer` of the slot: every numeric
    field at its largest value over the space (``Space.supernet_spec()``), so the op allocates
    each weight once, at its largest size.  Ops registered with ``drop_path=True`` (those with a
    residual branch: transformer blocks) also take ``drop_path: float``, the stochastic-depth
    rate of their slot; the supernet passes it to those ops only.
``op(x, layer) -> Tensor``
    runs the active layer ``layer`` of this slot (any arch of the space) on ``x``.  Everything
    the op needs is in ``layer.fields`` — no extra arguments: a head reads whether the tokens
    carry a class token from its own layer (``LinearHeadLayer.cls``), as every kind that cares
    records it.  Inputs are ``(B, C, H, W)`` maps before the stem and ``(B, N, C)`` tokens
    after it (the class token first when there is one).
``op.extract(layer) -> nn.Module``
    a standalone module of ordinary layers (``nn.Linear``, ``nn.Conv2d``, …; nothing elastic,
    no weight shared with the supernet) computing exactly ``op(x, layer)``: ``module(x)``.

A kind the compiler cannot build — no op registered, or a field value an op does not compile
(an elastic stem kernel or patch) — raises :class:`spacelang.errors.CompileError` naming it.
"""
from __future__ import annotations

from typing import Protocol

import torch

from spacelang.errors import CompileError

_OPS: dict[str, type] = {}


class Op(Protocol):
    """What the supernet calls on an op (see the module docstring)."""

    kind: str
    takes_drop_path: bool

    def __call__(self, x: torch.Tensor, layer) -> torch.Tensor: ...

    def extract(self, layer) -> torch.nn.Module: ...


def register(kind: str, *, drop_path: bool = False):
    """Class decorator: make ``cls`` the elastic op compiled for block kind ``kind``.

    ``drop_path``: the constructor takes ``drop_path=`` (its stochastic-depth rate)."""

    def deco(cls: type) -> type:
        if kind in _OPS:
            raise ValueError(f"an op for kind {kind!r} is already registered ({_OPS[kind].__name__})")
        _OPS[kind] = cls
        cls.kind = kind
        cls.takes_drop_path = drop_path
        return cls

    return deco


def get_op(kind: str) -> type:
    """The op class for ``kind``; :class:`CompileError` naming the compiled kinds if there is none."""
    try:
        return _OPS[kind]
    except KeyError:
        raise CompileError(
            f"the PyTorch compiler has no op for kind {kind!r} yet (compiled kinds: {', '.join(sorted(_OPS))})"
        ) from None


def registered() -> list[str]:
    """Names of the kinds that have an op, sorted."""
    return sorted(_OPS)
