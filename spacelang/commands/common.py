"""Helpers shared by the commands: loading spaces with diagnostics printed, JSON output."""
from __future__ import annotations

import json
import sys

from ..diagnostics import SpaceError
from ..util.quantity import human  # re-exported: commands format counts with the one formatter


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


__all__ = ["load_or_report", "print_json", "human"]
