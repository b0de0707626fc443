"""Progress of long loops: a tqdm bar on a terminal, plain lines with an ETA anywhere else.

Piped to a file, a tqdm bar is one line of carriage returns; so off a terminal :class:`Progress`
prints ordinary lines instead — one per milestone (an epoch, a generation) and, between
milestones, one every ``interval`` seconds — each with the work done, the time spent and an ETA.
With ``enabled=False`` (``--no-progress``) only the milestone lines are printed.

Pure Python (tqdm only); importing it never imports torch.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO


def duration(seconds: float) -> str:
    """``75`` → ``1m15s``; ``3725`` → ``1h02m``; ``8`` → ``8s``."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Work done out of ``total`` ``unit``s: a bar on a terminal, lines with an ETA elsewhere.

    ``update(n, **postfix)`` after each piece of work; ``note(message, **postfix)`` at a milestone
    (always reported: the bar's postfix on a terminal, one line otherwise); ``close()`` at the end.
    ``write`` receives the lines (default: ``stream``); ``clock`` is for tests.
    """

    def __init__(self, total: int, *, desc: str, unit: str = "step", initial: int = 0, enabled: bool = True,
                 stream: TextIO | None = None, write: Callable[[str], None] | None = None,
                 interval: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.initial = self.done = initial
        self.stream = stream or sys.stderr
        self.write = write or (lambda line: print(line, file=self.stream, flush=True))
        self.interval, self.clock = interval, clock
        self.start = self.last_line = clock()
        self.bar = None
        if enabled and _isatty(self.stream):
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True, file=self.stream)

    def eta(self) -> float | None:
        """Seconds left at the rate of this invocation so far (None before any work)."""
        elapsed, done = self.clock() - self.start, self.done - self.initial
        if done <= 0 or elapsed <= 0:
            return None
        return (self.total - self.done) * elapsed / done

    def line(self, message: str = "", **postfix: Any) -> str:
        """``desc: message, 120/3900 steps (3%), 12s elapsed, ETA 6m10s, key value, …``."""
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = self.eta()
        parts = [message] if message else []
        parts.append(f"{self.done}/{self.total} {self.unit}s ({pct:.0f}%)")
        parts.append(f"{duration(self.clock() - self.start)} elapsed")
        parts.append("ETA " + (duration(eta) if eta is not None else "?"))
        parts += [f"{k} {v}" for k, v in postfix.items()]
        return f"{self.desc}: " + ", ".join(parts)

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(refresh=False, **postfix)
        elif self.enabled and self.clock() - self.last_line >= self.interval:
            self._emit(self.line(**postfix))

    def note(self, message: str = "", **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**postfix)
            if message and not postfix:
                self.bar.write(f"{self.desc}: {message}", file=self.stream)
        else:
            self._emit(self.line(message, **postfix))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _emit(self, line: str) -> None:
        self.last_line = self.clock()
        self.write(line)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or file-like stream without a terminal
        return False
