"""What ``spacelang compile`` reports about a space's supernet, as plain data."""
from __future__ import annotations


def summary(space, net) -> dict:
    """Space size, supernet parameters, params/FLOPs/MACs ranges and per-stage shapes, as plain data."""
    lo, hi = space.cost_range()
    macs_lo, macs_hi = space.cost_range("macs")
    small, big = space.resolve(space.min_arch()), space.resolve(space.max_arch())
    stages = []
    for s_min, s_max in zip(small.stages, big.stages):
        blocks = s_max.blocks or s_min.blocks
        first = s_max.transition or (blocks[0] if blocks else None)
        out = blocks[-1] if blocks else s_max.transition
        stages.append({
            "name": s_max.name,
            "transition": s_max.transition.kind if s_max.transition else None,
            "in_size": first.fields.in_size if first is not None else None,
            "size": out.fields.size if out is not None else None,
            "dim": [s_min.dim, s_max.dim],
            "depth": [len(s_min.blocks), len(s_max.blocks)],
            "kinds": sorted({b.kind for b in blocks}),
        })
    return {
        "space": space.name,
        "subnets": space.size(),
        "dimensions": len(space.dims),
        "input": list(space.input_shape(space.max_arch())),
        "classes": space.classes,
        "supernet_params": sum(p.numel() for p in net.parameters()),
        "params": {"min": lo.params, "max": hi.params},
        "flops": {"min": lo.flops, "max": hi.flops},
        "macs": {"min": macs_lo.flops, "max": macs_hi.flops},  # the papers' convention (docs/counting.md)
        "stages": stages,
    }


__all__ = ["summary"]
