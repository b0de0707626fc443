"""Reports of S3 evolution: Markdown and JSON per step, and the two figures of the paper.

* :func:`plot_choices` — like S3 Fig. 2: one panel per (dimension, stage), the choices of each
  iteration as dots, lines through the smallest and largest choice to show the tendency.
* :func:`plot_error_cdf` — like S3 Fig. 6 (after RegNet's EDF): the empirical distribution of the
  evaluated archs' errors, one curve per space.

matplotlib runs on the Agg backend (files only, no display) and is imported only here.
"""
from __future__ import annotations

import os
from typing import Sequence

from ..util.atomic import write_figure, write_json, write_text
from .et_error import subspaces
from .rewrite import render_values

XLABEL = "iteration (space version)"


def _f(x, nd=2) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def _move(u) -> str:
    if not u.k:
        return "—"
    direction = "down" if u.k > 0 else "up"
    n = abs(u.k)
    return f"{direction} {n} step{'s' if n > 1 else ''}"


def markdown(ev, title: str | None = None) -> str:
    """A Markdown report of one evolution step."""
    sp = ev.space
    rf = ev.rows
    rounding = "toward zero" if ev.rounding == "trunc" else "floor (as S3 writes it)"
    o = ev.overall
    lines = [
        f"# {title or f'S3 evolution of `{sp.name}`'}",
        "",
        f"Space file: `{sp.filename}`.  τ = {ev.tau:g}, top-tier size = {ev.top_k:g}, rounding of w/τ: {rounding}.",
        f"Results: {rf.total} rows, {len(rf.used)} used, {rf.invalid} not points of this space, "
        f"{rf.infeasible} over the constraints.",
        f"Whole space: Q_e = {_f(o['q_e'])} %, Q_t = {_f(o['q_t'])} %, E-T = {_f(o['et'])} %.  "
        f"Size: {sp.size():,} → {ev.new_space.size():,} subnets.",
        "",
        "x = choice min-max normalised over its set, y = E-T error in percent, so the slope w is the fitted "
        "error difference between the largest and the smallest choice; each subspace moves −[w/τ]·γ.  "
        "γ comes from the file's `step`, else S3's default for the field (S3), else a range's spacing (range) "
        "or the set's smallest gap (gap).",
        "",
        "| subspace | line | γ | choices | E-T per choice (%) | archs per choice | slope w | w/τ | move | new choices |",
        "|---|---:|---:|---|---|---|---:|---:|---|---|",
    ]
    for u in ev.updates:
        ets = " / ".join(_f(s.et) for s in u.stats)
        ns = " / ".join(str(s.n) for s in u.stats)
        w = None if u.trend is None else u.trend.slope
        wt = None if w is None else w / ev.tau
        new = f"**{render_values(u.new)}**" if u.changed else "unchanged"
        src = {"file": "file", "default": "S3", "range": "range", "gap": "gap"}.get(u.gamma_source, "")
        gamma = "–" if u.gamma is None else f"{u.gamma:g} ({src})"
        lines.append(f"| `{u.sub.name}` | {u.sub.span.line} | {gamma} | "
                     f"{render_values(u.old)} | {ets} | {ns} | {_f(w, 3)} | {_f(wt)} | {_move(u)} | {new} |")
    notes = [u for u in ev.updates if u.dropped or u.note]
    if notes:
        lines += ["", "## Notes", ""]
        for u in notes:
            parts = []
            if u.dropped:
                parts.append("dropped " + ", ".join(f"{v!r} ({why})" for v, why in u.dropped))
            if u.note:
                parts.append(u.note)
            lines.append(f"- `{u.sub.name}`: " + "; ".join(parts))
    moved = ev.changed
    lines += ["", f"{len(moved)} of {len(ev.updates)} subspaces moved."]
    return "\n".join(lines) + "\n"


