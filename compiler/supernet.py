"""The weight-entangled supernet of a space, and the standalone subnets it extracts.

``build_supernet(space)`` allocates every weight once, at its largest size over the space
(``space.supernet_spec()``: every block slot present, every numeric field at its maximum).
``net(x, arch)`` resolves the arch to its concrete network (``space.resolve``; cached per arch)
and runs the active slots with sliced widths; ``net.extract(arch)`` copies the active slices into
a standalone module of ordinary layers that computes the same function.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any, Mapping

import attrs
import torch
import torch.nn as nn

from spacelang import kinds
from spacelang.errors import CompileError
from spacelang.util.quantity import human

from .ops import get_op

#: Version of how the ops store and read their weights.  Bump it whenever an op changes its
#: parameter layout or how it slices it: checkpoints record it, and one written under another
#: layout is refused instead of loading into silently wrong places.
WEIGHT_LAYOUT = 1


def check_input(x: Any, shape: tuple[int, int, int]) -> None:
    """Raise ``ValueError`` naming the expected ``(C, H, W)`` unless ``x`` is a ``(B, C, H, W)`` tensor."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a tensor of shape (B, {shape[0]}, {shape[1]}, {shape[2]}), got {type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"expected input of shape (B, C, H, W) with (C, H, W) = {tuple(shape)}, "
                         f"got {tuple(x.shape)}")


def _arch_key(arch: Mapping[str, Any]):
    try:
        key = tuple(sorted(arch.items()))
        hash(key)
        return key
    except TypeError:  # unhashable values: their canonical JSON text is key enough
        return json.dumps(arch, sort_keys=True, default=str)


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits_memory(spec, memory: int | None = None, bytes_per_param: int | None = None) -> None:
    """Refuse, before allocating anything, a supernet whose weights exceed ``memory`` bytes.

    The supernet holds one copy of each weight at its largest size, so its parameter count is
    the analytic cost model's over the supernet spec (every field at its maximum), layer by
    layer.  The message names the largest layer and its widest fields (the absurd dimension).
    """
    memory = physical_memory() if memory is None else memory
    if memory is None:
        return
    if bytes_per_param is None:
        bytes_per_param = torch.empty(0).element_size()
    sizes = []
    for path, layer in spec.named_layers():
        kind = kinds.get(layer.kind)
        if kind is not None and kind.cost is not None:
            sizes.append((kind.cost(layer.fields)[0], path, layer))
    total = sum(p for p, _, _ in sizes)
    if not sizes or total * bytes_per_param <= memory:
        return
    params, path, layer = max(sizes, key=lambda s: s[0])
    fields = attrs.asdict(layer.fields, recurse=False)
    widths = sorted(((v, k) for k, v in fields.items() if type(v) is int), reverse=True)[:2]
    named = ", ".join(f"{k} {v:,}" for v, k in widths)
    raise CompileError(
        f"the supernet needs {_count(total)} parameters ({_gib(total * bytes_per_param)}), more than this "
        f"machine's {_gib(memory)} of memory: {path} ({layer.kind}) alone has {_count(params)}, at {named}",
        hint="check that layer's widths (heads, dims, hidden, the input resolution) for a typo")


def carries_maps(layer) -> bool:
    """Whether ``layer``'s op passes ``(B, C, H, W)`` maps on (its class sets ``carries_maps``)."""
    return getattr(get_op(layer.kind), "carries_maps", False)


def check_layouts(spec) -> None:
    """Refuse a network that mixes ops carrying ``(B, C, H, W)`` maps (NASViT's convolutional kinds
    and its transformer layer: ops whose class sets ``carries_maps``) with ops carrying tokens."""
    kinds = [(path, layer.kind, carries_maps(layer)) for path, layer in spec.named_layers()]
    maps = [(p, k) for p, k, m in kinds if m]
    tokens = [(p, k) for p, k, m in kinds if not m]
    if maps and tokens:
        raise CompileError(
            f"{maps[0][0]} ({maps[0][1]}) carries feature maps but {tokens[0][0]} ({tokens[0][1]}) carries "
            f"tokens: the compiler does not mix the two in one network yet",
            hint="use conv/mbconv/nasvit_transformer/mbpool throughout (NASViT), or token kinds throughout")


