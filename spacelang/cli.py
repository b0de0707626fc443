"""The ``spacelang`` command line.

Each command lives in its own module under ``spacelang/commands`` (or ``spacelang.compiler``)
exposing ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; modules import torch only
inside ``run``, so ``check``/``fmt``/``diff``/``count``/``sample`` start instantly.
Exit codes: 0 success, 1 a check failed (``fmt --check``), 2 usage or input error.  Usage errors
(a bad option value, a missing argument) and every :class:`spacelang.errors.SpacelangError` a
command lets through are printed as one line, never as a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .commands.options import Parser

COMMANDS = {
    "check": "spacelang.commands.check",
    "fmt": "spacelang.commands.fmt",
    "diff": "spacelang.commands.diff",
    "count": "spacelang.commands.count",
    "show": "spacelang.commands.show",
    "kinds": "spacelang.commands.kinds",
    "compile": "spacelang.compiler.commands.compile",
    "sample": "spacelang.commands.sample",
    "train": "spacelang.compiler.commands.train",
    "search": "spacelang.compiler.commands.search",
    "evolve": "spacelang.commands.evolve",
    "export": "spacelang.compiler.commands.export",
    "eval": "spacelang.compiler.commands.eval",
    "latency": "spacelang.commands.latency",
    "proxy": "spacelang.compiler.commands.proxy",
    "scale": "spacelang.compiler.commands.scale",
}


def _root_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = Parser(prog="spacelang", description="Search spaces for vision transformers.")
    parser.add_argument("--version", action="version", version=f"spacelang {__version__}",
                        help="print the version and exit")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _root_parser()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name and (e.name == modname or modname.startswith(e.name + ".")):
                continue  # command not available in this build
            raise
        _add_command(sub, name, mod)
    return parser


def _add_command(sub, name: str, mod) -> None:
    p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
    mod.add_arguments(p)
    p.set_defaults(handler=mod.run)  # the command module's run(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # build only the requested command's parser when we can: keeps startup instant
    parser = _parser_for(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed as one line
        return e.code if isinstance(e.code, int) else 0
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from .errors import SpacelangError
    try:
        return int(args.handler(args) or 0)
    except SpacelangError as e:  # a command that let a user's mistake through: still one clean message
        print(e.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _parser_for(argv: list[str]) -> argparse.ArgumentParser:
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in COMMANDS:
        parser = _root_parser()
        sub = parser.add_subparsers(dest="command")
        _add_command(sub, first, importlib.import_module(COMMANDS[first]))
        return parser
    return build_parser()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
