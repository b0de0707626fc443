"""Tests parametrised over the registries, as timm tests its models: every kind of
``spacelang.kinds.KINDS`` and every op of ``spacelang.compiler.ops.registry``.

Each kind ships a tiny example space (``Kind.example``).  For every kind the example checks
cleanly and normalises to the kind's typed layer; for every kind with an op, max, min and random
archs of the example run on the supernet, their extracted subnets compute the same outputs
(≤ 1e-5), and the analytic cost equals ``sum(numel)`` and fvcore's FLOPs of the extracted
subnet.  A newly registered kind is exercised by all of this with no test edited; a kind without
an op must be listed in :data:`UNCOMPILED` with the reason (and is then checked to be refused
cleanly).
"""
from __future__ import annotations

import glob
import os
import random

import attrs
import pytest

import spacelang as sl
from spacelang.kinds import KINDS, Context
from spacelang.kinds.base import Normalized, map_origin
from spacelang.netspec import Layer

from conftest import EXAMPLES, SPACES
from fvcounting import fvcore_flops, numel

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore.nn")
from spacelang.compiler import build_supernet  # noqa: E402  (after the torch skip)
from spacelang.compiler.ops import elastic, functional, get_op, registered  # noqa: E402
from spacelang.errors import CompileError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: kinds the PyTorch compiler has no op for, with the reason; everything else must have one
UNCOMPILED: dict[str, str] = {}

ALL_KINDS = sorted(KINDS)


def _compiled(name: str):
    """``name`` as a parameter, skipped with the listed reason when it has no op."""
    if name in UNCOMPILED:
        return pytest.param(name, marks=pytest.mark.skip(reason=f"{name}: {UNCOMPILED[name]}"))
    return name


COMPILED = [_compiled(n) for n in ALL_KINDS]


def _example(name: str) -> sl.Space:
    return sl.loads(KINDS[name].example, filename=f"<example of {name}>")


def _archs(space: sl.Space, n_random: int = 3, seed: int = 0):
    """Max, min and random archs, each once."""
    rng = random.Random(seed)
    out, seen = [], set()
    for label, arch in [("max", space.max_arch()), ("min", space.min_arch())] + \
            [(f"random{i}", space.sample(rng)) for i in range(n_random)]:
        key = space.canonical_json(arch)
        if key not in seen:
            seen.add(key)
            out.append((label, arch))
    return out


# --------------------------------------------------------------------------- every kind
@pytest.mark.parametrize("name", ALL_KINDS)
def test_example_checks_and_uses_the_kind(name):
    kind = KINDS[name]
    assert kind.example.strip(), f"kind {name!r} ships no example"
    space = _example(name)
    assert not space.warnings, [w.render() for w in space.warnings]
    assert space.size() >= 2, "the example should have choices, so that the elastic op is exercised"
    spec = space.supernet_spec()
    assert name in {layer.kind for layer in spec.layers}


@pytest.mark.parametrize("name", ALL_KINDS)
def test_normalised_layers_are_typed_and_frozen(name):
    kind = KINDS[name]
    assert issubclass(kind.layer, Normalized) and kind.layer is not Normalized
    space = _example(name)
    for _, arch in _archs(space, n_random=1):
        for layer in space.resolve(arch).layers:
            f = layer.fields
            assert type(f) is KINDS[layer.kind].layer
            with pytest.raises(attrs.exceptions.FrozenInstanceError):
                f.dim = 1
            # a plain mapping of the fields (the supernet spec's max-merge) converts back
            assert Layer(layer.kind, attrs.asdict(f, recurse=False), layer.index) == layer


@pytest.mark.parametrize("name", ALL_KINDS)
def test_kind_is_compiled_or_listed(name):
    if name in UNCOMPILED:
        assert name not in registered(), f"{name} has an op now: remove it from UNCOMPILED"
    else:
        assert name in registered(), f"kind {name!r} has no op: register one or list it in UNCOMPILED"


@pytest.mark.parametrize("name", sorted(UNCOMPILED))
def test_uncompiled_kind_is_refused_naming_it(name):
    with pytest.raises(CompileError, match=f"no op for kind '{name}'.*compiled kinds: "):
        get_op(name)


def test_kind_without_an_op_is_refused_naming_the_compiled_kinds():
    with pytest.raises(CompileError, match="no op for kind 'no_such_kind'.*compiled kinds: .*transformer"):
        get_op("no_such_kind")


@pytest.mark.parametrize("op_kind", registered())
def test_every_op_belongs_to_a_kind(op_kind):
    assert op_kind in KINDS
    op = get_op(op_kind)
    assert op.kind == op_kind and isinstance(op.takes_drop_path, bool)
    assert callable(getattr(op, "extract", None))


# --------------------------------------------------------------------------- every kind with an op
def _standalone(sub, net) -> None:
    assert not any(isinstance(m, (elastic.ElasticLinear, elastic.ElasticLayerNorm, elastic.ElasticConv2d,
                                  elastic.ElasticBatchNorm2d)) for m in sub.modules())
    supernet = {p.untyped_storage().data_ptr() for p in net.parameters()}
    assert not any(p.untyped_storage().data_ptr() in supernet for p in sub.parameters())


