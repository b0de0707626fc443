"""Registry of block kinds: one module per kind (schema, typed normalised layer, analytic cost,
example).

Every module of this package that defines ``KIND`` (a :class:`Kind`) is registered when the
package is imported, so a new kind is one new module here (and one op in ``compiler/ops``).
Pure Python; importing it never imports torch.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil

from .base import REQUIRED, Context, Field, Kind, FieldError, Normalized


def _discover() -> dict[str, Kind]:
    """The ``KIND`` of every module of this package, by kind name (sorted)."""
    found: dict[str, Kind] = {}
    for info in pkgutil.iter_modules(__path__):
        kind = getattr(importlib.import_module(f"{__name__}.{info.name}"), "KIND", None)
        if isinstance(kind, Kind):
            if kind.name in found:
                raise ValueError(f"two modules of spacelang.kinds define kind {kind.name!r}")
            found[kind.name] = kind
    return dict(sorted(found.items()))


KINDS: dict[str, Kind] = _discover()


def get(name: str) -> Kind | None:
    return KINDS.get(name)


def kinds_for(role: str) -> list[str]:
    return sorted(k for k, v in KINDS.items() if role in v.roles)


def training_params(net) -> int:
    """Parameters of ``net`` (a resolved :class:`~spacelang.netspec.NetSpec`) that only training
    uses (a token-labelling classifier): ``cost(...).params`` minus this is the inference network's."""
    total = 0
    for layer in net.layers:
        hook = KINDS[layer.kind].training_params
        if hook is not None:
            total += hook(layer.fields)
    return total


def suggest(name: str, candidates) -> str | None:
    """A "did you mean" candidate for a misspelt name, or None."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


__all__ = ["KINDS", "Kind", "Field", "Context", "FieldError", "Normalized", "REQUIRED", "get", "kinds_for",
           "suggest", "training_params"]