def write_report(ev, directory: str, errors_by_space: Sequence[tuple[str, Sequence[float]]] | None = None,
                 spaces: Sequence | None = None, plots: bool = True) -> list[str]:
    """Write ``report.md``, ``report.json`` and the figures of one step into ``directory``."""
    written = []
    p = os.path.join(directory, "report.md")
    write_text(p, markdown(ev))
    written.append(p)
    p = os.path.join(directory, "report.json")
    write_json(p, ev.as_json())
    written.append(p)
    if plots:
        p = os.path.join(directory, "choices.png")
        plot_choices(list(spaces) if spaces else [ev.space, ev.new_space], p)
        written.append(p)
        p = os.path.join(directory, "errors_cdf.png")
        plot_error_cdf(errors_by_space or [(ev.space.name, [e.error for e in ev.rows.used])], p)
        written.append(p)
    return written


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_choices(spaces: Sequence, path: str, labels: Sequence[str] | None = None) -> None:
    """S3 Fig. 2: choices per dimension (rows) and stage (columns) across iterations (x axis)."""
    _save(choices_figure(spaces, labels), path)


def choices_figure(spaces: Sequence, labels: Sequence[str] | None = None):
    """The figure of :func:`plot_choices` (x axis: the iteration, labelled on every panel)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    fields: list[str] = []
    stages: list[str] = []
    cells: dict[tuple[str, str], dict[int, set]] = {}
    for t, sp in enumerate(spaces):
        for sub in subspaces(sp):
            cols = list(sub.stages) or ["space"]
            if sub.field not in fields:
                fields.append(sub.field)
            for c in cols:
                if c not in stages:
                    stages.append(c)
                cells.setdefault((sub.field, c), {}).setdefault(t, set()).update(sub.choices)
    if "space" in stages:  # space-level dimensions last
        stages.remove("space")
        stages.append("space")
    nr, nc = max(1, len(fields)), max(1, len(stages))
    fig, axes = plt.subplots(nr, nc, figsize=(2.2 * nc + 1, 1.6 * nr + 0.6), squeeze=False)
    iters = list(range(len(spaces)))
    for r, field in enumerate(fields):
        for c, stage in enumerate(stages):
            ax = axes[r][c]
            data = cells.get((field, stage))
            if not data:
                ax.axis("off")
                continue
            ts = sorted(data)
            for t in ts:
                vs = sorted(data[t])
                ax.scatter([t] * len(vs), vs, s=14, color="tab:blue", zorder=3)
            ax.plot(ts, [min(data[t]) for t in ts], color="tab:gray", lw=0.8)
            ax.plot(ts, [max(data[t]) for t in ts], color="tab:gray", lw=0.8)
            ax.set_xticks(iters)
            ax.set_xticklabels(labels if labels else [str(i) for i in iters], fontsize=7)
            ax.set_xlabel(XLABEL, fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
            if all(float(v).is_integer() for vs in data.values() for v in vs):
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            if r == 0:
                ax.set_title(stage, fontsize=9)
            if c == 0:
                ax.set_ylabel(field, fontsize=9)
    fig.suptitle("choices per dimension and stage across iterations", fontsize=10)
    fig.tight_layout()
    return fig


def _save(fig, path: str) -> None:
    """Save a figure atomically (:func:`spacelang.util.atomic.write_figure`)."""
    write_figure(path, fig, dpi=110)


def plot_error_cdf(series: Sequence[tuple[str, Sequence[float]]], path: str) -> None:
    """S3 Fig. 6: empirical distribution function of errors, one curve per space."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for label, errors in series:
        xs = sorted(errors)
        if not xs:
            continue
        n = len(xs)
        ax.step(xs, [(i + 1) / n for i in range(n)], where="post", label=f"{label} (n={n})")
    ax.set_xlabel("top-1 error (%)")
    ax.set_ylabel("cumulative prob.")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


__all__ = ["markdown", "write_report", "plot_choices", "choices_figure", "plot_error_cdf", "XLABEL"]
