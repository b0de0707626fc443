"""Measuring latency on this machine: the per-layer table, whole subnets, the correction, a check.

``build_profile(space, …)`` times every distinct layer configuration of the space
(:func:`spacelang.latency.layer_configs`) as a standalone module — the op compiled at exactly that
layer's size and extracted (``get_op(kind)(layer).extract(layer)``), fed a random input of the
layer's shape — then times whole subnets extracted from the compiled supernet, spread over the
space's range of predicted latency, fits ``measured ≈ a · Σ layers + b`` on three quarters of them
and reports the error on the rest (:func:`spacelang.latency.heldout_error`).  ``check_profile``
re-measures fresh random subnets against a profile.

Every time is the **median** of ``reps`` samples after ``warmup`` untimed runs, the samples of a
group of layers (or subnets) taken in interleaved rounds (:meth:`Timing.time_many`); a sample times as
many back-to-back calls as fill ``min_sample_ms`` (so the timer's resolution and the call overhead
of a 10 µs layer do not dominate), in inference mode, with ``threads`` torch threads, on one of
two clocks (:data:`CLOCKS`): elapsed time, or — the default at one thread — the calling thread's
CPU time, which a machine shared with other processes does not inflate.
"""
from __future__ import annotations

import random
import statistics
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import torch

from spacelang.errors import OptionError
from spacelang.latency import (FORMAT, VERSION, LatencyPredictor, LayerConfig, Profile, ProfileError,
                               check_finite, fit_correction, heldout_error, layer_configs, layer_fields,
                               machine_fingerprint)
from spacelang.netspec import Layer

from .identity import space_identity
from .ops import get_op
from .supernet import build_supernet

DTYPES = {"float32": torch.float32}
#: how many layers, and how many whole subnets, are timed interleaved at once (a group's modules
#: stay in memory together: 16 AutoFormer-T subnets are about 0.6 GB)
LAYER_GROUP = 200
SUBNET_GROUP = 16


#: ``wall``: elapsed time; ``cpu``: CPU time of the calling thread, which is all of the work at one
#: torch thread and leaves out the time other processes hold the core (a shared machine)
CLOCKS = {"wall": time.perf_counter_ns, "cpu": time.thread_time_ns}


def default_clock(threads: int) -> str:
    """``cpu`` at one thread (robust to other processes' load), ``wall`` otherwise (the thread's
    CPU time would miss the other threads' work)."""
    return "cpu" if threads == 1 else "wall"


#: how a time is summarised from its samples: their median, or their minimum (the run least
#: disturbed by other processes: the estimate of a quiet machine's time)
STATISTICS = {"median": statistics.median, "min": min}


class Timing(NamedTuple):
    """How every time is taken: untimed runs, samples, the least length of a sample, the clock
    (:data:`CLOCKS`) and the statistic (:data:`STATISTICS`)."""

    warmup: int = 3
    reps: int = 15
    min_sample_ms: float = 2.0
    clock: str = "wall"
    statistic: str = "median"

    def check(self) -> "Timing":
        if self.reps < 1:
            raise OptionError(f"--reps must be at least 1, got {self.reps}")
        if self.warmup < 0:
            raise OptionError(f"--warmup must be at least 0, got {self.warmup}")
        if self.clock not in CLOCKS:
            raise OptionError(f"--clock must be one of {', '.join(CLOCKS)}, got {self.clock!r}")
        if self.statistic not in STATISTICS:
            raise OptionError(f"--statistic must be one of {', '.join(STATISTICS)}, got {self.statistic!r}")
        return self

    def time(self, fn: Callable[[], Any]) -> tuple[float, float]:
        """``(time, interquartile range)`` in milliseconds of one call of ``fn``."""
        return self.time_many([fn])[0]

    def time_many(self, fns: Sequence[Callable[[], Any]]) -> list[tuple[float, float]]:
        """:meth:`time` of each of ``fns``, *interleaved*: sample ``r`` of every function is taken
        in round ``r``, so a slow spell of the machine (another process's burst) lands on all of
        them alike instead of on whichever was being timed then."""
        self.check()
        now, summary = CLOCKS[self.clock], STATISTICS[self.statistic]
        inner = []
        with torch.inference_mode():
            for fn in fns:
                for _ in range(max(self.warmup, 1)):
                    fn()
                t0 = time.perf_counter()
                fn()
                one = time.perf_counter() - t0
                inner.append(max(1, min(10_000, int(self.min_sample_ms / 1000.0 / max(one, 1e-7)))))
            samples: list[list[float]] = [[] for _ in fns]
            for _ in range(self.reps):
                for fn, k, out in zip(fns, inner, samples):
                    t0 = now()
                    for _ in range(k):
                        fn()
                    out.append((now() - t0) / k / 1e6)
        out = []
        for s in samples:
            q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0]] * 3
            out.append((summary(s), q[2] - q[0]))
        return out

    @classmethod
    def of(cls, profile: Profile, clock: str | None = None, statistic: str | None = None) -> "Timing":
        """The timing a profile was built with (``clock``/``statistic`` override its own)."""
        t = profile.data.get("timing") or {}
        return cls(int(t.get("warmup", 3)), int(t.get("reps", 15)), float(t.get("min_sample_ms", 2.0)),
                   clock or str(t.get("clock", "wall")), statistic or str(t.get("statistic", "median"))).check()


