"""Elastic ops of the PyTorch compiler, one module per concern, registered by block kind.

``get_op(kind)`` returns the op class compiled for a kind (``CompileError`` naming the
compiled kinds otherwise).  The op protocol is written down in ``registry.py``.  Importing this
package imports every module in it, which registers every op: a new op is one new module here.
"""
import importlib
import pkgutil

from .registry import get_op, register, registered



def _import_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_all()

__all__ = ["get_op", "register", "registered"]
