"""The concrete network description shared by the compiler and the cost model.

``Space.resolve(arch)`` turns one arch into a :class:`NetSpec`: every field is a concrete value,
normalised by its kind (see ``spacelang/kinds``).  ``Space.supernet_spec()`` returns the NetSpec
of the supernet: every block slot present and every numeric field at its largest value over the
space (so the compiler allocates each weight once, at its largest size).

A layer's ``fields`` is typed: every kind's normalised class derives from
:class:`~spacelang.kinds.base.Normalized` (``in_dim``, ``dim``: channels in/out; ``in_size``,
``size``: feature-map side in/out); the rest is kind-specific and documented in each kind's module.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

import attrs

from .kinds.base import Normalized


def _typed(value: Normalized | Mapping[str, Any], self: "Layer") -> Normalized:
    """The normalised layer itself, or (from a plain mapping of its fields) the kind's class."""
    if isinstance(value, Normalized):
        return value
    from .kinds import KINDS  # the registry imports every kind module; keep netspec light
    return KINDS[self.kind].layer.from_mapping(value)


@attrs.frozen
class Layer:
    """One layer: its kind, its normalised fields (an instance of the kind's
    :class:`~spacelang.kinds.base.Normalized` subclass; a mapping of them is converted) and, for
    blocks, its slot index in the stage."""

    kind: str
    fields: Normalized = attrs.field(converter=attrs.Converter(_typed, takes_self=True))
    index: int = 0



@attrs.frozen
class StageSpec:
    name: str
    dim: int
    transition: Layer | None
    blocks: tuple[Layer, ...]  # active blocks only, in order; Layer.index is the supernet slot


@attrs.frozen
class NetSpec:
    channels: int
    resolution: int
    classes: int
    stem: Layer
    stages: tuple[StageSpec, ...]
    head: Layer

    def named_layers(self) -> Iterator[tuple[str, Layer]]:
        """Every layer in execution order with its slot path (``stem``, ``STAGE.downsample``,
        ``STAGE.I`` with I the block's supernet slot, ``head``) — the names of
        :class:`spacelang.walk.Slot`."""
        yield "stem", self.stem
        for st in self.stages:
            if st.transition is not None:
                yield f"{st.name}.downsample", st.transition
            for blk in st.blocks:
                yield f"{st.name}.{blk.index}", blk
        yield "head", self.head

    @property
    def layers(self) -> Iterator[Layer]:
        """Every layer in execution order (stem, transitions and blocks, head)."""
        return (layer for _, layer in self.named_layers())
