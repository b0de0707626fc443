"""Greedy training-free auto-scaling (As-ViT Algorithm 2): grow a seed topology's width and depth.

*State.*  A network is the seed arch of a topology space plus a base width ``C`` (the first
stage's width; stage ``i`` has width ``C·m_i`` with the seed's integer ratios ``m_i``, As-ViT's
C, 2C, 4C, 8C) and a depth per stage.  The seed is the space's network for the arch: As-ViT's
C = 32 and one block per stage.

*Step.*  Every candidate ``(factor, stage)`` of ``factors × stages`` (As-ViT: {1.05, 1.1, 1.15,
1.2} × the 4 stages = 16) widens C by the factor and adds one block to the stage.  Each candidate
is scored (``evaluate(fixed_space) -> {objective: value}``, injected: As-ViT's L_E and κ_Θ);
candidates are ranked per objective (L_E descending, κ ascending; tied values share their mean
rank), and the smallest sum of ranks wins (ties: the first in factor-major order).  Scaling
stops once the network has at least ``limit`` parameters (Algorithm 2, line 2: it grows while
``P >`` its parameters, so the last network is the first to reach the limit); ``max_steps``
bounds it too.

*Widths stay valid.*  A stage's attention splits its width over its heads, so ``C·m_i`` must be
divisible by ``heads_i`` for every stage.  The unit ``u`` is the least C that makes all of them
divisible, and a widened C is rounded to the nearest multiple of ``u`` — at least one unit more
than before, so a 5 % step on a narrow net still widens it.  (As-ViT-S/B/L's C = 88, 116, 180
are multiples of their unit 4.)

*Outputs* (``out_dir``): ``step_NN.space`` for every network (a fixed file, :mod:`.fixspace`),
``trajectory.json`` and ``trajectory.md`` (step, choice, C, depths, total depth, total width,
exact params and FLOPs, the objectives), ``trajectory.png`` (total depth against total width,
As-ViT Figure 3), and ``state.json``, from which a run started again with the same arguments
resumes.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any, Callable, Mapping, Sequence

import attrs

from ..errors import SearchError
from ..util.atomic import write_json, write_text
from ..util.quantity import human
from .fixspace import fixed_source, fixed_space

FACTORS = (1.05, 1.1, 1.15, 1.2)
ASVIT_OBJECTIVES = {"length_distortion": 1, "ntk_condition": -1}
Evaluate = Callable[[Any], Mapping[str, float]]
STATE_VERSION = 1


@attrs.frozen
class Network:
    """One point of the trajectory: base width ``width`` (C) and a depth per stage."""

    width: int
    depths: tuple[int, ...]


def ranks(values: Sequence[float], descending: bool) -> list[float]:
    """1-based ranks (1 = best); tied values share the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: -values[i] if descending else values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def rank_sum_choice(rows: Sequence[Mapping[str, float]], objectives: Mapping[str, int]) -> tuple[int, list[float]]:
    """Index of the row with the smallest sum of ranks (first among ties), and every row's sum."""
    total = [0.0] * len(rows)
    for name, direction in objectives.items():
        for i, r in enumerate(ranks([row[name] for row in rows], descending=direction > 0)):
            total[i] += r
    return min(range(len(rows)), key=lambda i: (total[i], i)), total


