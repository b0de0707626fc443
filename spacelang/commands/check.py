"""``spacelang check FILE…``: parse, resolve and check spaces; every error of every file."""
from __future__ import annotations

import json
import sys
import time

HELP = "check .space files and report every error (exit 2 on errors)"


def add_arguments(p) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="the .space files to check")
    p.add_argument("--json", action="store_true", help="diagnostics as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def run(args) -> int:
    from ..diagnostics import SpaceError
    from ..space import load
    failed = False
    report = []
    for path in args.files:
        t0 = time.perf_counter()
        try:
            space = load(path)
        except SpaceError as e:
            failed = True
            if args.json:
                report.append({"file": path, "ok": False, "diagnostics": [d.as_json() for d in e.diagnostics]})
            else:
                print(e.render(), file=sys.stderr)
            continue
        ms = (time.perf_counter() - t0) * 1000
        if args.json:
            report.append({"file": path, "ok": True, "space": space.name, "subnets": space.size(),
                           "dimensions": len(space.dims), "diagnostics": [d.as_json() for d in space.warnings]})
            continue
        for w in space.warnings:
            print(w.render(space.source), file=sys.stderr)
        if not args.quiet:
            print(f"{path}: ok — space {space.name}, {len(space.dims)} dimensions, {space.size():,} subnets ({ms:.0f} ms)")
    if args.json:
        print(json.dumps(report, indent=2))
    return 2 if failed else 0