def layer_module(cfg: LayerConfig, batch: int, dtype: torch.dtype = torch.float32) -> tuple[torch.nn.Module, torch.Tensor]:
    """A standalone module of one layer configuration and a random input of its shape.

    The stem takes images ``(B, C, H, W)``; every later layer takes tokens ``(B, N, C)`` with
    ``N = in_size²`` plus the class token when the sequence carries one (the op protocol,
    ``compiler/ops/registry.py``).
    """
    layer = Layer(cfg.kind, cfg.layer)
    module = get_op(cfg.kind)(layer).extract(layer).to(dtype).eval()
    f = cfg.layer
    if cfg.role == "stem":
        x = torch.randn(batch, f.in_dim, f.in_size, f.in_size, dtype=dtype)
    else:
        x = torch.randn(batch, f.in_size * f.in_size + (1 if cfg.cls_token else 0), f.in_dim, dtype=dtype)
    return module, x


def _setup(threads: int, dtype: str) -> torch.dtype:
    if threads < 1:
        raise OptionError(f"--threads must be at least 1, got {threads}")
    if dtype not in DTYPES:
        raise OptionError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    torch.set_num_threads(threads)
    return DTYPES[dtype]


def measure_layers(configs: Mapping[str, LayerConfig], batch: int, dtype: torch.dtype, timing: Timing,
                   log: Callable[[str], None] = lambda s: None) -> dict[str, tuple[float, float]]:
    """``key -> (median ms, IQR ms)`` of every layer configuration, each as a standalone module."""
    out = {}
    items = list(configs.items())
    for start in range(0, len(items), LAYER_GROUP):
        group = items[start:start + LAYER_GROUP]
        calls = [_call(*layer_module(cfg, batch, dtype)) for _, cfg in group]
        for (key, _), t in zip(group, timing.time_many(calls)):
            out[key] = t
        log(f"layers: {start + len(group)}/{len(items)} timed")
    return out


