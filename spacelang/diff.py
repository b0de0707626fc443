"""Semantic diff of two spaces, for review: what a change to a ``.space`` file does to the space.

Compares the resolved spaces, not the text: dimensions added and removed (by path), choice sets
changed (old → new), fields whose fixed value or derived expression changed, kinds changed, layers
added or removed, constraints changed, and the exact number of subnets of each space with their
ratio.  Names are resolved before comparing, so renaming a ``let`` or writing ``heads * 64`` for
``heads * head_dim`` with ``head_dim 64`` is no change.

Per-block entries that differ only by the block index (a block written once and instantiated
by ``depth``, ``repeat`` or templates) collapse into one line ``STAGE.*.FIELD`` with the block
indices they cover.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import attrs

from . import kinds as K
from .exprtext import literal_text
from .ir import Const, EvalError, Op, Origin, Ref, evaluate, show
from .walk import Role



# ---------------------------------------------------------------------------- rendering values

def show_value(v: Any) -> str:
    """A constant as the language writes it."""
    return literal_text(v)


def show_choices(choices) -> str:
    return "{" + ", ".join(show_value(c) for c in choices) + "}"


def _fold(e):
    """Constant sub-expressions evaluated, so that `2 * 32` and `64` compare equal."""
    if isinstance(e, Op):
        args = tuple(_fold(a) for a in e.args)
        e = Op(e.op, args)
        if all(isinstance(a, Const) for a in args):
            try:
                return Const(evaluate(e, {}))
            except EvalError:
                return e
    return e


def show_expr(e, prefix: str = "") -> str:
    """An IR expression in the language's syntax; paths under ``prefix`` (the layer's own
    fields) are shown by their field name, so per-block expressions read the same in every block."""
    return show(e, prefix)


def _blocks_text(blocks: list[int]) -> str:
    """[0, 1, 2, 5] -> 'blocks 0–2, 5'."""
    parts, i = [], 0
    while i < len(blocks):
        j = i
        while j + 1 < len(blocks) and blocks[j + 1] == blocks[j] + 1:
            j += 1
        parts.append(str(blocks[i]) if i == j else f"{blocks[i]}–{blocks[j]}")
        i = j + 1
    return ("block " if len(blocks) == 1 else "blocks ") + ", ".join(parts)


# ---------------------------------------------------------------------------- the diff

@attrs.define
class Entry:
    """One line of the diff: ``path`` (``STAGE.*.FIELD`` when collapsed over ``blocks``)."""

    path: str
    blocks: list = attrs.field(factory=list)  # block indices a collapsed entry covers
    old: str | None = None
    new: str | None = None
    note: str | None = None

    def as_json(self) -> dict:
        out = {"path": self.path}
        if self.blocks:
            out["blocks"] = self.blocks
        for k in ("old", "new", "note"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out


SECTIONS = (
    ("dimensions_added", "dimensions added", "+"),
    ("dimensions_removed", "dimensions removed", "-"),
    ("choices_changed", "choices changed", "~"),
    ("fields_changed", "fields changed", "~"),
    ("kinds_changed", "kinds changed", "~"),
    ("layers_added", "layers added", "+"),
    ("layers_removed", "layers removed", "-"),
    ("constraints_added", "constraints added", "+"),
    ("constraints_removed", "constraints removed", "-"),
)


@attrs.define
class SpaceDiff:
    """The semantic difference between spaces ``a`` and ``b`` (see module doc)."""

    a_name: str
    b_name: str
    a_file: str
    b_file: str
    a_size: int
    b_size: int
    sections: dict  # key of SECTIONS -> list[Entry]

    @property
    def identical(self) -> bool:
        return not any(self.sections.values())

    @property
    def ratio(self) -> float:
        """``b_size / a_size`` (float; ``inf`` beyond the float range)."""
        try:
            return float(Fraction(self.b_size, self.a_size))
        except OverflowError:
            return math.inf

    def render(self) -> str:
        lines = [f"--- {self.a_file}: space {self.a_name}, {self.a_size:,} subnets",
                 f"+++ {self.b_file}: space {self.b_name}, {self.b_size:,} subnets",
                 f"size: {_short(self.a_size)} → {_short(self.b_size)} subnets (×{_ratio_text(self.a_size, self.b_size)})"]
        if self.identical:
            lines.append("no semantic differences")
            return "\n".join(lines) + "\n"
        for key, title, mark in SECTIONS:
            entries = self.sections.get(key) or []
            if not entries:
                continue
            lines.append("")
            lines.append(f"{title} ({len(entries)}):")
            width = min(40, max(len(e.path) for e in entries))
            bwidth = max((len(_blocks_text(e.blocks)) for e in entries if e.blocks), default=0)
            for e in entries:
                parts = [e.path.ljust(width)]
                if bwidth:
                    parts.append((_blocks_text(e.blocks) if e.blocks else "").ljust(bwidth))
                if e.old is not None and e.new is not None:
                    parts.append(f"{e.old} → {e.new}")
                elif e.new is not None or e.old is not None:
                    parts.append(e.new if e.new is not None else e.old)
                if e.note:
                    parts.append(f"({e.note})")
                lines.append(f"  {mark} " + "  ".join(p for p in parts).rstrip())
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict:
        out = {
            "a": {"file": self.a_file, "space": self.a_name, "subnets": self.a_size},
            "b": {"file": self.b_file, "space": self.b_name, "subnets": self.b_size},
            "ratio": self.ratio if math.isfinite(self.ratio) else None,
            "identical": self.identical,
        }
        for key, _, _ in SECTIONS:
            out[key] = [e.as_json() for e in self.sections.get(key) or []]
        return out


def _stage_text(space, st) -> str:
    n, k = len(st.blocks), sum(1 for d in space.dims if d.stage == st.name)
    return f"{n} block slot{'' if n == 1 else 's'}, {k} dimension{'' if k == 1 else 's'}"


def _short(n: int) -> str:
    return f"{n:,}" if n < 10 ** 7 else f"{n:.3e}"


def _ratio_text(a: int, b: int) -> str:
    r = Fraction(b, a)
    if r.denominator == 1 and r < 10 ** 7:
        return f"{r.numerator:,}"
    try:
        f = float(r)
    except OverflowError:
        return f"10^{math.log10(b) - math.log10(a):.1f}"
    return f"{f:.4g}"


class _Collector:
    """Entries keyed so that per-block ones differing only by the block index collapse."""

    def __init__(self):
        self.groups: dict[tuple, Entry] = {}

    def add(self, section: str, stage: str | None, block: int | None, rest: str, old=None, new=None, note=None):
        if block is None:
            path = ".".join(p for p in (stage, rest) if p)
            self.groups[(section, path, old, new, note)] = Entry(path, [], old, new, note)
            return
        key = (section, stage, "*", rest, old, new, note)
        e = self.groups.get(key)
        if e is None:
            e = self.groups[key] = Entry(f"{stage}.*.{rest}" if rest else f"{stage}.*", [], old, new, note)
        e.blocks.append(block)

    def sections(self) -> dict:
        out: dict[str, list] = {k: [] for k, _, _ in SECTIONS}
        for key, e in self.groups.items():
            if len(e.blocks) == 1:  # one block: its concrete path
                e.path = e.path.replace(".*", f".{e.blocks[0]}", 1)
                e.blocks = []
            else:
                e.blocks.sort()
            out[key[0]].append(e)
        return out


def _slots(space) -> dict[str, tuple]:
    """Every layer by slot path -> (stage, block index or None, rest-of-path prefix, LayerIR)."""
    out = {}
    for s in space.slots:
        stage = space.stages[s.stage].name if s.stage is not None else None
        if s.role is Role.BLOCK:
            out[s.path] = (stage, s.index, "", s.layer)
        else:
            out[s.path] = (stage, None, s.role.value, s.layer)
    return out


def _field_exprs(layer) -> dict:
    """A layer's fields with its kind's defaults filled in (defaults that mean "unset" left out)."""
    kind = K.get(layer.kind)
    out = {}
    if kind is not None:
        for name, f in kind.fields.items():
            if not f.required and f.default is not None:
                out[name] = Const(f.default)
    for name, e in layer.fields.items():
        out[name] = _fold(e)
    return out


def _dim_split(d) -> tuple[str | None, int | None, str]:
    """(stage, block, rest) of a dimension path, for collapsing per-block dimensions."""
    if d.stage is not None and d.block is not None:
        return d.stage, d.block, d.path[len(f"{d.stage}.{d.block}."):]
    return None, None, d.path


def diff_spaces(a, b) -> SpaceDiff:
    """The semantic difference from space ``a`` to space ``b``."""
    c = _Collector()
    a_dims = {d.path: d for d in a.dims}
    b_dims = {d.path: d for d in b.dims}
    a_slots, b_slots = _slots(a), _slots(b)

    def fixed_in(own_slots, other_slots, d) -> str | None:
        """What a dimension's field is (fixed or derived) in the other space, if it is not a dim
        there (and the layer has the same kind on both sides)."""
        if d.origin is not Origin.FIELD:
            return None
        slot = f"{d.stage}.{d.block}" if d.block is not None else d.path.rsplit(".", 1)[0]
        if slot not in other_slots or slot not in own_slots:
            return None
        layer = other_slots[slot][3]
        if layer.kind != own_slots[slot][3].kind:
            return None
        e = _field_exprs(layer).get(d.field)
        if e is None or (isinstance(e, Ref) and e.path == d.path):
            return None
        return show_expr(e, slot + ".")

    a_stage_names = {st.name for st in a.stages}
    b_stage_names = {st.name for st in b.stages}
    for p, d in b_dims.items():
        if d.stage is not None and d.stage not in a_stage_names:
            continue  # a new stage: reported whole, under layers added
        if p not in a_dims:
            stage, block, rest = _dim_split(d)
            was = fixed_in(b_slots, a_slots, d)
            c.add("dimensions_added", stage, block, rest, new=show_choices(d.choices),
                  note=f"was {was}" if was is not None else None)
    for p, d in a_dims.items():
        if d.stage is not None and d.stage not in b_stage_names:
            continue  # a removed stage: reported whole, under layers removed
        if p not in b_dims:
            stage, block, rest = _dim_split(d)
            now = fixed_in(a_slots, b_slots, d)
            c.add("dimensions_removed", stage, block, rest, old=show_choices(d.choices),
                  note=f"now {now}" if now is not None else None)
    for p, d in a_dims.items():
        e = b_dims.get(p)
        if e is not None and (d.choices != e.choices or d.type != e.type
                              or tuple(map(type, d.choices)) != tuple(map(type, e.choices))):
            stage, block, rest = _dim_split(d)
            c.add("choices_changed", stage, block, rest, old=show_choices(d.choices), new=show_choices(e.choices))

    # top-level facts that are not dimensions
    for label, av, bv in (("input.resolution", a.resolution, b.resolution),
                          ("input.channels", Const(a.channels), Const(b.channels)),
                          ("classes", Const(a.classes), Const(b.classes))):
        if not (isinstance(av, Ref) and isinstance(bv, Ref)) and show_expr(_fold(av)) != show_expr(_fold(bv)):
            if isinstance(av, Ref) or isinstance(bv, Ref):
                continue  # a dimension on one side: reported with the dimensions
            c.add("fields_changed", None, None, label, old=show_expr(_fold(av)), new=show_expr(_fold(bv)))
    a_stages = {st.name: st for st in a.stages}
    b_stages = {st.name: st for st in b.stages}
    for name, st in b_stages.items():
        if name not in a_stages:
            c.add("layers_added", None, None, f"stage {name}", note=_stage_text(b, st))
    for name, st in a_stages.items():
        if name not in b_stages:
            c.add("layers_removed", None, None, f"stage {name}", note=_stage_text(a, st))
            continue
        sb = b_stages[name]
        for what, av, bv in (("dim", st.dim, sb.dim), ("depth", st.depth, sb.depth)):
            if isinstance(av, Ref) or isinstance(bv, Ref):
                continue
            sa_ = show_expr(_fold(av)) if av is not None else f"{len(st.blocks)} (all blocks)"
            sb_ = show_expr(_fold(bv)) if bv is not None else f"{len(sb.blocks)} (all blocks)"
            if sa_ != sb_:
                c.add("fields_changed", name, None, what, old=sa_, new=sb_)

    for slot, (stage, block, rest, lb) in b_slots.items():
        if slot not in a_slots and (stage is None or stage in a_stages):
            c.add("layers_added", stage, block, rest, new=lb.kind + (" optional" if lb.optional else ""))
    for slot, (stage, block, rest, la) in a_slots.items():
        if slot not in b_slots:
            if stage is None or stage in b_stages:
                c.add("layers_removed", stage, block, rest, old=la.kind + (" optional" if la.optional else ""))
            continue
        lb = b_slots[slot][3]
        if la.kind != lb.kind:
            c.add("kinds_changed", stage, block, rest or "kind", old=la.kind, new=lb.kind)
            continue
        fa, fb = _field_exprs(la), _field_exprs(lb)
        prefix = slot + "."
        for fname in list(fa) + [f for f in fb if f not in fa]:
            ea, eb = fa.get(fname), fb.get(fname)
            own_a = isinstance(ea, Ref) and ea.path == prefix + fname
            own_b = isinstance(eb, Ref) and eb.path == prefix + fname
            if own_a or own_b:
                continue  # a dimension of this layer: reported with the dimensions
            sa_ = show_expr(ea, prefix) if ea is not None else "unset"
            sb_ = show_expr(eb, prefix) if eb is not None else "unset"
            if sa_ != sb_:
                c.add("fields_changed", stage, block, ".".join(x for x in (rest, fname) if x), old=sa_, new=sb_)

    a_cons = [str(x) for x in a.constraints]
    b_cons = [str(x) for x in b.constraints]
    for x in b_cons:
        if x not in a_cons:
            c.add("constraints_added", None, None, x)
    for x in a_cons:
        if x not in b_cons:
            c.add("constraints_removed", None, None, x)
    return SpaceDiff(a.name, b.name, a.filename, b.filename, a.size(), b.size(), c.sections())
