"""S3's search of the search space (Alg. 1) with training and evaluation injected.

For t = 0 … T−1: train the supernet of the current space (the caller's ``train``, S3 uses the
sandwich rule), sample N archs under the space's constraints, evaluate them with inherited weights
(the caller's ``evaluate``), compute every subspace's E-T error and rewrite the space (Eq. 8).
The loop itself imports no torch: ``spacelang evolve --iterations`` passes the compiler's training
and evaluation, the tests pass synthetic ones.

Everything lands in one directory, one folder per iteration, so that ``git diff --no-index
DIR/iter0/space.space DIR/iter1/space.space`` (or ``spacelang diff``) tells the story::

    DIR/iter0/space.space        the space of iteration 0 (the input, byte for byte)
    DIR/iter0/supernet/          whatever ``train`` writes (the compiler: its checkpoint)
    DIR/iter0/results.jsonl      the N evaluated archs (DESIGN.md §6)
    DIR/iter0/report/            report.md, report.json, choices.png, errors_cdf.png
    DIR/iter1/space.space        the space evolved from iteration 0
    …
    DIR/iterT/space.space        the final space (evaluated too unless ``evaluate_final=False``)
    DIR/summary.md, summary.json, choices.png (S3 Fig. 2), errors_cdf.png (S3 Fig. 6)

An iteration whose ``results.jsonl`` already exists next to an identical ``space.space`` is not
trained or evaluated again, so an interrupted run continues where it stopped.
"""
from __future__ import annotations

import json
import os
import random
import sys
from typing import Any, Callable, Mapping, Sequence

import attrs

from ..util.atomic import write_jsonl, write_text
from .et_error import DEFAULT_TOP_K, feasible, read_results, row_error, space_et
from .s3_evolve import DEFAULT_TAU, Evolution, evolve_space
from .s3_report import plot_choices, plot_error_cdf, write_report

#: ``train(space, directory) -> model``: fit the supernet of ``space``, writing into ``directory``.
Train = Callable[[Any, str], Any]
#: ``evaluate(space, model, archs) -> rows``: one dict per arch with ``accuracy`` or ``error`` (percent).
Evaluate = Callable[[Any, Any, Sequence[dict]], Sequence[Mapping[str, Any]]]


def sample_archs(space, n: int, rng: random.Random, max_tries: int | None = None) -> list[dict]:
    """Up to ``n`` distinct archs drawn uniformly under the space's constraints.

    Fewer when the space holds fewer distinct archs than ``n`` (bounded tries, never a loop
    forever — DESIGN.md §8).
    """
    from .sampling import sampler_for
    sampler = sampler_for(space, rng)
    seen: dict[str, dict] = {}
    tries = 0
    limit = max_tries if max_tries is not None else 20 * n + 100
    while len(seen) < n and tries < limit:
        a = sampler.sample()
        tries += 1
        seen.setdefault(json.dumps(a, sort_keys=True), a)
    return list(seen.values())


def _with_cost(space, arch: dict) -> dict:
    from ..cost import cost
    c = cost(space, arch)
    return {"params": c.params, "flops": c.flops}


def evaluate_rows(space, model, archs: Sequence[dict], evaluate_fn: Evaluate) -> list[dict]:
    """Results rows (DESIGN.md §6) of ``archs``: the caller's metrics plus exact params/FLOPs."""
    got = list(evaluate_fn(space, model, archs))
    if len(got) != len(archs):
        raise ValueError(f"evaluate returned {len(got)} results for {len(archs)} archs")
    rows = []
    for a, r in zip(archs, got):
        err = row_error(r)
        row = {"arch": a, "error": err, "accuracy": 100.0 - err, **_with_cost(space, a)}
        row.update({k: v for k, v in r.items() if k not in ("arch", "error", "accuracy")})
        rows.append(row)
    return rows


