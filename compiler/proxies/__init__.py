"""Training-free proxies (As-ViT): scores of an arch from randomly initialised networks.

One module per proxy, registered by name (:mod:`.registry`): ``length_distortion`` (``le``,
As-ViT's L_E) and ``ntk_condition`` (``ntk``, the NTK condition number κ_Θ).
:func:`score_arch` averages them over random initialisations of the arch's own network
(:func:`build_network`).  The names below load on first use (torch with them), so the command
modules can import :mod:`.search` for their arguments without importing torch.
"""
from __future__ import annotations

import importlib

__all__ = ["Proxy", "get", "parse_list", "register", "registered", "build_network", "features", "score_arch"]
_HOME = {"Proxy": "registry", "get": "registry", "parse_list": "registry", "register": "registry",
         "registered": "registry", "build_network": "network", "features": "network", "score_arch": "score"}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
