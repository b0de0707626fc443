"""``random.Random`` state as plain JSON (lists and ints) and back — never pickle."""
from __future__ import annotations

import random
from typing import Sequence


def rng_to_json(rng: random.Random | None = None) -> list:
    """The state of ``rng`` (or of the module-level generator) as ``[version, [ints…], gauss]``."""
    version, internal, gauss = (rng or random).getstate()
    return [version, list(internal), gauss]


def rng_from_json(state: Sequence, rng: random.Random | None = None) -> None:
    """Restore a state written by :func:`rng_to_json` into ``rng`` (or the module generator)."""
    (rng or random).setstate((state[0], tuple(state[1]), state[2]))


__all__ = ["rng_to_json", "rng_from_json"]