class Scaler:
    """Widths, depths and fixed files of a seed arch of ``space`` (see the module docstring)."""

    def __init__(self, space, arch: Mapping[str, Any]):
        self.space = space
        self.arch = space.validate(arch)
        net = space.resolve(self.arch)
        self.stage_names = [st.name for st in net.stages]
        dims = [st.dim for st in net.stages]
        if any(d % dims[0] for d in dims):
            raise SearchError(f"stage widths {dims} are not integer multiples of the first stage's {dims[0]}",
                              hint="auto-scaling grows C and keeps each stage at C·m with an integer m")
        self.ratios = [d // dims[0] for d in dims]
        heads = []
        for st in net.stages:
            hs = {getattr(b.fields, "heads", 1) for b in st.blocks}
            if len(hs) != 1:
                raise SearchError(f"stage {st.name}: blocks with different heads {sorted(hs)}; cannot scale it")
            heads.append(hs.pop())
        self.heads = heads
        self.unit = math.lcm(*(h // math.gcd(h, m) for h, m in zip(heads, self.ratios)))
        self.seed = Network(dims[0], tuple(len(st.blocks) for st in net.stages))
        if self.seed.width % self.unit:
            raise SearchError(f"seed width {self.seed.width} is not a multiple of {self.unit} (the heads)")

    def widen(self, width: int, factor: float) -> int:
        """``width × factor`` rounded to the nearest multiple of the unit, at least one unit wider."""
        u = self.unit
        return max(width + u, int(math.floor(width * factor / u + 0.5)) * u)

    def candidates(self, net: Network, factors: Sequence[float]) -> list[tuple[float, int, Network]]:
        """``(factor, stage index, network)`` for every width factor × stage to deepen, factor-major."""
        out = []
        for f in factors:
            w = self.widen(net.width, f)
            for i in range(len(net.depths)):
                depths = tuple(d + (1 if j == i else 0) for j, d in enumerate(net.depths))
                out.append((f, i, Network(w, depths)))
        return out

    def widths(self, net: Network) -> list[int]:
        return [net.width * m for m in self.ratios]

    def source(self, net: Network, name: str | None = None, header: str = "") -> str:
        return fixed_source(self.space, self.arch, widths=self.widths(net), depths=net.depths, name=name,
                            header=header)

    def space_of(self, net: Network, name: str | None = None):
        return fixed_space(self.space, self.arch, widths=self.widths(net), depths=net.depths, name=name)

    def totals(self, net: Network) -> tuple[int, int]:
        """(total depth, total width): blocks, and the sum of every block's output channels (Figure 3)."""
        return sum(net.depths), sum(d * w for d, w in zip(net.depths, self.widths(net)))


@attrs.define
class ScaleResult:
    """Every network of the trajectory (``rows``, seed first) and the fixed files written."""

    rows: list[dict]
    files: list[str]


def run_autoscale(space, arch: Mapping[str, Any], evaluate: Evaluate, limit_params: int, out_dir: str | None = None,
                  *, factors: Sequence[float] = FACTORS, objectives: Mapping[str, int] | None = None,
                  max_steps: int = 1000, plot: bool = True, log: Callable[[str], None] | None = None) -> ScaleResult:
    """Grow ``arch`` of ``space`` until its parameters reach ``limit_params`` (As-ViT Algorithm 2).

    ``evaluate(fixed_space)`` scores one network (a :class:`~spacelang.space.Space` of one arch)
    and returns every objective (default As-ViT's: ``length_distortion`` +1, ``ntk_condition`` −1).
    """
    from ..cost import cost

    objectives = dict(objectives or ASVIT_OBJECTIVES)
    if not factors or any(f <= 1 for f in factors):
        raise SearchError(f"width factors must be greater than 1, got {list(factors)}")
    scaler = Scaler(space, arch)
    identity = {"kind": "autoscale", "space": space.name,
                "space_sha256": hashlib.sha256(space.source.encode()).hexdigest(),
                "arch": scaler.arch, "limit_params": int(limit_params), "factors": list(factors),
                "objectives": dict(sorted(objectives.items())), "max_steps": max_steps}
    rows: list[dict] = []
    state_path = os.path.join(out_dir, "state.json") if out_dir else None
    if state_path and os.path.exists(state_path):
        try:
            with open(state_path, encoding="utf-8") as f:
                st = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise SearchError(f"{state_path}: cannot resume ({e})") from None
        if st.get("version") != STATE_VERSION or st.get("identity") != identity:
            raise SearchError(f"{state_path} holds another scaling run (space, seed arch, limit or factors differ)",
                              hint="use another output folder")
        rows = st["rows"]

    def score(net: Network) -> tuple[dict, Any]:
        fixed = scaler.space_of(net)
        arch0 = fixed.min_arch()
        raw = evaluate(fixed)
        missing = [k for k in objectives if k not in raw]
        if missing:
            raise SearchError(f"the evaluator returned no {', '.join(missing)}")
        c = cost(fixed, arch0)
        return {k: float(raw[k]) for k in objectives}, c

    def record(step: int, net: Network, choice, scores: dict, c, candidates=None) -> dict:
        depth, width = scaler.totals(net)
        return {"step": step, "choice": choice, "width": net.width, "widths": scaler.widths(net),
                "depths": list(net.depths), "total_depth": depth, "total_width": width,
                "params": c.params, "flops": c.flops, **scores, "candidates": candidates or []}

    def save() -> None:
        if state_path:
            write_json(state_path, {"version": STATE_VERSION, "identity": identity, "rows": rows}, indent=None)

    if not rows:
        scores, c = score(scaler.seed)
        rows.append(record(0, scaler.seed, None, scores, c))
        save()
    while rows[-1]["params"] < limit_params and len(rows) <= max_steps:
        last = rows[-1]
        net = Network(last["width"], tuple(last["depths"]))
        cands = scaler.candidates(net, factors)
        scored = []
        for f, i, cand in cands:
            scores, c = score(cand)
            scored.append({"factor": f, "stage": scaler.stage_names[i], "width": cand.width,
                           "depths": list(cand.depths), "params": c.params, **scores, "_cost": c, "_net": cand})
        best, sums = rank_sum_choice(scored, objectives)
        for s, total in zip(scored, sums):
            s["rank_sum"] = total
        pick = scored[best]
        table = [{k: v for k, v in s.items() if not k.startswith("_")} for s in scored]
        rows.append(record(len(rows), pick["_net"], {"factor": pick["factor"], "stage": pick["stage"]},
                           {k: pick[k] for k in objectives}, pick["_cost"], table))
        save()
        if log:
            r = rows[-1]
            log(f"step {r['step']:>3}: ×{pick['factor']} width, deepen {pick['stage']} → C {r['width']}, "
                f"depths {r['depths']}, {human(r['params'])} params")
    files = []
    if out_dir:
        files = write_outputs(scaler, rows, out_dir, objectives, plot)
    return ScaleResult(rows, files)


def write_outputs(scaler: Scaler, rows: Sequence[dict], out_dir: str, objectives, plot: bool = True) -> list[str]:
    """The fixed files, the trajectory (json + md) and the Figure-3 plot; returns the paths written."""
    name = scaler.space.name
    files = []
    for r in rows:
        net = Network(r["width"], tuple(r["depths"]))
        how = "seed" if r["choice"] is None else f"×{r['choice']['factor']} width, +1 block in {r['choice']['stage']}"
        header = (f"Auto-scaling (As-ViT Algorithm 2) of {scaler.space.filename}, step {r['step']} ({how}).\n"
                  f"Seed arch: {json.dumps(scaler.arch, sort_keys=True)}\n"
                  f"C = {r['width']}, widths {r['widths']}, depths {r['depths']}: "
                  f"{human(r['params'])} params, {human(r['flops'])} FLOPs.")
        path = os.path.join(out_dir, f"step_{r['step']:02d}.space")
        write_text(path, scaler.source(net, name=f"{name}_scaled_{r['step']:02d}", header=header))
        files.append(path)
    write_json(os.path.join(out_dir, "trajectory.json"), {"space": name, "seed_arch": scaler.arch,
                                                          "unit": scaler.unit, "steps": list(rows)})
    write_text(os.path.join(out_dir, "trajectory.md"), markdown(rows, objectives))
    files += [os.path.join(out_dir, "trajectory.json"), os.path.join(out_dir, "trajectory.md")]
    if plot:
        path = os.path.join(out_dir, "trajectory.png")
        plot_trajectory(rows, path, title=f"auto-scaling {name}")
        files.append(path)
    return files


def markdown(rows: Sequence[dict], objectives) -> str:
    """The trajectory as a markdown table."""
    names = list(objectives)
    head = ["step", "choice", "C", "depths", "total depth", "total width", "params", "FLOPs"] + names
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        choice = "seed" if r["choice"] is None else f"×{r['choice']['factor']}, +{r['choice']['stage']}"
        cells = [str(r["step"]), choice, str(r["width"]), "-".join(map(str, r["depths"])), str(r["total_depth"]),
                 str(r["total_width"]), human(r["params"]), human(r["flops"])] + [f"{r[n]:.4g}" for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_trajectory(rows: Sequence[dict], path: str, title: str = "") -> None:
    """Total depth (x) against total width (y), steps numbered: As-ViT Figure 3 (left)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    x, y = [r["total_depth"] for r in rows], [r["total_width"] for r in rows]
    ax.plot(x, y, "o-")
    for r in rows:
        ax.annotate(str(r["step"]), (r["total_depth"], r["total_width"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    ax.set_xlabel("total depth (blocks)")
    ax.set_ylabel("total width (sum of block output channels)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    from ..util.atomic import write_figure
    write_figure(path, fig, dpi=120)


__all__ = ["FACTORS", "Network", "Scaler", "ScaleResult", "ranks", "rank_sum_choice", "run_autoscale",
           "write_outputs", "markdown", "plot_trajectory"]
