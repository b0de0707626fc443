"""The public ``Space``: dimensions, sampling, validation, resolution to a concrete network.

An *arch* is a point of the space: a dict from dimension path to value holding exactly the active
dimensions (blocks beyond the chosen depth and skipped optional blocks contribute none; a ``let``
used only by inactive blocks is inactive), JSON-serialisable, canonical with sorted keys.

``Space`` is a small, documented surface.  Counting lives in :mod:`spacelang.counting`, the cost
range in :mod:`spacelang.cost_range`, the supernet's largest-field spec in
:mod:`spacelang.supernet_spec`, and the network walk every consumer shares in
:mod:`spacelang.walk`; other modules read a space only through the accessors below.
"""
from __future__ import annotations

import json
import random
from collections import defaultdict
from typing import Any, Callable, Iterator, Mapping

import attrs

from . import kinds as K
from .diagnostics import Diagnostic
from .errors import ArchError, EvalError, FieldError, SpaceError
from .fields import normalize
from .ir import ConstraintIR, Dim, LayerIR, Origin, Ref, StageIR, evaluate, refs
from .kinds.base import Context
from .netspec import Layer, NetSpec, StageSpec
from .parser import parse, read_source
from .resolve import Resolver
from .syntax import SpaceFile
from . import walk as W
from .util.archkey import arch_json


@attrs.frozen
class Use:
    """Something that reads a dimension: the trunk every arch has (``stage is None``), the
    fields of block ``block`` of stage ``stage``, or (``gate``) that optional block's presence."""

    stage: int | None = None
    block: int | None = None
    gate: bool = False

    @property
    def always(self) -> bool:
        return self.stage is None


ALWAYS = Use()


