"""Helpers shared by the commands: loading spaces with diagnostics printed, JSON output."""
from __future__ import annotations

import json
import sys

from ..diagnostics import SpaceError


def load_or_report(path: str, quiet_warnings: bool = False):
    """Load a space, printing diagnostics to stderr; returns None on error."""
    from ..space import load
    try:
        space = load(path)
    except SpaceError as e:
        print(e.render(), file=sys.stderr)
        return None
    if not quiet_warnings:
        for w in space.warnings:
            print(w.render(space.source), file=sys.stderr)
    return space


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


def human(n: float) -> str:
    """1234567 -> 1.23M (three significant digits)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}"
