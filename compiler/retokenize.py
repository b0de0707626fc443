"""Progressive elastic re-tokenization (As-ViT §4, Figure 4, Table 6).

Training runs a schedule of *phases*; in each, the stem's ``patch_embed`` samples the image with
another (stride, dilation) pair — e.g. ``(16, 5) → (8, 2) → (4, 1)`` for K1 = 4 at stride 4 —
with the same weights, so early epochs see 16× or 4× fewer tokens.  The paper relates the pair
by ``dilation = round((stride / S1 − 1) · K1 / (K1 − 1)) + 1`` (footnote 3, S1 the full-resolution
stride): the dilated kernel spans about ``stride / S1`` times K1 pixels (:func:`paper_dilation`).

A phase is the same space with the stem's fields rewritten (:func:`phase_source`): ``stride`` and
``dilation`` set, and ``padding`` set to ``(extent − stride + 1) // 2`` with
``extent = dilation · (kernel − 1) + 1`` — As-ViT's own padding rule applied to the dilated
extent, so the map is ``input / stride`` whenever the stride divides the input — unless the phase
gives its padding explicitly (``S,D,P``).  A phase whose (stride, dilation) are the stem's own for
every arch is the space itself, padding included.  Everything downstream follows from the phase
space's checked sizes: re-embedding maps, attention windows (splits), token counts.  A phase that
makes any arch's map invalid (splits not dividing, a map below 1×1) is refused with the
checker's diagnostic, naming the phase.  Parameters must not depend on the token map (they are
shared): an absolute position embedding is resampled to the phase's map (bicubic, as for a
resolution change — the op does this already); any other size-dependent parameter or buffer is
refused.

Training FLOPs are counted with the cost model: each step adds the forward FLOPs
(the cost model through :class:`spacelang.search.costcache.CostCache`, the fvcore convention) of the step's archs at the phase's
tokenization times the step's images, and the same at the space's own tokenization — the run's
FLOPs without the schedule.  Their ratio gives Table 6's "training FLOPs saving" (the backward
pass is a constant multiple of the forward pass for these layers, so the ratio is the same).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from spacelang import syntax as S
from spacelang.errors import OptionError, SpaceError
from spacelang.search.costcache import CostCache

#: log.csv columns this module fills (empty for runs without a schedule)
LOG_COLUMNS = ("phase", "train_flops", "train_flops_full")

_PHASE = re.compile(r"^(\d+)(?:-(\d*))?:(\d+),(\d+)(?:,(\d+))?$")


@dataclass(frozen=True)
class Phase:
    """Epochs ``first``..``last`` (1-based, inclusive; ``last`` None: to the end of the run) with
    the stem at ``stride`` and ``dilation``; ``padding`` None: the extent rule (module docstring)."""

    first: int
    last: int | None
    stride: int
    dilation: int
    padding: int | None = None

    @property
    def epochs(self) -> str:
        return f"{self.first}-{'' if self.last is None else self.last}"

    @property
    def label(self) -> str:
        """``stride,dilation[,padding]`` (log.csv's ``phase`` column)."""
        return f"{self.stride},{self.dilation}" + ("" if self.padding is None else f",{self.padding}")

    def __str__(self) -> str:
        return f"{self.epochs}:{self.label}"

    def holds(self, epoch: int) -> bool:
        """Whether 1-based ``epoch`` is in this phase."""
        return self.first <= epoch and (self.last is None or epoch <= self.last)


def parse_schedule(text: str) -> tuple[Phase, ...]:
    """Phases from ``"1-40:16,5 41-70:8,2 71-:4,1"`` (whitespace-separated ``FIRST-LAST:STRIDE,DILATION``
    with an optional ``,PADDING``; ``FIRST-`` runs to the end; ``N:`` is one epoch).  The phases must
    start at epoch 1 and follow each other without gaps or overlaps.  Raises a one-line
    :class:`OptionError`."""
    phases: list[Phase] = []
    tokens = text.split()
    if not tokens:
        raise OptionError("--retokenize: empty schedule", hint='write e.g. "1-40:16,5 41-70:8,2 71-:4,1"')
    for tok in tokens:
        m = _PHASE.match(tok)
        if not m:
            raise OptionError(f"--retokenize: phase {tok!r} is not FIRST-LAST:STRIDE,DILATION[,PADDING]",
                              hint='e.g. "1-40:16,5 41-70:8,2 71-:4,1" (epochs 1-based, inclusive; "71-" to the end)')
        first = int(m[1])
        last = first if m[2] is None else (int(m[2]) if m[2] else None)
        stride, dilation = int(m[3]), int(m[4])
        padding = int(m[5]) if m[5] is not None else None
        if first < 1 or (last is not None and last < first):
            raise OptionError(f"--retokenize: phase {tok!r} has no epochs (epochs are 1-based, FIRST <= LAST)")
        if stride < 1 or dilation < 1:
            raise OptionError(f"--retokenize: phase {tok!r}: stride and dilation must be at least 1")
        if phases:
            prev = phases[-1]
            if prev.last is None:
                raise OptionError(f"--retokenize: phase {tok!r} follows {str(prev)!r}, which runs to the end")
            if first != prev.last + 1:
                raise OptionError(f"--retokenize: phase {tok!r} starts at epoch {first}, but {str(prev)!r} "
                                  f"ends at {prev.last}" + (" (a gap)" if first > prev.last + 1 else " (an overlap)"),
                                  hint=f"start it at epoch {prev.last + 1}")
        elif first != 1:
            raise OptionError(f"--retokenize: the first phase {tok!r} starts at epoch {first}, not 1")
        phases.append(Phase(first, last, stride, dilation, padding))
    return tuple(phases)


def check_covers(phases: Sequence[Phase], epochs: int) -> None:
    """Every epoch of a run of ``epochs`` in exactly one phase, and every phase reached."""
    last = phases[-1]
    if last.last is not None and last.last < epochs:
        missing = f"epoch {epochs} is" if last.last + 1 == epochs else f"epochs {last.last + 1}-{epochs} are"
        raise OptionError(f"--retokenize: {missing} in no phase (the run has {epochs} epochs)",
                          hint=f"end the schedule with an open phase, e.g. \"{last.last + 1}-:...\"")
    for p in phases:
        if p.first > epochs:
            raise OptionError(f"--retokenize: phase {str(p)!r} starts after the run's {epochs} epochs")


def paper_dilation(stride: int, full_stride: int, kernel: int) -> int:
    """As-ViT's footnote 3: ``round((stride / full_stride − 1) · kernel / (kernel − 1)) + 1``
    (16 → 5 and 8 → 2 for K1 = 4 at stride 4)."""
    if kernel < 2:
        return 1
    return round((stride / full_stride - 1) * kernel / (kernel - 1)) + 1


# ---------------------------------------------------------------------------------------------- phase spaces
def _stem(space) -> S.Stem:
    stem = next((i for i in space.syntax.items if isinstance(i, S.Stem)), None)
    if stem is None or stem.kind != "patch_embed" or not stem.has_body:
        raise OptionError(f"--retokenize needs a `stem patch_embed {{ ... }}`; {space.filename} has "
                          f"{'none' if stem is None else 'stem ' + stem.kind}")
    return stem


def _is_the_stem(space, phase: Phase) -> bool:
    """The phase's (stride, dilation) are the stem's own in every arch: the same in the supernet's
    (largest) stem and in the smallest and the largest arch's (a stride or dilation that is a choice
    differs among them, and such a stem is rewritten)."""
    if phase.padding is not None:
        return False
    stems = {(n.stem.fields.stride, n.stem.fields.dilation)
             for n in (space.supernet_spec(), space.resolve(space.min_arch()), space.resolve(space.max_arch()))}
    return stems == {(phase.stride, phase.dilation)}


def phase_source(space, phase: Phase) -> str:
    """The space's text with the stem's ``stride``, ``dilation`` and ``padding`` set for ``phase``."""
    stem = _stem(space)
    src = space.source
    names = {f.name for f in stem.fields}
    kernel = "kernel" if "kernel" in names else "patch"
    padding = str(phase.padding) if phase.padding is not None else \
        f"({phase.dilation} * ({kernel} - 1) + 1 - {phase.stride} + 1) // 2"
    edits = [(f.span.start, f.span.end, "") for f in stem.fields if f.name in ("stride", "dilation", "padding")]
    close = src.rfind("}", stem.span.start, stem.span.end)
    edits.append((close, close, f"  stride {phase.stride}  dilation {phase.dilation}  padding {padding}  "))
    out, pos = [], 0
    for start, end, text in sorted(edits):
        out += [src[pos:start], text]
        pos = end
    return "".join(out + [src[pos:]])


def phase_space(space, phase: Phase):
    """The space trained during ``phase`` (``space`` itself when the phase is its own stem); a phase
    whose maps do not come out is a one-line :class:`OptionError` naming it."""
    from spacelang.space import loads
    if _is_the_stem(space, phase):
        return space
    try:
        out = loads(phase_source(space, phase), filename=f"{space.filename} (phase {phase})")
    except SpaceError as e:
        d = e.diagnostics[0]
        more = f" (and {len(e.diagnostics) - 1} more)" if len(e.diagnostics) > 1 else ""
        raise OptionError(f"--retokenize phase {phase} (stride {phase.stride}, dilation {phase.dilation}): "
                          f"{d.message}{more}", hint="choose a stride/dilation whose token maps every stage can take, "
                          "or a space whose splits divide them") from None
    if [(d.path, d.choices) for d in out.dims] != [(d.path, d.choices) for d in space.dims]:
        raise OptionError(f"--retokenize phase {phase}: the rewritten stem changes the space's dimensions")
    return out


# ---------------------------------------------------------------------------------------------- training
def phase_net(net, space):
    """``net`` (a :class:`~spacelang.compiler.supernet.Supernet`) resolving archs in ``space`` — the
    same modules and parameters, built around a phase's sizes.  Refuses (``OptionError``) a phase
    whose parameters or buffers would have other shapes, position embeddings excepted (resampled)."""
    import torch

    from .supernet import build_supernet
    if space is net.space:
        return net
    with torch.device("meta"):
        view = build_supernet(space)
    own = {k: tuple(v.shape) for k, v in [*net.named_parameters(), *net.named_buffers()]}
    for k, v in [*view.named_parameters(), *view.named_buffers()]:
        if own.get(k) != tuple(v.shape) and not k.endswith("pos_embed"):
            raise OptionError(f"--retokenize: {k} has shape {tuple(v.shape)} at {space.filename}'s token maps, "
                              f"{own.get(k)} in the trained network; re-tokenization needs weights that do not "
                              f"depend on the number of tokens")
    view.stem, view.stages, view.head = net.stem, net.stages, net.head  # share every module
    view.channels_last = getattr(net, "channels_last", False)  # the input's memory format follows the weights'
    return view.train(net.training)


class Retokenizer:
    """A run's schedule: the network each epoch trains, and the FLOPs each epoch spends."""

    def __init__(self, space, net, schedule: str, epochs: int):
        self.space = space
        self.phases = parse_schedule(schedule)
        check_covers(self.phases, epochs)
        self.spaces = [phase_space(space, p) for p in self.phases]
        self.nets = [phase_net(net, s) for s in self.spaces]
        # per-layer memoised exact costs (bounded memory), one cache per phase space and the space's own
        self._costs = [CostCache(s) for s in self.spaces]
        self._own_cost = CostCache(space)
        self._flops = [0, 0]

    def index(self, epoch: int) -> int:
        """The phase of 0-based ``epoch``."""
        return next(i for i, p in enumerate(self.phases) if p.holds(epoch + 1))

    def net(self, epoch: int):
        """The network trained in 0-based ``epoch`` (the supernet's modules, the phase's sizes)."""
        return self.nets[self.index(epoch)]

    @property
    def ends_at_the_stem(self) -> bool:
        """The last phase is the space's own stem (the network evaluated and exported afterwards)."""
        return self.spaces[-1] is self.space

    def flops_per_image(self, space_index: int | None, arch: Mapping[str, Any]) -> int:
        """Forward FLOPs of ``arch`` in phase ``space_index``'s space (None: the space's own)."""
        return (self._own_cost if space_index is None else self._costs[space_index])(arch).flops

    def count(self, epoch: int, archs: Sequence[Mapping[str, Any]], images: int) -> None:
        """Add one step of 0-based ``epoch``: ``archs`` trained on ``images`` images."""
        i = self.index(epoch)
        self._flops[0] += images * sum(self.flops_per_image(i, a) for a in archs)
        self._flops[1] += images * sum(self.flops_per_image(None, a) for a in archs)

    def epoch_metrics(self, epoch: int) -> dict[str, str]:
        """log.csv's columns for 0-based ``epoch`` (and a fresh count for the next)."""
        flops, full = self._flops
        self._flops = [0, 0]
        return {"phase": self.phases[self.index(epoch)].label, "train_flops": str(flops),
                "train_flops_full": str(full)}


def summary(rows: Sequence[Mapping[str, Any]]) -> dict | None:
    """Training FLOPs per phase and in total, with and without the schedule, from log.csv rows
    (None when the rows carry no FLOPs)."""
    rows = [r for r in rows if r.get("train_flops")]
    if not rows:
        return None
    phases: dict[str, dict] = {}
    for r in rows:
        p = phases.setdefault(r["phase"], {"phase": r["phase"], "epochs": [], "train_flops": 0,
                                           "train_flops_full": 0})
        p["epochs"].append(int(r["epoch"]))
        p["train_flops"] += int(r["train_flops"])
        p["train_flops_full"] += int(r["train_flops_full"])
    flops = sum(p["train_flops"] for p in phases.values())
    full = sum(p["train_flops_full"] for p in phases.values())
    return {"phases": list(phases.values()), "train_flops": flops, "train_flops_full": full,
            "saving": 1 - flops / full if full else 0.0}


def summary_text(s: Mapping[str, Any]) -> str:
    """The summary as a few lines (Table 6's saving)."""
    from spacelang.util.quantity import human
    lines = ["re-tokenization (forward FLOPs × images, cost model):"]
    for p in s["phases"]:
        e = p["epochs"]
        lines.append(f"  phase {p['phase']:>8}  epochs {e[0]}-{e[-1]}  {human(p['train_flops'])} FLOPs "
                     f"({p['train_flops'] / max(p['train_flops_full'], 1):.1%} of full-resolution)")
    lines.append(f"  total {human(s['train_flops'])} FLOPs vs {human(s['train_flops_full'])} without the schedule: "
                 f"saving {s['saving']:.1%}")
    return "\n".join(lines)


__all__ = ["Phase", "parse_schedule", "check_covers", "paper_dilation", "phase_source", "phase_space", "phase_net",
           "Retokenizer", "summary", "summary_text", "LOG_COLUMNS"]