def _call(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    return lambda: module(x)


def measure_subnets(space, archs: Sequence[Mapping[str, Any]], batch: int, dtype: torch.dtype, timing: Timing,
                    log: Callable[[str], None] = lambda s: None, net=None) -> list[float]:
    """Median milliseconds of each arch, extracted from the compiled supernet and run whole."""
    net = (net if net is not None else build_supernet(space)).to(dtype).eval()
    # groups in a seeded random order: a slow spell of the machine must not fall on, say, the
    # largest subnets only (the caller's order is often by size)
    order = list(range(len(archs)))
    random.Random(len(archs)).shuffle(order)
    out: list[float] = [0.0] * len(archs)
    for start in range(0, len(order), SUBNET_GROUP):
        group = order[start:start + SUBNET_GROUP]
        calls = []
        for i in group:
            sub = net.extract(archs[i]).eval()
            calls.append(_call(sub, torch.randn(batch, *sub.input_shape, dtype=dtype)))
        for i, (m, _) in zip(group, timing.time_many(calls)):
            out[i] = m
        del calls
        log(f"subnets: {start + len(group)}/{len(archs)} timed")
    check_finite(out, "subnet timing")
    return out


def spread_archs(space, predictor: LatencyPredictor, n: int, pool: Sequence[Mapping]) -> list[dict]:
    """``n`` distinct archs spread evenly over the range of ``predictor.layer_sum`` in ``pool``
    (plus the smallest and largest arch): the quantiles of the pool's sorted sums."""
    seen, ranked = set(), []
    for a in [space.min_arch(), space.max_arch(), *pool]:
        k = tuple(sorted(a.items()))
        if k not in seen:
            seen.add(k)
            ranked.append((predictor.layer_sum(a), k, a))
    ranked.sort(key=lambda t: (t[0], t[1]))
    if n >= len(ranked):
        return [a for _, _, a in ranked]
    idx = sorted({round(i * (len(ranked) - 1) / (n - 1)) for i in range(n)}) if n > 1 else [len(ranked) // 2]
    return [ranked[i][2] for i in idx]


def build_profile(space, *, batch: int = 1, threads: int = 1, dtype: str = "float32", subnets: int = 100,
                  heldout_every: int = 4, layers_only: bool = False, timing: Timing | None = None, seed: int = 0,
                  pool: int = 2000, log: Callable[[str], None] = lambda s: None) -> dict:
    """Measure ``space`` on this machine; returns the profile's JSON object (docs/latency.md).

    ``subnets`` whole subnets are measured (unless ``layers_only``); every ``heldout_every``-th of
    them in order of predicted latency is held out of the fit and only scored.  ``timing``
    defaults to :class:`Timing` with :func:`default_clock` of ``threads``.
    """
    if batch < 1:
        raise OptionError(f"--batch must be at least 1, got {batch}")
    if not layers_only and subnets < 4:
        raise OptionError(f"--subnets must be at least 4 (a fit and a held-out set), got {subnets}")
    if heldout_every < 2:
        raise OptionError(f"every held-out subnet needs fitted ones: heldout_every must be at least 2, got {heldout_every}")
    timing = timing or Timing(clock=default_clock(threads))
    t_start = time.perf_counter()
    torch_dtype = _setup(threads, dtype)
    torch.manual_seed(seed)
    rng = random.Random(f"spacelang-latency/{seed}")
    archs = [space.sample(rng) for _ in range(pool)]
    configs = layer_configs(space, [space.min_arch(), space.max_arch(), *archs])  # every arch it may time
    resolutions = sorted({space.input_shape(a)[1] for a in [space.min_arch(), space.max_arch(), *archs]})
    log(f"{space.name}: {len(configs)} distinct layer configurations; batch {batch}, {threads} thread(s), {dtype}, "
        f"{timing.clock} clock")
    for cfg in configs.values():  # a kind without an op fails here, before any timing
        get_op(cfg.kind)
    times = measure_layers(configs, batch, torch_dtype, timing, log)
    check_finite([m for m, _ in times.values()], "layer timing")
    layers = [{"role": c.role, "kind": c.kind, "fields": layer_fields(c.layer), "cls_token": c.cls_token,
               "ms": round(times[k][0], 6), "iqr_ms": round(times[k][1], 6)} for k, c in configs.items()]
    fingerprint = {**machine_fingerprint("cpu"), "threads": threads, "dtype": dtype, "batch": batch,
                   "resolution": resolutions}
    data = {"format": FORMAT, "version": VERSION, "space": space_identity(space), "source": space.source,
            "fingerprint": fingerprint,
            "timing": {**timing._asdict(), "seed": seed,
                       "layer_input": "random normal; tokens (B, in_size² [+1 class token], in_dim)"},
            "layers": layers,
            "correction": {"model": "latency = a * sum(layer ms) + b_ms", "a": 1.0, "b_ms": 0.0, "fit_n": 0},
            "subnets": [], "heldout": heldout_error([], [])}
    if not layers_only:
        uncorrected = LatencyPredictor(space, Profile(data, "<building>"))
        chosen = spread_archs(space, uncorrected, subnets, archs)
        log(f"timing {len(chosen)} whole subnets (every {heldout_every}th held out of the fit)")
        measured = measure_subnets(space, chosen, batch, torch_dtype, timing, log)
        sums = [uncorrected.layer_sum(a) for a in chosen]
        held = [i % heldout_every == heldout_every - 1 for i in range(len(chosen))]
        fit_s = [s for s, h in zip(sums, held) if not h]
        fit_m = [m for m, h in zip(measured, held) if not h]
        a, b = fit_correction(fit_s, fit_m)
        data["correction"].update(a=round(a, 6), b_ms=round(b, 6), fit_n=len(fit_s))
        data["subnets"] = [{"arch": arch, "layer_sum_ms": round(s, 6), "measured_ms": round(m, 6),
                            "predicted_ms": round(a * s + b, 6), "set": "heldout" if h else "fit"}
                           for arch, s, m, h in zip(chosen, sums, measured, held)]
        data["heldout"] = heldout_error([a * s + b for s, h in zip(sums, held) if h],
                                        [m for m, h in zip(measured, held) if h])
        data["fit_error"] = heldout_error([a * s + b for s in fit_s], fit_m)
    data["build_seconds"] = round(time.perf_counter() - t_start, 1)
    return data


def check_profile(profile: Profile, n: int = 20, seed: int = 1, force: bool = False, clock: str | None = None,
                  statistic: str | None = None, log: Callable[[str], None] = lambda s: None) -> dict:
    """Re-measure ``n`` random subnets (uniform, seeded, none of the profile's own) against the
    profile's predictions on this machine; returns the error and the rows.

    :data:`ANCHORS` of the profile's own subnets are timed with them: ``drift`` is the median
    ratio of their times now to their times in the profile (the whole machine's change of speed),
    and ``drift_corrected`` the error of the predictions scaled by it — what is left is the
    model's error.  The plain figures stay the primary ones."""
    if n < 1:
        raise OptionError(f"-n must be at least 1, got {n}")
    profile.check_machine(force)
    space = profile.load_space()
    profile.check_space(space, force)
    predictor = LatencyPredictor(space, profile)
    used = {tuple(sorted(r["arch"].items())) for r in profile.data.get("subnets") or []}
    rng = random.Random(f"spacelang-latency-check/{seed}")
    archs, seen = [], set(used)
    for _ in range(200 * n):
        a = space.sample(rng)
        k = tuple(sorted(a.items()))
        if k not in seen:
            seen.add(k)
            archs.append(a)
            if len(archs) == n:
                break
    if not archs:
        raise ProfileError(f"{profile.path}: no subnet left to check (the profile measured them all)")
    predicted = [predictor(a) for a in archs]
    timing = Timing.of(profile, clock, statistic)
    # anchors: a few of the profile's own subnets, timed in the same groups, tell how much faster or
    # slower the whole machine is now than when the profile was built (other processes' load)
    own = profile.data.get("subnets") or []
    anchors = [own[i] for i in sorted({round(j * (len(own) - 1) / (ANCHORS - 1)) for j in range(ANCHORS)})] \
        if len(own) >= ANCHORS else []
    measured = remeasure(profile, space, archs + [r["arch"] for r in anchors], timing=timing, log=log)
    measured, now = measured[:len(archs)], measured[len(archs):]
    out = {**heldout_error(predicted, measured), "clock": timing.clock, "statistic": timing.statistic,
           "rows": [{"arch": a, "predicted_ms": round(p, 4), "measured_ms": round(m, 4)}
                    for a, p, m in zip(archs, predicted, measured)]}
    if anchors:
        drift = statistics.median(m / r["measured_ms"] for m, r in zip(now, anchors))
        out["drift"] = round(drift, 4)
        out["drift_corrected"] = heldout_error([p * drift for p in predicted], measured)
    return out


def remeasure(profile: Profile, space, archs: Sequence[Mapping[str, Any]], net=None, timing: Timing | None = None,
              log: Callable[[str], None] = lambda s: None) -> list[float]:
    """Measured milliseconds of ``archs`` under the profile's settings (threads, batch, dtype and,
    unless ``timing`` is given, its timing), e.g. a search's final candidates; ``net`` reuses an
    already built supernet."""
    fp = profile.fingerprint
    torch_dtype = _setup(int(fp.get("threads") or 1), str(fp.get("dtype", "float32")))
    return measure_subnets(space, archs, int(fp.get("batch") or 1), torch_dtype, timing or Timing.of(profile), log,
                           net=net)


# ------------------------------------------------------------------------------ for the search
#: how many of a profile's own subnets ``check_profile`` re-times to gauge the machine's drift
ANCHORS = 5
#: how many candidates a search re-measures: its best and the latency Pareto front's best few
REMEASURE = 6


def search_predictor(space, path: str | None, force: bool = False, log: Callable[[str], None] = lambda s: None):
    """The predictor of the profile at ``path`` for ``space`` (None without a path); another space
    is refused unless ``force``, another machine noted (predictions are for the profile's)."""
    if not path:
        return None
    from spacelang.latency import load_profile
    profile = load_profile(path, space, force=force, force_flag="--force-profile")
    diff = profile.machine_differences()
    if diff:
        log(f"spacelang: warning: latency is predicted for the profile's machine ({profile.device_text()}); "
            f"this one differs ({'; '.join(diff)}), so final candidates are not re-measured")
    return LatencyPredictor(space, profile)


def remeasure_candidates(predictor: LatencyPredictor, rows: Sequence[Mapping[str, Any]], best: Mapping[str, Any],
                         out_path: str, log: Callable[[str], None] = lambda s: None, limit: int = REMEASURE) -> dict:
    """Measure the search's best arch and the top of its latency/accuracy Pareto front on this
    machine; write ``{"candidates": [{arch, accuracy, predicted_ms, measured_ms, error_percent}],
    "error": …}`` to ``out_path`` and return it.  Nothing is measured on a machine other than the
    profile's (``{"skipped": reason}``)."""
    from spacelang.search.pareto import pareto_front
    from spacelang.util.archkey import arch_json
    from spacelang.util.atomic import write_json
    profile = predictor.profile
    diff = profile.machine_differences()
    if diff:
        report = {"skipped": f"another machine than the profile's ({'; '.join(diff)})"}
        write_json(out_path, report)
        return report
    front = pareto_front(rows, cost=lambda r: r["latency"], score=lambda r: r["accuracy"])
    picked = {arch_json(best["arch"]): best}
    for r in sorted(front, key=lambda r: -r["accuracy"]):
        if len(picked) >= limit:
            break
        picked.setdefault(arch_json(r["arch"]), r)
    cands = list(picked.values())
    log(f"latency: re-measuring {len(cands)} final candidates on this machine")
    measured = remeasure(profile, predictor.space, [c["arch"] for c in cands], log=log)
    predicted = [predictor(c["arch"]) for c in cands]
    report = {"profile": profile.path, "device": profile.device_text(), **heldout_error(predicted, measured),
              "candidates": [{"arch": c["arch"], "accuracy": c.get("val_accuracy", c["accuracy"]),
                              "predicted_ms": round(p, 4), "measured_ms": round(m, 4),
                              "error_percent": round(100.0 * (p - m) / m, 2)}
                             for c, p, m in zip(cands, predicted, measured)]}
    write_json(out_path, report)
    return report


def plot_latency_pareto(rows: Sequence[Mapping[str, Any]], best: Mapping[str, Any] | None, path: str,
                        title: str = "") -> None:
    """Search-validation accuracy against predicted latency: every arch, the Pareto front, the best."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from spacelang.search.pareto import pareto_front
    from spacelang.util.atomic import write_figure

    front = pareto_front(rows, cost=lambda r: r["latency"], score=lambda r: r["accuracy"])
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.scatter([r["latency"] for r in rows], [r["accuracy"] for r in rows], s=10, c="0.65",
               label=f"evaluated ({len(rows)})", zorder=1)
    ax.plot([r["latency"] for r in front], [r["accuracy"] for r in front], "-o", c="tab:blue", ms=4, lw=1.2,
            label="Pareto front", zorder=2)
    if best is not None and best.get("latency") is not None:
        ax.scatter([best["latency"]], [best.get("val_accuracy", best["accuracy"])], marker="*", s=220, c="tab:red",
                   edgecolors="k", linewidths=0.6, zorder=3, label="best")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("search-validation accuracy (%)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    write_figure(path, fig)


__all__ = ["Timing", "CLOCKS", "STATISTICS", "default_clock", "layer_module", "measure_layers", "measure_subnets",
           "spread_archs", "build_profile", "check_profile", "remeasure", "DTYPES", "search_predictor",
           "remeasure_candidates", "plot_latency_pareto", "REMEASURE"]
