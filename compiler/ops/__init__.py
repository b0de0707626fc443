"""Elastic ops of the PyTorch compiler, one module per concern, registered by block kind.

``get_op(kind)`` returns the op class compiled for a kind (``NotImplementedError`` naming the
compiled kinds otherwise).  Importing this package registers every op.
"""
from .registry import get_op, register, registered
from . import conv_stem, heads, patch_embed, patch_merging, rsr, transformer  # noqa: F401  (registration)

__all__ = ["get_op", "register", "registered"]