@pytest.mark.parametrize("name", COMPILED)
def test_example_runs_and_extracts_exactly(name):
    space = _example(name)
    torch.manual_seed(0)
    net = build_supernet(space).eval()
    for label, arch in _archs(space):
        x = torch.randn(2, *net.input_shape(arch))
        with torch.no_grad():
            y = net(x, arch)
            sub = net.extract(arch)
            y_sub = sub(x)
        assert y.shape == (2, space.supernet_spec().classes)
        diff = (y - y_sub).abs().max().item()
        assert diff <= 1e-5, f"{label}: the extracted subnet differs by {diff}"
        _standalone(sub, net)


@pytest.mark.parametrize("name", COMPILED)
def test_example_cost_is_numel_and_fvcore(name):
    space = _example(name)
    net = build_supernet(space).eval()
    for label, arch in _archs(space):
        sub = net.extract(arch).eval()
        c = sl.cost(space, arch)
        assert c.params == numel(sub), label
        assert c.flops == fvcore_flops(sub, torch.zeros(1, *space.input_shape(arch)), sdpa=False), label


# --------------------------------------------------------------------------- cached index tables
def _has_cached_tables(space: sl.Space) -> bool:
    return any(layer.kind == "transformer" and (layer.fields.window or layer.fields.rel_pos)
               for layer in space.supernet_spec().layers)


def _clear_table_caches() -> None:
    for fn in (functional.shift_mask, functional.window_bias_index, functional.rel2d_index):
        fn.cache_clear()


def _eval_then_train(space: sl.Space, archs, batch: int = 2) -> None:
    """An inference-mode forward, then a training step of the same arch in the same process."""
    _clear_table_caches()  # the tables must be built first under inference mode
    net = build_supernet(space)
    for arch in archs:
        x = torch.randn(batch, *net.input_shape(arch))
        with torch.inference_mode():
            net.eval()(x, arch)
        net.train()(x, arch).sum().backward()
        net.zero_grad()


EXAMPLES_WITH_TABLES = [n for n in ALL_KINDS if n not in UNCOMPILED and _has_cached_tables(_example(n))]


@pytest.mark.parametrize("name", EXAMPLES_WITH_TABLES)
def test_eval_then_train_example(name):
    space = _example(name)
    _eval_then_train(space, [arch for _, arch in _archs(space, n_random=1)])


def _shipped_with_tables():
    out = []
    for path in sorted(glob.glob(os.path.join(SPACES, "*.space")) + glob.glob(os.path.join(EXAMPLES, "*.space"))):
        space = sl.load(path)
        if not _has_cached_tables(space):
            continue
        big = space.input_shape(space.max_arch())[1] > 64
        out.append(pytest.param(path, id=os.path.basename(path), marks=[pytest.mark.slow] if big else []))
    return out


@pytest.mark.parametrize("path", _shipped_with_tables())
def test_eval_then_train_shipped_space(path):
    space = sl.load(path)  # one arch: the large spaces cost seconds per step
    _eval_then_train(space, [space.sample(random.Random(0))], batch=1)


def test_cached_tables_are_ordinary_tensors():
    _clear_table_caches()
    with torch.inference_mode():
        tables = [functional.shift_mask(8, 4, 2, torch.device("cpu"), torch.float32),
                  functional.window_bias_index(2, 4, torch.device("cpu")),
                  *functional.rel2d_index(3, True, 2, 3, torch.device("cpu"))]
    assert not any(t.is_inference() for t in tables)


# --------------------------------------------------------------------------- the kinds' hooks
def _values(name: str, **given):
    kind = KINDS[name]
    values = {n: f.default for n, f in kind.fields.items() if not f.required}
    values.update(given)
    return values


@pytest.mark.parametrize("name", ALL_KINDS)
def test_class_token_hook_only_on_heads(name):
    kind = KINDS[name]
    if kind.class_token is not None:
        assert "head" in kind.roles


@pytest.mark.parametrize("name", ALL_KINDS)
def test_idle_fields_name_fields_of_the_kind(name):
    kind = KINDS[name]
    if kind.idle_fields is None:
        return
    space = _example(name)  # the example's own fields are never idle (it has no warnings)
    values = {n: (f.default if not f.required else 1) for n, f in kind.fields.items()}
    for field, message in kind.idle_fields(values, frozenset(kind.fields), Context(8, 8, 4, resolution=16)):
        assert field in kind.fields and message, (field, message)
    assert not space.warnings


def test_linear_head_class_token():
    hook = KINDS["linear"].class_token
    assert hook(_values("linear", pool="cls")) is True
    assert hook(_values("linear", pool="avg")) is False


@pytest.mark.parametrize("given, idle", [
    (dict(shift="half"), ["shift"]),
    (dict(shift="half", window=7), []),
    (dict(shift="none", splits=2), []),           # attention splits are windows too
    (dict(rel_dist=3), ["rel_dist"]),
    (dict(rel_dist=3, rel_pos=True), []),
    (dict(shift="half", rel_dist=3), ["shift", "rel_dist"]),
    ({}, []),
])
def test_transformer_idle_fields(given, idle):
    values = _values("transformer", heads=2, mlp_ratio=4, **given)
    got = KINDS["transformer"].idle_fields(values, frozenset(given), Context(64, 64, 14))
    assert [f for f, _ in got] == idle
    assert all(msg.startswith(f) and "does nothing" in msg for f, msg in got)


def test_map_origin_names_the_input():
    assert map_origin(7, Context(8, 8, 7, resolution=224)) == " (input 224 / 32)"
    assert map_origin(113, Context(8, 8, 113, resolution=225)) == " (input 225)"
    assert map_origin(7, Context(8, 8, 7)) == ""