def _count(n: int) -> str:
    return human(n) if n < 1e12 else f"{n:.2e}"


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n < 2**70 else f"{n / 2**30:.2e} GiB"


class _Stage(nn.Module):
    """A stage's optional transition and its block slots (``blocks[i]`` is slot ``i``)."""

    def __init__(self, transition: nn.Module | None, blocks: list[nn.Module]):
        super().__init__()
        self.transition = transition
        self.blocks = nn.ModuleList(blocks)


class Supernet(nn.Module):
    """Weight-entangled supernet: ``net(x, arch)`` runs any arch of ``space``; see :func:`build_supernet`."""

    def __init__(self, space, drop_path: float = 0.0, cache_size: int = 4096):
        super().__init__()
        self.space = space
        self.spec = spec = space.supernet_spec()
        check_fits_memory(spec)
        check_layouts(spec)
        self.cache_size = cache_size
        self._specs: OrderedDict = OrderedDict()
        slots = [layer for st in spec.stages for layer in st.blocks]
        # stochastic depth grows linearly over the supernet's block slots (timm's rule)
        rates = iter([drop_path * i / max(len(slots) - 1, 1) for i in range(len(slots))])
        self.stem = get_op(spec.stem.kind)(spec.stem)
        stages = []
        for st in spec.stages:
            blocks = []
            for i, layer in enumerate(st.blocks):
                if layer.index != i:
                    raise ValueError(f"supernet spec of stage {st.name!r}: slot {i} has index {layer.index}")
                op, rate = get_op(layer.kind), next(rates)
                kw = {"drop_path": rate} if op.takes_drop_path else {}
                if getattr(op, "takes_stage", False):  # e.g. NASViT's switchable scaling layers
                    kw["stage"] = op.stage_configs(space, st.name)
                blocks.append(op(layer, **kw))
            transition = get_op(st.transition.kind)(st.transition) if st.transition is not None else None
            stages.append(_Stage(transition, blocks))
        self.stages = nn.ModuleList(stages)  # a list, not a dict: stage names may shadow Module attributes
        self.stage_index = {st.name: i for i, st in enumerate(spec.stages)}
        self.head = get_op(spec.head.kind)(spec.head)
        self.channels_last = False

    def use_channels_last(self, on: bool = True) -> "Supernet":
        """Hold the 4-D weights and take the input in ``channels_last`` memory format (or back to
        contiguous): the same function, faster convolutions on conv-heavy networks (see
        :func:`build_supernet`)."""
        self.channels_last = bool(on)
        return self.to(memory_format=torch.channels_last if on else torch.contiguous_format)

    # ------------------------------------------------------------------ archs
    def resolve(self, arch: Mapping[str, Any]):
        """The :class:`~spacelang.netspec.NetSpec` of ``arch`` (validated by the space; cached)."""
        key = _arch_key(arch)
        spec = self._specs.get(key)
        if spec is None:
            spec = self.space.resolve(arch)  # validates: an arch outside the space raises ArchError
            self._specs[key] = spec
            if len(self._specs) > self.cache_size:
                self._specs.popitem(last=False)
        else:
            self._specs.move_to_end(key)
        return spec

    def input_shape(self, arch: Mapping[str, Any] | None = None) -> tuple[int, int, int]:
        """``(C, H, W)`` the arch (or the supernet, without one) expects."""
        spec = self.resolve(arch) if arch is not None else self.spec
        return spec.channels, spec.resolution, spec.resolution

    # ------------------------------------------------------------------ run
    def forward(self, x: torch.Tensor, arch: Mapping[str, Any], tokens: bool = False):
        """Logits ``(B, classes)`` of ``arch``; with ``tokens`` also the head's token-labelling
        logits ``(B, N_patches, classes)`` (a head with ``token_label``), as ``(logits, token_logits)``."""
        spec = self.resolve(arch)
        check_input(x, (spec.channels, spec.resolution, spec.resolution))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x, spec.stem)
        for st in spec.stages:
            stage = self.stages[self.stage_index[st.name]]
            if st.transition is not None:
                x = stage.transition(x, st.transition)
            for layer in st.blocks:
                block = stage.blocks[layer.index]
                x = block(x, layer, stage_depth=len(st.blocks)) if getattr(block, "takes_stage", False) \
                    else block(x, layer)
        if tokens:
            return self.head(x, spec.head), self.head.token_logits(x, spec.head)
        return self.head(x, spec.head)

    def forward_multi(self, x: torch.Tensor, archs, assign: torch.Tensor, *, tokens: bool = False):
        """Multi-architectural sampling: sample ``s`` of ``x`` runs ``archs[assign[s]]``, all in one
        masked forward pass (:func:`spacelang.compiler.multiarch.forward_multi`); each sub-batch gets
        exactly what :meth:`forward` gives it alone.  ``tokens`` as in :meth:`forward`."""
        from .multiarch import forward_multi
        return forward_multi(self, x, archs, assign, tokens=tokens)

    def extract(self, arch: Mapping[str, Any]) -> "Subnet":
        """A standalone copy of ``arch``: ordinary layers, copied weights, the same outputs."""
        spec = self.resolve(arch)
        stages = []
        for st in spec.stages:
            stage = self.stages[self.stage_index[st.name]]
            mods = [stage.transition.extract(st.transition)] if st.transition is not None else []
            mods += [stage.blocks[layer.index].extract(layer, stage_depth=len(st.blocks))
                     if getattr(stage.blocks[layer.index], "takes_stage", False)
                     else stage.blocks[layer.index].extract(layer) for layer in st.blocks]
            stages.append(nn.Sequential(*mods))
        sub = Subnet(self.stem.extract(spec.stem), stages,
                     self.head.extract(spec.head),
                     (spec.channels, spec.resolution, spec.resolution), [st.name for st in spec.stages])
        p = next(self.parameters())
        return sub.to(device=p.device, dtype=p.dtype).train(self.training)


