"""Option types for every command: values are checked while the command line is parsed.

Each function here is an ``argparse`` ``type=``: it turns the option's text into a value or raises
:class:`argparse.ArgumentTypeError` with a short reason, which :class:`Parser` prints as one line
(``spacelang train: error: argument --epochs: must be at least 1, got 0``) before exiting with
code 2 — so a bad number never starts a run, and never shows a traceback.

Pure Python: importing this module never imports torch (``device`` imports it only to ask
whether an accelerator named on the command line exists).
"""
from __future__ import annotations

import argparse
import math
import re
from typing import Callable, NoReturn


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line: ``PROG: error: MESSAGE``, exit 2.

    Sub-command parsers made with ``add_subparsers`` inherit the class, so every command's
    errors read the same.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _number(text: str, kind: type) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def at_least(low: int | float, kind: type = int) -> Callable[[str], int | float]:
    """A ``type=`` accepting numbers ``>= low`` (``int`` or ``float``)."""

    def parse(text: str):
        v = _number(text, kind)
        if v < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        return v

    parse.__name__ = f"{kind.__name__} >= {low}"
    return parse


def above(low: float) -> Callable[[str], float]:
    """A ``type=`` accepting floats ``> low``."""

    def parse(text: str) -> float:
        v = _number(text, float)
        if v <= low:
            raise argparse.ArgumentTypeError(f"must be greater than {low:g}, got {text}")
        return v

    parse.__name__ = f"float > {low:g}"
    return parse


def unit_interval(text: str) -> float:
    """A probability-like fraction in ``[0, 1)`` (label smoothing, drop-path rate)."""
    v = _number(text, float)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return v


def closed_unit_interval(text: str) -> float:
    """A fraction in ``[0, 1]``."""
    v = _number(text, float)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return v


#: counts that must be at least one (epochs, archs, threads, batch sizes, …)
positive_int = at_least(1)
#: counts that may be zero (workers, random middle subnets, pixels of shift, seeds)
count = at_least(0)
#: rates and strengths that may be zero (weight decay, mixup alpha, warm-up epochs)
nonnegative = at_least(0.0, float)
#: rates that must be strictly positive (learning rate, gradient-norm clip)
positive = above(0.0)
seed = count

_DEVICE = re.compile(r"(cpu|mps|cuda(:\d+)?)")


def device_name(text: str) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (the form only: whether this machine has the
    accelerator is checked by ``spacelang.compiler.devices.device``, where torch is)."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def where(text: str) -> str:
    """A ``--where`` band (``params<=23M``), parsed now so a bad one is refused before any work."""
    from ..errors import SpacelangError
    from ..search.where import Bounds
    try:
        Bounds.parse([text])  # quantities through spacelang.util.quantity: out-of-range bounds refused
    except SpacelangError as e:  # argparse names the option already: drop the parser's own "--where EXPR:"
        raise argparse.ArgumentTypeError(e.message.removeprefix(f"--where {text!r}: ")) from None
    return text


def add_threads(p: argparse.ArgumentParser) -> None:
    """``--threads N`` (N >= 1), shared by the commands that run torch."""
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch intra-op threads (default: torch's choice; 1 is fastest on a shared machine)")


__all__ = ["Parser", "at_least", "above", "unit_interval", "closed_unit_interval", "positive_int", "count",
           "nonnegative", "positive", "seed", "device_name", "where", "add_threads"]
