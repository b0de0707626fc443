"""spacelang: a declarative language and compiler for vision-transformer architecture search.

The language core (this package) never imports torch; the PyTorch backend lives in
:mod:`spacelang.compiler` and is imported only when asked for.
"""
from .diagnostics import ArchError, Diagnostic, SpaceError
from .space import Dim, Space, load, loads
# `sl.cost` is the function (DESIGN §5); the module stays importable as `from spacelang.cost import …`
from .cost import Cost, cost

__all__ = ["load", "loads", "Space", "Dim", "SpaceError", "ArchError", "Diagnostic", "cost", "Cost"]
__version__ = "0.1.0"
