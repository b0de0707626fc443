"""``spacelang show FILE [--json]``: a space's structure and every dimension, without sampling.

Prints the input, the stem, each stage (width, depth, transition, blocks with their kinds and
fields), the head, then every dimension (path, choices, scope), the derived fields (a field that
is an expression of dimensions), the constraints, the exact number of subnets and the params /
FLOPs range.  ``--json`` prints the same as one JSON object.  Reads the public ``Space`` API only.
"""
from __future__ import annotations

from typing import Any

HELP = "show a space: stages, blocks, every dimension with its choices and scope, derived fields, size, cost"


def add_arguments(p) -> None:
    p.add_argument("file", metavar="FILE", help="the .space file")
    p.add_argument("--json", action="store_true", help="print the description as one JSON object")


def run(args) -> int:
    from .common import load_or_report, print_json
    space = load_or_report(args.file)
    if space is None:
        return 2
    info = describe(space)
    if args.json:
        print_json(info)
    else:
        print(render(info))
    return 0


# ---------------------------------------------------------------------------------------------- data
def _text(v: Any) -> str:
    """An enum's value, anything else as it is (Dim.scope / origin may be enums or strings)."""
    return str(getattr(v, "value", v))


def _expr(e) -> Any:
    """A field's value for the description: a constant, a dimension path, or a derived expression."""
    from ..ir import Const, Ref, show
    if isinstance(e, Const):
        return e.value
    if isinstance(e, Ref):
        return {"dim": e.path}
    return {"derived": show(e)}


def _layer(layer) -> dict:
    out = {"kind": layer.kind, "fields": {name: _expr(e) for name, e in layer.fields.items()}}
    if getattr(layer, "optional", False):
        out["optional"] = layer.present
    return out


def describe(space) -> dict:
    """Everything ``show`` prints, as JSON-ready data."""
    from ..ir import Const, Ref, show
    stages = []
    derived = []

    def note_derived(where: str, layer) -> None:
        for name, e in layer.fields.items():
            if not isinstance(e, (Const, Ref)):
                derived.append({"field": f"{where}.{name}", "expr": show(e)})

    note_derived("stem", space.stem)
    for st in space.stages:
        blocks = []
        if st.transition is not None:
            note_derived(f"{st.name}.transition", st.transition)
        for b in st.blocks:
            note_derived(f"{st.name}.{b.index}", b)
            blocks.append({"index": b.index, **_layer(b)})
        stages.append({"name": st.name, "dim": _expr(st.dim),
                       "depth": None if st.depth is None else _expr(st.depth),
                       "transition": None if st.transition is None else _layer(st.transition),
                       "blocks": blocks})
    note_derived("head", space.head)
    dims = [{"path": d.path, "choices": list(d.choices), "scope": _text(d.scope), "type": _text(d.type),
             "step": d.step, "stage": d.stage, "block": d.block, "field": d.field, "origin": _text(d.origin)}
            for d in space.dims]
    info: dict[str, Any] = {
        "name": space.name,
        "file": getattr(space, "filename", None),
        "input": {"channels": space.channels, "resolution": _expr(space.resolution), "classes": space.classes},
        "stem": _layer(space.stem), "stages": stages, "head": _layer(space.head),
        "dimensions": dims, "derived": derived,
        "constraints": [f"{c.metric} {c.op} {c.text}" for c in space.constraints],
        "subnets": space.size(),
    }
    try:
        lo, hi = space.cost_range()
    except NotImplementedError:  # a kind without an analytic cost: the range is unknown, not zero
        info["params"] = info["flops"] = None
    else:
        info["params"] = {"min": lo.params, "max": hi.params}
        info["flops"] = {"min": lo.flops, "max": hi.flops}
    return info


# ---------------------------------------------------------------------------------------------- text
def _literal(v: Any) -> str:
    """A value as the language writes it (``true``, not ``True``)."""
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return v.get("dim") or v.get("derived")
    return _literal(v)


def _fields(layer: dict) -> str:
    return "  ".join(f"{k} {_value(v)}" for k, v in layer["fields"].items())


def _choices(choices: list, limit: int = 8) -> str:
    shown = ", ".join(_literal(c) for c in choices[:limit])
    return "{" + shown + (f", … ({len(choices)} choices)" if len(choices) > limit else "") + "}"


def render(info: dict) -> str:
    """The text ``show`` prints for ``describe(space)``."""
    from ..util.quantity import human
    inp = info["input"]
    lines = [f"space {info['name']}" + (f"  ({info['file']})" if info.get("file") else ""),
             f"  input   image {_value(inp['resolution'])}, {inp['channels']} channels, {inp['classes']} classes",
             f"  stem    {info['stem']['kind']}  {_fields(info['stem'])}".rstrip()]
    for st in info["stages"]:
        depth = "" if st["depth"] is None else f"  depth {_value(st['depth'])}"
        lines.append(f"  stage {st['name']}  dim {_value(st['dim'])}{depth}")
        if st["transition"]:
            lines.append(f"    transition  {st['transition']['kind']}  {_fields(st['transition'])}".rstrip())
        for b in st["blocks"]:
            opt = f"  (optional: {b['optional']})" if "optional" in b else ""
            lines.append(f"    {b['index']:>3}  {b['kind']}  {_fields(b)}{opt}".rstrip())
    lines.append(f"  head    {info['head']['kind']}  {_fields(info['head'])}".rstrip())
    dims = info["dimensions"]
    lines += ["", f"dimensions ({len(dims)})"]
    width = max((len(d["path"]) for d in dims), default=0)
    for d in dims:
        step = f"  step {d['step']}" if d["step"] is not None else ""
        lines.append(f"  {d['path']:<{width}}  {d['scope']:<5}  {_choices(d['choices'])}{step}")
    if info["derived"]:
        lines += ["", f"derived fields ({len(info['derived'])})"]
        lines += [f"  {d['field']} = {d['expr']}" for d in info["derived"]]
    lines += ["", "constraints" + ("" if info["constraints"] else "  none")]
    lines += [f"  {c}" for c in info["constraints"]]
    n = info["subnets"]
    lines += ["", f"subnets  {n:,} ({n:.3e})"]
    for metric, label in (("params", "params "), ("flops", "FLOPs  ")):
        r = info[metric]
        lines.append(f"{label}  " + ("unknown (a kind without a cost model)" if r is None else
                                     f"{human(r['min'])} – {human(r['max'])}  ({r['min']:,} – {r['max']:,})"))
    return "\n".join(lines)
