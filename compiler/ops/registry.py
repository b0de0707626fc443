"""Registry of elastic ops keyed by block kind name (timm-style ``@register("transformer")``).

An op is an ``nn.Module`` class built from the supernet's :class:`~spacelang.netspec.Layer` (every
field at its largest value, so each weight is allocated once at its largest size).  It runs any
active layer of the same slot with ``op(x, layer)`` and turns one into a standalone module of
ordinary layers with ``op.extract(layer)``.
"""
from __future__ import annotations

_OPS: dict[str, type] = {}


def register(kind: str):
    """Class decorator: make ``cls`` the elastic op compiled for block kind ``kind``."""

    def deco(cls: type) -> type:
        if kind in _OPS:
            raise ValueError(f"an op for kind {kind!r} is already registered ({_OPS[kind].__name__})")
        _OPS[kind] = cls
        cls.kind = kind
        return cls

    return deco


def get_op(kind: str) -> type:
    """The op class for ``kind``; ``NotImplementedError`` naming the compiled kinds if there is none."""
    try:
        return _OPS[kind]
    except KeyError:
        raise NotImplementedError(
            f"the PyTorch compiler has no op for kind {kind!r} yet (compiled kinds: {', '.join(sorted(_OPS))})"
        ) from None


def registered() -> list[str]:
    """Names of the kinds that have an op, sorted."""
    return sorted(_OPS)
