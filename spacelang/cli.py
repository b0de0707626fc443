"""The ``spacelang`` command line.

Each command lives in its own module under ``spacelang/commands`` (or ``spacelang.compiler``)
exposing ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; modules import torch only
inside ``run``, so ``check``/``fmt``/``diff``/``count``/``sample`` start instantly.
Exit codes: 0 success, 1 a check failed (``fmt --check``), 2 usage or input error.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "check": "spacelang.commands.check",
    "fmt": "spacelang.commands.fmt",
    "diff": "spacelang.commands.diff",
    "count": "spacelang.commands.count",
    "compile": "spacelang.compiler.commands.compile",
    "sample": "spacelang.commands.sample",
    "train": "spacelang.compiler.commands.train",
    "search": "spacelang.compiler.commands.search",
    "evolve": "spacelang.commands.evolve",
    "export": "spacelang.compiler.commands.export",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spacelang", description="Search spaces for vision transformers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name and (e.name == modname or modname.startswith(e.name + ".")):
                continue  # command not available in this build
            raise
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # build only the requested command's parser when we can: keeps startup instant
    parser = _parser_for(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _parser_for(argv: list[str]) -> argparse.ArgumentParser:
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in COMMANDS:
        parser = argparse.ArgumentParser(prog="spacelang")
        sub = parser.add_subparsers(dest="command")
        mod = importlib.import_module(COMMANDS[first])
        p = sub.add_parser(first, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
        return parser
    return build_parser()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
