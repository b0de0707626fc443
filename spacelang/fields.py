"""Field evaluation and normalisation: IR layer + env → the kind's normalised field dict."""
from __future__ import annotations

from typing import Any, Mapping

from . import kinds as K
from .ir import EvalError, LayerIR, evaluate, show
from .errors import FieldError
from .kinds.base import Context


def field_values(layer: LayerIR, env: Mapping[str, Any]) -> dict:
    """Every schema field of the layer's kind: evaluated when given, its default otherwise."""
    kind = K.KINDS[layer.kind]
    out = {}
    for name, fdef in kind.fields.items():
        if name not in layer.fields:
            out[name] = fdef.default
            continue
        expr = layer.fields[name]
        try:
            v = evaluate(expr, env)
        except EvalError as e:
            raise FieldError(name, f"{name} = {show(expr)}: {e}") from None
        out[name] = coerce(name, fdef, v, expr)
    return out


def coerce(name, fdef, v, expr=None):
    t = fdef.type
    if t == "int":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise FieldError(name, f"{name} takes an integer, got {v!r}")
        if isinstance(v, float):
            if v.is_integer():  # `dim / 64` is fine wherever it comes out whole
                v = int(v)
            else:
                how = f"{show(expr)} gives {v}" if expr is not None else f"got {v}"
                raise FieldError(name, f"{name} takes an integer, but {how}", "use // for integer division")
        if fdef.min is not None and v < fdef.min:
            raise FieldError(name, f"{name} must be ≥ {fdef.min}, got {v}")
        return v
    if t == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise FieldError(name, f"{name} takes a number, got {v!r}")
        return v
    if t == "bool":
        if not isinstance(v, bool):
            raise FieldError(name, f"{name} takes true or false, got {v!r}")
        return v
    if t == "sym":
        if not isinstance(v, str):
            raise FieldError(name, f"{name} takes a name, got {v!r}")
        return v
    return v


def normalize(layer: LayerIR, env: Mapping[str, Any], ctx: Context) -> dict:
    """The normalised fields of ``layer`` under ``env`` (raises FieldError or EvalError)."""
    kind = K.KINDS[layer.kind]
    return kind.normalize(field_values(layer, env), ctx)


def head_has_cls(head: LayerIR, env: Mapping[str, Any]) -> bool:
    """Whether the token sequence carries a class token: the head's kind says so from its
    field values (:attr:`spacelang.kinds.base.Kind.class_token`; no hook: never)."""
    hook = K.KINDS[head.kind].class_token
    return bool(hook(field_values(head, env))) if hook is not None else False


__all__ = ["normalize", "field_values", "head_has_cls", "FieldError", "FieldError", "Context"]
