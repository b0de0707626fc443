"""The public ``Space``: dimensions, exact counting, sampling, validation, resolution.

An *arch* is a point of the space: a dict from dimension path to value holding exactly the active
dimensions (blocks beyond the chosen depth and skipped optional blocks contribute none; a ``let``
used only by inactive blocks is inactive), JSON-serialisable, canonical with sorted keys.
"""
from __future__ import annotations

import itertools
import json
import random
from collections import defaultdict
from typing import Any, Iterable, Mapping

from . import kinds as K
from .diagnostics import ArchError, Diagnostic, SpaceError
from .fields import FieldError, head_has_cls, normalize
from .ir import ConstraintIR, Const, Dim, EvalError, LayerIR, Ref, StageIR, evaluate, refs
from .kinds.base import Context, FieldError
from .netspec import Layer, NetSpec, StageSpec
from .parser import parse, read_source
from .resolve import Resolver
from .syntax import SpaceFile

ALWAYS = None  # consumer key of dimensions that every arch has


class Space:
    """A resolved, checked search space.  Build it with :func:`load` or :func:`loads`."""

    def __init__(self, syntax: SpaceFile, resolved, warnings: list[Diagnostic]):
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
        self.warnings = warnings
        self._norm_cache: dict = {}
        self._layer_refs: dict = {}
        self._analyse(resolved.dims)

    # ------------------------------------------------------------------ structure
    def _analyse(self, all_dims: dict[str, Dim]) -> None:
        consumers: dict[str, set] = defaultdict(set)
        for p in refs(self.resolution):
            consumers[p].add(ALWAYS)
        for lay in (self.stem, self.head):
            for e in lay.fields.values():
                for p in refs(e):
                    consumers[p].add(ALWAYS)
        for si, st in enumerate(self.stages):
            for p in refs(st.dim) | (refs(st.depth) if st.depth is not None else set()):
                consumers[p].add(ALWAYS)
            if st.transition is not None:
                for e in st.transition.fields.values():
                    for p in refs(e):
                        consumers[p].add(ALWAYS)
            for b in st.blocks:
                if b.present:
                    consumers[b.present].add(("gate", si, b.index))
                for e in b.fields.values():
                    for p in refs(e):
                        consumers[p].add((si, b.index))
        self._consumers = dict(consumers)
        self.unused = [d for p, d in all_dims.items() if p not in consumers]
        stage_rank = {st.name: i for i, st in enumerate(self.stages)}

        def order(d: Dim):
            if d.path == "input.resolution":
                return (0, 0, 0, 0)
            if d.stage is None:
                return (1 if not d.path.startswith(("stem.", "head.")) else (2 if d.path.startswith("stem.") else 9),
                        0, 0, d.span.start)
            b = -1 if d.block is None else d.block
            return (3, stage_rank.get(d.stage, 0), b, 0 if d.origin == "present" else 1, d.span.start)

        used = [d for p, d in all_dims.items() if p in consumers]
        self.dims: tuple[Dim, ...] = tuple(sorted(used, key=order))
        self._dim = {d.path: d for d in self.dims}
        self._depth_paths = {st.depth.path for st in self.stages if isinstance(st.depth, Ref)}
        self._trunk = set()
        for p, cs in self._consumers.items():
            if ALWAYS in cs:
                self._trunk.add(p)

    def dim(self, path: str) -> Dim:
        return self._dim[path]

    def __repr__(self) -> str:
        return f"<Space {self.name}: {len(self.dims)} dimensions, {self.size():,} subnets>"

    # ------------------------------------------------------------------ activity
    def _depth(self, st: StageIR, arch: Mapping[str, Any]) -> int:
        if st.depth is None:
            return len(st.blocks)
        return evaluate(st.depth, arch)

    def active_slots(self, arch: Mapping[str, Any]) -> set:
        """``(stage index, block index)`` of every block the arch runs."""
        out = set()
        for si, st in enumerate(self.stages):
            for b in st.blocks[: self._depth(st, arch)]:
                if not b.optional or arch.get(b.present) is True:
                    out.add((si, b.index))
        return out

    def _is_active(self, path: str, arch: Mapping[str, Any], slots: set) -> bool:
        for c in self._consumers[path]:
            if c is ALWAYS:
                return True
            if c[0] == "gate":
                st = self.stages[c[1]]
                if c[2] < self._depth(st, arch):
                    return True
            elif c in slots:
                return True
        return False

    def active_paths(self, arch: Mapping[str, Any]) -> list[str]:
        """The dimension paths an arch with these gate values (depths, presence) must hold."""
        slots = self.active_slots(arch)
        return [d.path for d in self.dims if self._is_active(d.path, arch, slots)]

    # ------------------------------------------------------------------ counting
    def size(self) -> int:
        """Exact number of distinct subnets (archs), counting each gated block once."""
        always = 1
        shared: list[str] = []   # dims consumed by several block slots only (conditional lets)
        local: dict[tuple, int] = defaultdict(lambda: 1)
        slot_shared: dict[tuple, frozenset] = defaultdict(frozenset)
        for d in self.dims:
            cs = self._consumers[d.path]
            if d.origin == "present" or d.path in self._depth_paths:
                continue
            if ALWAYS in cs:
                always *= d.size
            elif len(cs) == 1:
                local[next(iter(cs))] *= d.size
            else:
                shared.append(d.path)
                for c in cs:
                    slot_shared[c] = slot_shared[c] | {d.path}
        total_by_set: dict[frozenset, int] = {frozenset(): 1}
        for si, st in enumerate(self.stages):
            depths = self._dim[st.depth.path].choices if isinstance(st.depth, Ref) else \
                ((st.depth.value,) if st.depth is not None else (len(st.blocks),))
            stage_by_set: dict[frozenset, int] = defaultdict(int)
            states: dict[frozenset, int] = {frozenset(): 1}
            for bi in range(max(depths) + 1):
                if bi in depths:
                    for s, n in states.items():
                        stage_by_set[s] += n
                if bi == len(st.blocks):
                    break
                b = st.blocks[bi]
                key = (si, bi)
                new: dict[frozenset, int] = defaultdict(int)
                for s, n in states.items():
                    if b.optional:
                        new[s] += n
                    new[s | slot_shared[key]] += n * local[key]
                states = new
            combined: dict[frozenset, int] = defaultdict(int)
            for s1, n1 in total_by_set.items():
                for s2, n2 in stage_by_set.items():
                    combined[s1 | s2] += n1 * n2
            total_by_set = combined
        total = 0
        for s, n in total_by_set.items():
            f = n
            for p in s:
                f *= self._dim[p].size
            total += f
        return always * total

    # ------------------------------------------------------------------ archs
    def _complete(self, gate_value, value) -> dict:
        """An arch built by choosing gates with ``gate_value`` and other dims with ``value``."""
        arch: dict[str, Any] = {}
        for d in self.dims:
            if d.path in self._depth_paths:
                arch[d.path] = gate_value(d)
        for d in self.dims:
            if d.origin == "present":
                arch[d.path] = gate_value(d)
        slots = self.active_slots(arch)
        out = {}
        for d in self.dims:
            if not self._is_active(d.path, arch, slots):
                continue
            out[d.path] = arch[d.path] if d.path in arch else value(d)
        return dict(sorted(out.items()))

    def sample(self, rng: random.Random) -> dict:
        """An arch drawn uniformly per dimension: depths and presence first, then each active dimension."""
        if not isinstance(rng, random.Random):
            raise TypeError("sample() needs a random.Random (seed it for reproducible archs)")
        pick = lambda d: d.choices[rng.randrange(d.size)]
        return self._complete(pick, pick)

    def max_arch(self) -> dict:
        """Every dimension at its largest choice, every optional block present."""
        return self._complete(lambda d: d.hi, lambda d: d.hi)

    def min_arch(self) -> dict:
        """Every dimension at its smallest choice, every optional block skipped."""
        return self._complete(lambda d: d.lo, lambda d: d.lo)

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
        gates = [d for d in self.dims if d.path in self._depth_paths] + [d for d in self.dims if d.origin == "present"]
        for d in gates:
            if d.path in arch:
                canon[d.path] = self._check_value(d, arch[d.path])
            elif d.path in self._depth_paths:
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
            depth = self._depth(st, arch)
            if d.block >= depth:
                return f"is inactive: block {d.block} is beyond depth {depth} of stage {d.stage}"
            return f"is inactive: block {d.block} of stage {d.stage} is skipped"
        return "is inactive in this arch (only skipped or beyond-depth blocks use it)"

    @staticmethod
    def _check_value(d: Dim, v: Any) -> Any:
        ok = False
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
    def resolve(self, arch: Mapping[str, Any], validate: bool = True) -> NetSpec:
        """The concrete network of an arch: every field normalised by its kind."""
        env = self.validate(arch) if validate else arch
        try:
            return self._netspec(env)
        except (FieldError, EvalError) as e:
            raise ArchError(None, f"arch is not buildable: {getattr(e, 'message', e)}") from None

    def _norm(self, layer: LayerIR, env, ctx: Context) -> dict:
        """``normalize`` memoised on (layer, context, values of the dimensions it reads)."""
        keys = self._layer_refs.get(id(layer))
        if keys is None:
            keys = self._layer_refs[id(layer)] = tuple(sorted(set().union(*map(refs, layer.fields.values()))))
        key = (id(layer), ctx, tuple(env[k] for k in keys))
        hit = self._norm_cache.get(key)
        if hit is None:
            if len(self._norm_cache) > 200_000:
                self._norm_cache.clear()
            hit = self._norm_cache[key] = normalize(layer, env, ctx)
        return hit

    def _netspec(self, env) -> NetSpec:
        normalize = self._norm
        res = evaluate(self.resolution, env)
        cls = head_has_cls(self.head, env)
        stage_dims = [evaluate(st.dim, env) for st in self.stages]
        stem_f = normalize(self.stem, env, Context(self.channels, stage_dims[0], res, cls_token=cls))
        cur_dim, cur_size = stem_f["dim"], stem_f["size"]
        stages = []
        for si, st in enumerate(self.stages):
            dim = stage_dims[si]
            trans = None
            if st.transition is not None:
                tf = normalize(st.transition, env, Context(cur_dim, dim, cur_size, cls_token=cls, role="downsample"))
                trans = Layer(st.transition.kind, tf)
                cur_dim, cur_size = tf["dim"], tf["size"]
            blocks = []
            for b in st.blocks[: self._depth(st, env)]:
                if b.optional and env.get(b.present) is not True:
                    continue
                bf = normalize(b, env, Context(cur_dim, dim, cur_size, index=b.index, cls_token=cls))
                blocks.append(Layer(b.kind, bf, b.index))
                cur_dim, cur_size = bf["dim"], bf["size"]
            stages.append(StageSpec(st.name, dim, trans, tuple(blocks)))
        head_f = normalize(self.head, env, Context(cur_dim, cur_dim, cur_size, cls_token=cls, classes=self.classes))
        return NetSpec(self.channels, res, self.classes, Layer(self.stem.kind, stem_f), tuple(stages),
                       Layer(self.head.kind, head_f))

    def supernet_spec(self) -> NetSpec:
        """The supernet: every block slot present, every numeric field at its largest value."""
        from .checker import supernet_spec
        return supernet_spec(self)

    def cost_range(self):
        """``(Cost(min params, min FLOPs), Cost(max params, max FLOPs))`` over the space.

        Blocks only add cost, so depths and optional blocks sit at their extremes; every other
        dimension is then improved coordinate by coordinate until nothing changes.  Where cost
        grows with every choice (all transformer spaces) this returns the min and max archs
        exactly; where it does not (attention splits: more splits, fewer FLOPs) it finds them.
        """
        if getattr(self, "_cost_range", None) is None:
            from .cost import Cost
            ext = {(m, s): self._extreme(m, s) for m in ("params", "flops") for s in (-1, 1)}
            self._cost_range = (Cost(ext["params", -1], ext["flops", -1]), Cost(ext["params", 1], ext["flops", 1]))
        return self._cost_range

    def _extreme(self, metric: str, sign: int) -> int:
        from .cost import netspec_cost
        arch = dict(self.max_arch() if sign > 0 else self.min_arch())
        value = lambda a: getattr(netspec_cost(self._netspec(a)), metric)
        best = value(arch)
        free = [d for d in self.dims if d.origin != "present" and d.path not in self._depth_paths and d.path in arch]
        for _ in range(4):
            improved = False
            for d in free:
                for c in d.choices:
                    if c == arch[d.path]:
                        continue
                    trial = {**arch, d.path: c}
                    v = value(trial)
                    if v * sign > best * sign:
                        arch, best, improved = trial, v, True
            if not improved:
                break
        return best

    def canonical_json(self, arch: Mapping[str, Any]) -> str:
        return json.dumps(self.validate(arch), sort_keys=True)


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
