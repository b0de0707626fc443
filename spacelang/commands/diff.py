"""``spacelang diff A B [--json]``: what changes from space A to space B, for review.

Dimensions added and removed, choice sets changed, fixed values and derived expressions changed,
kinds and layers changed, constraints changed, and the exact size of each space with the ratio.
Exit 0 when both spaces load (whether or not they differ), 2 when either has errors.
"""
from __future__ import annotations

import sys

HELP = "semantic diff of two spaces: dimensions, choices, derived fields, kinds, constraints, sizes"


def add_arguments(p) -> None:
    p.add_argument("a", metavar="A", help="the old space")
    p.add_argument("b", metavar="B", help="the new space")
    p.add_argument("--json", action="store_true", help="the diff as JSON")


def run(args) -> int:
    from ..diff import diff_spaces
    from .common import load_or_report, print_json
    a = load_or_report(args.a, quiet_warnings=True)
    b = load_or_report(args.b, quiet_warnings=True)
    if a is None or b is None:
        return 2
    d = diff_spaces(a, b)
    if args.json:
        print_json(d.as_json())
    else:
        sys.stdout.write(d.render())
    return 0
