"""Registry of training-free proxies keyed by name (``@register("length_distortion", alias="le")``).

A proxy scores a randomly initialised network without training it.  Its function takes

``fn(features, input_shape, generator, **options) -> float``

where ``features`` is an ``nn.Module`` mapping images ``(B, C, H, W)`` to pooled features
``(B, D)`` (the network without its classifier, in eval mode; see :mod:`.network`),
``input_shape`` is ``(C, H, W)`` and ``generator`` a seeded ``torch.Generator`` for every random
draw the proxy makes (a plane, a batch).  ``higher_is_better`` says which way a search ranks it.
"""
from __future__ import annotations

import importlib
from typing import Callable

import attrs

from spacelang.errors import OptionError


@attrs.frozen
class Proxy:
    """A registered proxy: its ``name``, a short ``alias`` for the command line, the score function,
    whether larger scores are better, and a one-line description."""

    name: str
    alias: str
    fn: Callable[..., float]
    higher_is_better: bool
    doc: str


_PROXIES: dict[str, Proxy] = {}
#: the modules of the built-in proxies, imported (registered) on the first lookup
BUILTIN = ("length_distortion", "ntk_condition")


def _load_builtin() -> None:
    for name in BUILTIN:
        importlib.import_module(f"{__package__}.{name}")


def register(name: str, *, alias: str, higher_is_better: bool):
    """Function decorator: register ``fn`` as the proxy ``name`` (``alias`` on the command line)."""

    def deco(fn):
        for key in (name, alias):
            if key in _PROXIES or any(p.alias == key for p in _PROXIES.values()):
                raise ValueError(f"a proxy called {key!r} is already registered")
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _PROXIES[name] = Proxy(name, alias, fn, higher_is_better, doc)
        return fn

    return deco


def get(name: str) -> Proxy:
    """The proxy called ``name`` or with alias ``name``; :class:`OptionError` listing them otherwise."""
    _load_builtin()
    if name in _PROXIES:
        return _PROXIES[name]
    for p in _PROXIES.values():
        if p.alias == name:
            return p
    known = ", ".join(f"{p.name} ({p.alias})" for p in _PROXIES.values())
    raise OptionError(f"unknown proxy {name!r} (known: {known})")


def parse_list(text: str) -> list[Proxy]:
    """``"le,ntk"`` → the two proxies, in order, without repeats."""
    out: list[Proxy] = []
    for part in (t.strip() for t in text.split(",")):
        if not part:
            continue
        p = get(part)
        if p not in out:
            out.append(p)
    if not out:
        raise OptionError("--proxy names no proxy (e.g. --proxy le,ntk)")
    return out


def registered() -> list[str]:
    """Names of the registered proxies, in registration order."""
    _load_builtin()
    return list(_PROXIES)


__all__ = ["Proxy", "register", "get", "parse_list", "registered"]
