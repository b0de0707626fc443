"""The concrete network description shared by the compiler and the cost model.

``Space.resolve(arch)`` turns one arch into a :class:`NetSpec`: every field is a concrete value,
normalised by its kind (see ``spacelang/kinds``).  ``Space.supernet_spec()`` returns the NetSpec
of the supernet: every block slot present and every numeric field at its largest value over the
space (so the compiler allocates each weight once, at its largest size).

Layer fields always hold ``in_dim``, ``dim`` (channels in/out), ``in_size`` and ``size``
(feature-map side in/out); the rest is kind-specific and documented in each kind's module.
"""
from __future__ import annotations

from typing import Any, Mapping

import attrs


def _frozen_dict(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(d)


@attrs.frozen
class Layer:
    """One layer: its kind, its normalised fields and, for blocks, its slot index in the stage."""

    kind: str
    fields: Mapping[str, Any] = attrs.field(converter=_frozen_dict)
    index: int = 0

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


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

    @property
    def layers(self):
        """Every layer in execution order (stem, transitions and blocks, head)."""
        yield self.stem
        for st in self.stages:
            if st.transition is not None:
                yield st.transition
            yield from st.blocks
        yield self.head
