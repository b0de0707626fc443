"""The schema every block kind declares: fields, types, defaults, validation, shape, cost.

A kind is pure Python.  The resolver uses it to check fields and to *normalise* them into the
concrete layer description (:class:`spacelang.netspec.Layer`) that the compiler and the cost
model consume.  Normalised fields always include ``in_dim``/``dim`` (channels in/out) and
``in_size``/``size`` (feature-map side in/out), plus the kind's own fields with defaults filled
and derived quantities computed (e.g. a transformer's ``hidden`` from ``mlp_ratio``).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import attrs

from ..errors import FieldError

REQUIRED = object()

#: Field types: ``int``, ``float`` (accepts ints), ``bool``, ``sym`` (a bare name from ``symbols``).
FIELD_TYPES = ("int", "float", "bool", "sym")

ROLES = ("stem", "downsample", "block", "head")


@attrs.frozen
class Field:
    """One field of a kind: its type, default (``REQUIRED`` if none), allowed symbols, lower bound."""

    name: str
    type: str
    default: Any = REQUIRED
    symbols: tuple[str, ...] = ()
    min: float | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@attrs.frozen
class Context:
    """What a layer sees of its surroundings when it is normalised."""

    in_dim: int          # channels entering the layer
    dim: int             # channels leaving it (the stage width; the stem's first-stage width)
    in_size: int         # feature-map side entering the layer
    index: int = 0       # block index within its stage (0 for non-blocks)
    cls_token: bool = False  # whether the token sequence carries a class token
    classes: int = 0     # number of classes (heads)
    role: str = ""       # stem | downsample | block | head


@attrs.frozen
class Kind:
    """A registered block kind.

    ``normalize(fields, ctx)`` gets the user's fields with defaults filled (and numbers already
    type-checked) and returns the full normalised field dict; it raises :class:`FieldError` for
    values it cannot accept.  ``cost(fields)`` returns ``(params, flops)`` of the normalised layer
    under fvcore's convention, or is ``None`` until a cost model exists for the kind.
    """

    name: str
    roles: frozenset
    fields: Mapping[str, Field]
    normalize: Callable[[dict, Context], dict]
    doc: str = ""
    cost: Callable[[Mapping[str, Any]], tuple[int, int]] | None = None
    #: fields that may be omitted and have no default (their absence is meaningful)
    optional_fields: frozenset = frozenset()


def fields(*items: Field) -> dict[str, Field]:
    return {f.name: f for f in items}
