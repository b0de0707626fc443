"""The one canonical key of an arch: a hashable tuple, and its JSON text."""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping


def arch_key(arch: Mapping[str, Any]) -> tuple:
    """A hashable, order-independent key of an arch (sorted ``(path, value)`` pairs)."""
    return tuple(sorted(arch.items()))


def arch_json(arch: Mapping[str, Any]) -> str:
    """The arch's canonical JSON text (sorted keys, compact): equal archs give equal text."""
    return json.dumps(dict(arch), sort_keys=True, separators=(",", ":"))


def arch_hash(arch: Mapping[str, Any]) -> str:
    """A short stable hash of an arch (sha256 of :func:`arch_json`, 16 hex digits)."""
    return hashlib.sha256(arch_json(arch).encode()).hexdigest()[:16]


__all__ = ["arch_key", "arch_json", "arch_hash"]