def _same_text(path: str, text: str) -> bool:
    """Whether ``path`` exists and holds exactly ``text``."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read() == text
    except (OSError, UnicodeDecodeError):
        return False


@attrs.frozen
class LoopResult:
    directory: str
    spaces: tuple          # Space of every iteration, the last one the final space
    results: tuple         # rows of every evaluated iteration
    evolutions: tuple      # Evolution of every step


def run_s3(space, iterations: int, directory: str, train: Train, evaluate: Evaluate, n_archs: int = 100,
           tau: float = DEFAULT_TAU, top_k: float = DEFAULT_TOP_K, rounding: str = "trunc", seed: int = 0,
           steps: Mapping[str, float] | None = None, max_steps: int | None = None,
           evaluate_final: bool = True, plots: bool = True, log: Callable[[str], None] | None = None) -> LoopResult:
    """Run S3 Alg. 1 for ``iterations`` evolution steps starting from ``space`` (a Space)."""
    from ..space import loads
    log = log or (lambda s: print(s, file=sys.stderr))
    if iterations < 0:
        raise ValueError("iterations must be >= 0")
    spaces = [space]
    results: list[list[dict]] = []
    evolutions: list[Evolution] = []
    for t in range(iterations + 1):
        cur = spaces[-1]
        it_dir = os.path.join(directory, f"iter{t}")
        space_path = os.path.join(it_dir, "space.space")
        res_path = os.path.join(it_dir, "results.jsonl")
        reuse = os.path.exists(res_path) and _same_text(space_path, cur.source)
        write_text(space_path, cur.source)
        cur = loads(cur.source, space_path)  # diagnostics and reports name the iteration's file
        spaces[-1] = cur
        last = t == iterations
        if last and not evaluate_final:
            break
        if reuse:
            rows = read_results(res_path)
            log(f"iter{t}: reusing {len(rows)} evaluated archs from {res_path}")
        else:
            log(f"iter{t}: training the supernet of {cur.name} ({cur.size():,} subnets)")
            model = train(cur, os.path.join(it_dir, "supernet"))
            archs = sample_archs(cur, n_archs, random.Random(f"spacelang-s3/{seed}/{t}"))
            log(f"iter{t}: evaluating {len(archs)} archs with inherited weights")
            rows = evaluate_rows(cur, model, archs, evaluate)
            write_jsonl(res_path, rows)
        results.append(rows)
        if last:
            break
        ev = evolve_space(cur, rows, tau=tau, top_k=top_k, rounding=rounding, steps=steps, max_steps=max_steps)
        evolutions.append(ev)
        cdf = [(f"iter{i}", [row_error(r) for r in rs]) for i, rs in enumerate(results)]
        write_report(ev, os.path.join(it_dir, "report"), errors_by_space=cdf, plots=plots)
        moved = ", ".join(f"{u.sub.name} {list(u.old)}→{list(u.new)}" for u in ev.changed) or "nothing moved"
        log(f"iter{t}: E-T {ev.overall['et']:.2f}%; {moved}")
        spaces.append(ev.new_space)
    _summary(directory, spaces, results, evolutions, plots, top_k)
    return LoopResult(directory, tuple(spaces), tuple(results), tuple(evolutions))


def _cell(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _summary(directory: str, spaces, results, evolutions, plots: bool, top_k: float = DEFAULT_TOP_K) -> None:
    labels = [f"iter{i}" for i in range(len(spaces))]
    lines = [f"# S3 search of the search space: `{spaces[0].name}`", "",
             "| iteration | subnets | archs evaluated | mean error (%) | best error (%) | E-T (%) | subspaces moved |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    summary = []
    for i, sp in enumerate(spaces):
        errs = [row_error(r) for r in results[i]] if i < len(results) else []
        ev = evolutions[i] if i < len(evolutions) else None
        mean = sum(errs) / len(errs) if errs else None
        best = min(errs) if errs else None
        # S3 Eq. 5 for the whole space, so the final (never rewritten) space gets its E-T too
        et = space_et(feasible(sp, results[i]).used, top_k)["et"] if i < len(results) else None
        lines.append(f"| iter{i} | {sp.size():,} | {len(errs)} | {_cell(mean)} | {_cell(best)} | {_cell(et)} | "
                     f"{len(ev.changed) if ev else '–'} |")
        summary.append({"iteration": i, "space": f"iter{i}/space.space", "subnets": sp.size(), "evaluated": len(errs),
                        "mean_error": mean, "best_error": best, "et": et,
                        "moved": [u.as_json() for u in ev.changed] if ev else []})
    lines += ["", "Per-step reports: `iterN/report/report.md`.  Diff two iterations with "
              "`git diff --no-index iter0/space.space iter1/space.space`.", ""]
    for i, ev in enumerate(evolutions):
        lines.append(f"## iter{i} → iter{i + 1}")
        lines.append("")
        for u in ev.changed:
            lines.append(f"- `{u.sub.name}`: {list(u.old)} → {list(u.new)} (slope {u.trend.slope:+.3f}, "
                         f"{'down' if u.k > 0 else 'up'} {abs(u.k)}·γ, γ = {u.gamma})")
        if not ev.changed:
            lines.append("- nothing moved")
        lines.append("")
    write_text(os.path.join(directory, "summary.md"), "\n".join(lines))
    write_text(os.path.join(directory, "summary.json"), json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if plots:
        plot_choices(spaces, os.path.join(directory, "choices.png"), labels)
        if results:
            plot_error_cdf([(labels[i], [row_error(r) for r in rs]) for i, rs in enumerate(results)],
                           os.path.join(directory, "errors_cdf.png"))


__all__ = ["run_s3", "LoopResult", "sample_archs", "evaluate_rows", "Train", "Evaluate"]
