"""The schema every block kind declares: fields, types, defaults, validation, shape, cost.

A kind is pure Python.  The resolver uses it to check fields and to *normalise* them into the
concrete, typed layer description that the compiler and the cost model consume: one frozen
attrs class per kind, deriving from :class:`Normalized` (``in_dim``/``dim``: channels in/out,
``in_size``/``size``: feature-map side in/out), with the kind's own fields, defaults filled and
derived quantities computed (e.g. a transformer's ``hidden`` from ``mlp_ratio``).

Symbols of the language (``pool cls|avg``, ``shift auto|none|half``) stay plain strings in the
normalised layers: they are compared in one or two places each, and a string keeps the
normalised layer printable as the user wrote it.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import attrs

from ..errors import FieldError  # noqa: F401  (re-exported: the kinds raise it)

REQUIRED = object()

# Field types: ``int``, ``float`` (accepts ints), ``bool``, ``sym`` (a bare name from ``symbols``).


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


class Context(NamedTuple):
    """What a layer sees of its surroundings when it is normalised.

    A named tuple rather than an attrs class: the walk builds one per layer per arch on the
    samplers' hot path, and a tuple is built, hashed and compared in C.
    """

    in_dim: int          # channels entering the layer
    dim: int             # channels leaving it (the stage width; the stem's first-stage width)
    in_size: int         # feature-map side entering the layer
    index: int = 0       # block index within its stage (0 for non-blocks)
    cls_token: bool = False  # whether the token sequence carries a class token
    classes: int = 0     # number of classes (heads)
    role: str = ""       # stem | downsample | block | head
    resolution: int = 0  # the network's input resolution (0: unknown); kinds name it in messages


def map_origin(size: int, ctx: Context) -> str:
    """Where a ``size``×``size`` feature map comes from, for messages: `` (input 224 / 32)``.

    Empty when the input resolution is unknown (``ctx.resolution == 0``)."""
    if not ctx.resolution:
        return ""
    if size and ctx.resolution % size == 0 and ctx.resolution != size:
        return f" (input {ctx.resolution} / {ctx.resolution // size})"
    return f" (input {ctx.resolution})"


@attrs.frozen(kw_only=True)
class Normalized:
    """A normalised layer: what every kind's ``normalize`` returns (one subclass per kind).

    Consumers read attributes (``layer.fields.heads``).  There is no string-key access: a
    renamed field fails at the line that reads it, and the registry tests exercise every kind.
    """

    in_dim: int   #: channels entering the layer
    dim: int      #: channels leaving it
    in_size: int  #: feature-map side entering the layer
    size: int     #: feature-map side leaving it

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Normalized":
        """The layer whose fields are ``values`` (every attribute of the class, by name)."""
        return cls(**{a.name: values[a.name] for a in attrs.fields(cls)})



#: ``idle_fields(values, given, ctx)`` → ``[(field, message), ...]``
IdleFields = Callable[[Mapping[str, Any], frozenset, Context], list]


@attrs.frozen(kw_only=True)
class Kind:
    """A registered block kind.

    - ``normalize(values, ctx)`` gets the user's field values with defaults filled (numbers
      already type-checked) and returns an instance of ``layer`` (a :class:`Normalized`
      subclass); it raises :class:`FieldError` for values it cannot accept.
    - ``cost(layer, convention)`` returns ``(params, flops)`` of the normalised layer under
      fvcore's convention, or is ``None`` until a cost model exists for the kind.
    - ``class_token(values)``: for a head, whether the network carries a class token, from the
      head's field values (defaults filled).  ``None``: never.
    - ``idle_fields(values, given, ctx)``: ``(field, message)`` for each field of ``given``
      (the names the user wrote) that does nothing with these values, e.g. ``shift`` without a
      window; a checker reports each as a warning at the field.  ``None``: none ever are.
    - ``training_params(layer)``: how many of the layer's parameters (counted by ``cost``) only
      training uses, e.g. a token-labelling classifier; ``None``: none.
    - ``example``: a minimal valid ``.space`` text using the kind, small enough to compile and
      run in milliseconds; the registry tests check, compile and count it.
    """

    name: str
    roles: frozenset
    fields: Mapping[str, Field]
    normalize: Callable[[dict, Context], Normalized]
    layer: type = Normalized
    doc: str = ""
    cost: Callable[[Normalized, str], tuple[int, int]] | None = None
    class_token: Callable[[Mapping[str, Any]], bool] | None = None
    idle_fields: IdleFields | None = None
    training_params: Callable[[Normalized], int] | None = None
    example: str = ""


def fields(*items: Field) -> dict[str, Field]:
    return {f.name: f for f in items}