class Space:
    """A resolved, checked search space.  Build it with :func:`load` or :func:`loads`.

    Public, read-only attributes: ``name``, ``filename``, ``source``, ``syntax``, ``resolution``
    (an expression), ``channels``, ``classes``, ``stem``, ``stages``, ``head`` (the skeleton:
    :class:`~spacelang.ir.LayerIR`/:class:`~spacelang.ir.StageIR`), ``constraints``, ``dims`` (every
    used dimension, in a stable order), ``unused`` (dimensions nothing reads), ``warnings``,
    ``slots`` (every layer slot, :func:`spacelang.walk.slots`), ``depth_paths`` and ``gates``
    (dimensions that switch blocks on and off), ``trunk_paths`` (dimensions read by a layer every
    arch has).
    """

    def __init__(self, syntax: SpaceFile, resolved, warnings: list[Diagnostic] | None = None):
        self.syntax = syntax
        self.name: str = resolved.name
        self.filename: str = syntax.filename
        self.source: str = syntax.source
        self.resolution = resolved.resolution
        self.channels: int = resolved.channels
        self.classes: int = resolved.classes
        self.stem: LayerIR = resolved.stem
        self.stages: tuple[StageIR, ...] = resolved.stages
        self.head: LayerIR = resolved.head
        self.constraints: tuple[ConstraintIR, ...] = resolved.constraints
        self.warnings: list[Diagnostic] = list(warnings or [])
        self.slots: tuple[W.Slot, ...] = W.slots(self)
        self._norm_cache: dict = {}
        self._layer_refs: dict = {}
        self._memo: dict[str, Any] = {}
        self._analyse(resolved.dims)

    # ------------------------------------------------------------------ structure
    def _analyse(self, all_dims: dict[str, Dim]) -> None:
        uses: dict[str, set] = defaultdict(set)
        for p in refs(self.resolution):
            uses[p].add(ALWAYS)
        for lay in (self.stem, self.head):
            for e in lay.fields.values():
                for p in refs(e):
                    uses[p].add(ALWAYS)
        for si, st in enumerate(self.stages):
            for p in refs(st.dim) | (refs(st.depth) if st.depth is not None else set()):
                uses[p].add(ALWAYS)
            if st.transition is not None:
                for e in st.transition.fields.values():
                    for p in refs(e):
                        uses[p].add(ALWAYS)
            for b in st.blocks:
                if b.present:
                    uses[b.present].add(Use(si, b.index, gate=True))
                for e in b.fields.values():
                    for p in refs(e):
                        uses[p].add(Use(si, b.index))
        self._uses = {p: frozenset(u) for p, u in uses.items()}
        self.unused: list[Dim] = [d for p, d in all_dims.items() if p not in uses]
        stage_rank = {st.name: i for i, st in enumerate(self.stages)}

        def order(d: Dim):
            if d.origin is Origin.RESOLUTION:
                return (0, 0, 0, 0)
            if d.stage is None:
                return (1 if not d.path.startswith(("stem.", "head.")) else (2 if d.path.startswith("stem.") else 9),
                        0, 0, d.span.start)
            b = -1 if d.block is None else d.block
            return (3, stage_rank.get(d.stage, 0), b, 0 if d.origin is Origin.PRESENT else 1, d.span.start)

        self.dims: tuple[Dim, ...] = tuple(sorted((d for p, d in all_dims.items() if p in uses), key=order))
        self._dim = {d.path: d for d in self.dims}
        self.depth_paths: frozenset[str] = frozenset(st.depth.path for st in self.stages if isinstance(st.depth, Ref))
        #: the gates, depths first: choosing them decides which other dimensions are active
        self.gates: tuple[Dim, ...] = tuple([d for d in self.dims if d.path in self.depth_paths]
                                            + [d for d in self.dims if d.origin is Origin.PRESENT])
        self._gate_paths = frozenset(d.path for d in self.gates)
        self.trunk_paths: frozenset[str] = frozenset(p for p, us in self._uses.items() if ALWAYS in us)
        self._block_uses = {p: tuple((u.stage, u.block, u.gate) for u in us if not u.always)
                            for p, us in self._uses.items()}

    def dim(self, path: str) -> Dim:
        """The dimension at ``path`` (``KeyError`` if there is none; see :meth:`has_dim`)."""
        return self._dim[path]

    def has_dim(self, path: str) -> bool:
        return path in self._dim

    def uses(self, path: str) -> frozenset[Use]:
        """What reads the dimension at ``path``."""
        return self._uses[path]

    def is_gate(self, path: str) -> bool:
        """Whether ``path`` is a stage depth or an optional block's presence."""
        return path in self._gate_paths

    def __repr__(self) -> str:
        return f"<Space {self.name}: {len(self.dims)} dimensions, {self.size():,} subnets>"

    # ------------------------------------------------------------------ activity
    def active_slots(self, arch: Mapping[str, Any]) -> set[tuple[int, int]]:
        """``(stage index, block index)`` of every block the arch runs."""
        out = set()
        for si, st in enumerate(self.stages):
            for b in st.blocks[: W.stage_depth(st, arch)]:
                if W.block_runs(b, arch):
                    out.add((si, b.index))
        return out

    def _is_active(self, path: str, arch: Mapping[str, Any], slots: set) -> bool:
        if path in self.trunk_paths:
            return True
        for stage, block, gate in self._block_uses[path]:  # plain tuples: sampling's hot path
            if gate:
                if block < W.stage_depth(self.stages[stage], arch):
                    return True
            elif (stage, block) in slots:
                return True
        return False

    def active_paths(self, arch: Mapping[str, Any]) -> list[str]:
        """The dimension paths an arch with these gate values (depths, presence) must hold."""
        slots = self.active_slots(arch)
        return [d.path for d in self.dims if self._is_active(d.path, arch, slots)]

    # ------------------------------------------------------------------ counting
    def size(self) -> int:
        """Exact number of distinct subnets (archs), counting each gated block once."""
        if "size" not in self._memo:
            from .counting import count_archs
            self._memo["size"] = count_archs(self)
        return self._memo["size"]

    # ------------------------------------------------------------------ archs
    def complete(self, gate_value: Callable[[Dim], Any], value: Callable[[Dim], Any]) -> dict:
        """The canonical arch whose gates take ``gate_value(dim)`` and whose other active
        dimensions take ``value(dim)`` (gates are chosen first; they decide what is active)."""
        arch: dict[str, Any] = {d.path: gate_value(d) for d in self.gates}
        slots = self.active_slots(arch)
        out = {}
        for d in self.dims:
            if self._is_active(d.path, arch, slots):
                out[d.path] = arch[d.path] if d.path in arch else value(d)
        return dict(sorted(out.items()))

    def sample(self, rng: random.Random) -> dict:
        """An arch drawn uniformly per dimension: depths and presence first, then each active dimension."""
        if not isinstance(rng, random.Random):
            raise TypeError("sample() needs a random.Random (seed it for reproducible archs)")

        def pick(d: Dim):
            return d.choices[rng.randrange(d.size)]
        return self.complete(pick, pick)

    def max_arch(self) -> dict:
        """Every dimension at its largest choice, every optional block present."""
        return self.complete(lambda d: d.hi, lambda d: d.hi)

    def min_arch(self) -> dict:
        """Every dimension at its smallest choice, every optional block skipped."""
        return self.complete(lambda d: d.lo, lambda d: d.lo)

    def validate(self, arch: Any) -> dict:
        """Check that ``arch`` is a point of this space; returns its canonical form.

        Raises :class:`ArchError` naming the offending dimension path.
        """
        if not isinstance(arch, Mapping):
            raise ArchError(None, f"an arch is a mapping from dimension path to value, got {type(arch).__name__}")
        for k in arch:
            if not isinstance(k, str):
                raise ArchError(None, f"dimension paths are strings, got {k!r}")
        canon: dict[str, Any] = {}
        for d in self.gates:
            if d.path in arch:
                canon[d.path] = self._check_value(d, arch[d.path])
            elif d.path in self.depth_paths:
                raise ArchError(d.path, "missing from the arch")
        active = self.active_paths(canon)
        active_set = set(active)
        for p in active:
            if p not in arch:
                raise ArchError(p, "missing from the arch")
            canon[p] = self._check_value(self._dim[p], arch[p])
        for p in arch:
            if p not in active_set:
                if p in self._dim:
                    raise ArchError(p, self._why_inactive(p, canon))
                alt = K.suggest(p, self._dim)
                raise ArchError(p, f"no such dimension in space {self.name}" + (f" (did you mean {alt}?)" if alt else ""))
        return dict(sorted((p, canon[p]) for p in active))

    def _why_inactive(self, path: str, arch) -> str:
        d = self._dim[path]
        if d.stage is not None and d.block is not None:
            st = next(s for s in self.stages if s.name == d.stage)
            depth = W.stage_depth(st, arch)
            if d.block >= depth:
                return f"is inactive: block {d.block} is beyond depth {depth} of stage {d.stage}"
            return f"is inactive: block {d.block} of stage {d.stage} is skipped"
        return "is inactive in this arch (only skipped or beyond-depth blocks use it)"

    @staticmethod
    def _check_value(d: Dim, v: Any) -> Any:
        if d.type == "bool":
            ok = isinstance(v, bool) and v in d.choices
        elif d.type in ("int", "float", "num"):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v in d.choices
        else:
            ok = isinstance(v, str) and v in d.choices
        if not ok:
            shown = ", ".join(json.dumps(c) for c in d.choices[:12]) + (", …" if d.size > 12 else "")
            raise ArchError(d.path, f"{json.dumps(v) if _jsonable(v) else repr(v)} is not one of {{{shown}}}")
        return d.choices[d.choices.index(v)]  # canonical type (4 -> 4.0 for float dims)

    def input_shape(self, arch: Mapping[str, Any]) -> tuple[int, int, int]:
        """(C, H, W) of the images the arch takes."""
        r = evaluate(self.resolution, arch)
        return (self.channels, r, r)

    # ------------------------------------------------------------------ resolution to a concrete net
    def walk(self, env: Mapping[str, Any], visit: W.Visit, **kw) -> Iterator[tuple[W.Slot, Context, Any]]:
        """:func:`spacelang.walk.walk` over this space."""
        return W.walk(self, env, visit, **kw)

    def normalized(self, slot: W.Slot, env: Mapping[str, Any], ctx: Context):
        """The normalised layer of ``slot`` under ``env`` and ``ctx`` (memoised on the values of
        the dimensions its fields read); raises :class:`FieldError`/:class:`EvalError`."""
        layer = slot.layer
        keys = self._layer_refs.get(slot.number)
        if keys is None:
            keys = self._layer_refs[slot.number] = tuple(sorted(set().union(*map(refs, layer.fields.values()))))
        key = (slot.number, ctx, tuple(env[k] for k in keys))
        hit = self._norm_cache.get(key)
        if hit is None:
            if len(self._norm_cache) > 200_000:
                self._norm_cache.clear()
            hit = self._norm_cache[key] = normalize(layer, env, ctx)
        return hit

    def resolve(self, arch: Mapping[str, Any], validate: bool = True) -> NetSpec:
        """The concrete network of an arch: every layer normalised by its kind."""
        env = self.validate(arch) if validate else arch
        try:
            return self.netspec(env)
        except (FieldError, EvalError) as e:
            raise ArchError(None, f"arch is not buildable: {e.message}") from None

    def netspec(self, env: Mapping[str, Any]) -> NetSpec:
        """:meth:`resolve` without validation or error translation (``env`` must be canonical)."""
        stem = head = None
        stages: list[list] = [[None, []] for _ in self.stages]
        for slot, _, f in self.walk(env, lambda s, c: self.normalized(s, env, c)):
            layer = Layer(slot.layer.kind, f, slot.index)
            if slot.role is W.Role.STEM:
                stem = layer
            elif slot.role is W.Role.HEAD:
                head = layer
            elif slot.role is W.Role.DOWNSAMPLE:
                stages[slot.stage][0] = layer
            else:
                stages[slot.stage][1].append(layer)
        specs = tuple(StageSpec(st.name, evaluate(st.dim, env), trans, tuple(blocks))
                      for st, (trans, blocks) in zip(self.stages, stages))
        return NetSpec(self.channels, evaluate(self.resolution, env), self.classes, stem, specs, head)

    def supernet_spec(self) -> NetSpec:
        """The supernet: every block slot present, every numeric field at its largest value."""
        if "supernet" not in self._memo:
            from .supernet_spec import supernet_spec
            self._memo["supernet"] = supernet_spec(self)
        return self._memo["supernet"]

    def cost_range(self, convention: str = "fvcore"):
        """``(Cost(min params, min FLOPs), Cost(max params, max FLOPs))`` over the space under a
        counting ``convention`` (``fvcore`` or ``macs``) — :class:`spacelang.cost_range.CostRange`,
        memoised."""
        key = f"cost_range/{convention}"
        if key not in self._memo:
            from .cost import Cost
            from .cost_range import CostRange
            from .search.costcache import CostCache
            r = CostRange(self, CostCache(self, convention))
            self._memo[key] = (Cost(r.lo["params"], r.lo["flops"]), Cost(r.hi["params"], r.hi["flops"]))
        return self._memo[key]

    def canonical_json(self, arch: Mapping[str, Any]) -> str:
        """The validated arch's canonical JSON text (:func:`spacelang.util.archkey.arch_json`)."""
        return arch_json(self.validate(arch))


def _jsonable(v) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None


def loads(text: str, filename: str = "<string>") -> Space:
    """Parse, resolve and check ``.space`` text; raises :class:`SpaceError` with every error."""
    syntax = parse(text, filename)
    return from_syntax(syntax)


def from_syntax(syntax: SpaceFile) -> Space:
    r = Resolver(syntax)
    resolved = r.run()
    if resolved is None:
        raise SpaceError(r.d.items, syntax.source)
    space = Space(syntax, resolved, [])
    from .checker import check_space
    diags = check_space(space, r.d)
    errors = [d for d in diags if d.severity == "error"]
    if errors:
        raise SpaceError(diags, syntax.source)
    space.warnings = [d for d in diags if d.severity != "error"]
    return space


def load(path: str) -> Space:
    """Load a ``.space`` file (raises :class:`SpaceError`)."""
    return loads(read_source(str(path)), filename=str(path))
