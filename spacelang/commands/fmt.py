"""``spacelang fmt [--check] [--diff] FILE…``: rewrite spaces in the canonical layout.

Files are rewritten in place atomically (a temporary file in the same directory, then a rename),
and only after the formatter has proved its output (same syntax tree, same comments, stable).
``--check`` writes nothing and exits 1 when a file would change; ``--diff`` prints a unified
diff instead of writing.  ``-`` formats standard input to standard output.
Exit codes: 0 done (or nothing to change), 1 ``--check`` found files to reformat, 2 a file
could not be read or parsed (its diagnostics are printed; it is left untouched).
"""
from __future__ import annotations

import difflib
import sys

from ..errors import OutputError
from ..util.atomic import write_text

HELP = "format .space files in the canonical layout (in place; --check, --diff)"


def add_arguments(p) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="files to format ('-' for standard input)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file would change")
    p.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of the changes")
    p.add_argument("-q", "--quiet", action="store_true", help="print no per-file messages")


def run(args) -> int:
    from ..diagnostics import SpaceError
    from ..fmt import format_source
    from ..parser import decode_source, read_source

    failed = changed = False
    for path in args.files:
        try:
            if path == "-":
                source = decode_source(sys.stdin.buffer.read(), "<stdin>")
                out = format_source(source, "<stdin>")
            else:
                source = read_source(path)
                out = format_source(source, path)
        except SpaceError as e:
            print(e.render(), file=sys.stderr)
            failed = True
            continue
        if path == "-" and not (args.check or args.diff):
            sys.stdout.write(out)
            continue
        if out == source:
            continue
        changed = True
        if args.diff:
            sys.stdout.writelines(difflib.unified_diff(
                source.splitlines(True), out.splitlines(True), f"{path} (original)", f"{path} (formatted)"))
        if args.check:
            if not args.quiet:
                print(f"would reformat {path}")
        elif not args.diff:
            try:
                write_text(path, out)
            except OutputError as e:
                print(e.render(), file=sys.stderr)
                failed = True
                continue
            if not args.quiet:
                print(f"reformatted {path}")
    if failed:
        return 2
    return 1 if (args.check and changed) else 0
