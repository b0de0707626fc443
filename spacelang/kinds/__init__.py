"""Registry of block kinds: one module per kind (schema, normalisation, analytic cost).

Pure Python; importing it never imports torch.
"""
from __future__ import annotations

import difflib

from .base import REQUIRED, Context, Field, Kind, FieldError
from . import conv, conv_stem, linear_head, mbconv, mbpool, patch_embed, patch_merging, rsr, transformer

KINDS: dict[str, Kind] = {
    m.KIND.name: m.KIND
    for m in (patch_embed, conv_stem, conv, mbconv, transformer, patch_merging, rsr, linear_head, mbpool)
}


def get(name: str) -> Kind | None:
    return KINDS.get(name)


def kinds_for(role: str) -> list[str]:
    return sorted(k for k, v in KINDS.items() if role in v.roles)


def suggest(name: str, candidates) -> str | None:
    """A "did you mean" candidate for a misspelt name, or None."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


__all__ = ["KINDS", "Kind", "Field", "Context", "FieldError", "REQUIRED", "get", "kinds_for", "suggest"]