class Subnet(nn.Module):
    """A standalone subnet: ``stem``, ``stages[i]`` (``nn.Sequential`` of transition and blocks), ``head``."""

    def __init__(self, stem: nn.Module, stages: list[nn.Sequential], head: nn.Module,
                 input_shape: tuple[int, int, int], stage_names: list[str]):
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.input_shape = tuple(input_shape)
        self.stage_names = list(stage_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.input_shape)
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def conv_heavy(spec) -> bool:
    """Whether a network's layers carry ``(B, C, H, W)`` maps (NASViT's convolutional kinds): the
    networks ``channels_last`` speeds up (bench/bench_channels_last.py, CPU training step: 0.69–0.86×
    on the digits hybrid and NASViT's min arch).  Token networks meet a 4-D tensor only in their
    patchify conv and gain nothing consistent (AutoFormer-T: 0.97–1.04×), so they stay contiguous."""
    return any(carries_maps(layer) for _, layer in spec.named_layers())


def build_supernet(space, drop_path: float = 0.0, channels_last: bool | None = None) -> Supernet:
    """Compile ``space`` into a weight-entangled :class:`Supernet`.

    ``drop_path`` is the stochastic-depth rate of the last block slot; earlier slots get linearly
    smaller rates (0 for the first).  ``channels_last``: the memory format of the 4-D weights and
    of the input (``None``: on for :func:`conv_heavy` networks).  Raises
    :class:`~spacelang.errors.CompileError` for kinds not compiled yet and for a supernet whose
    weights do not fit in this machine's memory.
    """
    net = Supernet(space, drop_path=drop_path)
    if channels_last is None:
        channels_last = conv_heavy(net.spec)
    return net.use_channels_last(channels_last) if channels_last else net
