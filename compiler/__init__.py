"""The PyTorch backend of spacelang (installed as ``spacelang.compiler``).

``build_supernet(space)`` compiles a space into a weight-entangled supernet; ``net(x, arch)`` runs
any arch of the space and ``net.extract(arch)`` returns it as a standalone module.
``load_timm_weights(net, timm_model)`` loads a timm DeiT/Swin model into the supernet of the
matching fixed space.  ``load_subnet(directory)`` rebuilds a subnet written by ``spacelang export``.
"""
from __future__ import annotations

import importlib

__all__ = ["build_supernet", "Supernet", "Subnet", "load_timm_weights", "load_subnet"]
_HOME = {"build_supernet": "supernet", "Supernet": "supernet", "Subnet": "supernet",
         "load_timm_weights": "timm_weights", "load_subnet": "export"}


def __getattr__(name: str):
    # torch and timm load on first use, so `spacelang --help` and the commands' argument parsing
    # (which import spacelang.compiler.commands) stay instant
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
