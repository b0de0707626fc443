"""Latency of an arch on one device, predicted from a measured profile — pure Python, no torch.

A *profile* (built by ``spacelang latency profile``, measured by :mod:`spacelang.compiler.latency`)
holds, for one space on one device:

* the median time of every distinct **layer configuration** the space can produce — a layer's
  configuration is its role, its kind and its normalised fields (:func:`layer_configs` enumerates
  them through :func:`spacelang.cases.layer_cases`, the walk behind the checker);
* a **correction** fitted on measured whole subnets: ``latency = a · Σ layer times + b``
  (:func:`fit_correction`), and its **held-out error** on subnets not used for the fit
  (:func:`heldout_error`: MAPE and the share within ±10 %);
* the space's name and hashes, and the device's **fingerprint** (CPU model, cores, torch
  version and threads, dtype, batch, resolution).

:class:`LatencyPredictor` turns an arch into milliseconds by walking the network
(:meth:`spacelang.Space.walk`) and memoising each layer's time on what decides it — the slot, its
context and the values of the dimensions its fields read (the cost cache's key) — so a prediction
costs a few dictionary look-ups per layer.  :class:`LatencyCost` adds the prediction to the exact
``(params, flops)`` cost, which is how the samplers see a ``latency`` bound.
"""
from __future__ import annotations

import json
import math
import operator
import os
import platform
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import attrs

from .cases import Stop, layer_cases, layer_refs
from .errors import ArchError, EvalError, FieldError, ProfileError
from .fields import head_has_cls, normalize
from .walk import Role, Slot

FORMAT = "spacelang-latency-profile"
VERSION = 1
#: the fingerprint entries of the machine that must match for a profile's times to hold here
MACHINE_KEYS = ("device", "cpu", "cores", "torch")




# ------------------------------------------------------------------------------ layer configurations
def layer_fields(layer) -> dict:
    """A normalised layer's fields by name (every attribute of its attrs class)."""
    return attrs.asdict(layer, recurse=False)


def layer_key(role: str, kind: str, fields: Mapping[str, Any]) -> str:
    """The canonical text naming one layer configuration (the profile's table key)."""
    return json.dumps([role, kind, dict(fields)], sort_keys=True, separators=(",", ":"))


class LayerConfig(NamedTuple):
    """One distinct layer of a space: its role (``stem``/``downsample``/``block``/``head``),
    kind and normalised layer (:func:`layer_fields` are its fields), and whether the tokens entering
    it carry a class token."""

    role: str
    kind: str
    layer: Any
    cls_token: bool

    @property
    def key(self) -> str:
        return layer_key(self.role, self.kind, layer_fields(self.layer))


def layer_configs(space, archs: Iterable[Mapping[str, Any]] = ()) -> dict[str, LayerConfig]:
    """Every distinct layer configuration of ``space``, by :func:`layer_key`.

    The enumeration is the checker's (:func:`spacelang.cases.layer_cases`: every layer slot in
    every context under every assignment of the dimensions it reads; past
    :data:`spacelang.cases.MAX_COMBOS` assignments, corners and a fixed-seed sample).  The layers
    of ``archs`` (e.g. the subnets a profile measures whole) are added, so that a space too large
    for the exhaustive product still has every layer its measured subnets use.
    """
    out: dict[str, LayerConfig] = {}

    def add(slot: Slot, ctx, env) -> Any:
        try:
            f = space.normalized(slot, env, ctx)
        except (FieldError, EvalError):
            if slot.role is not Role.BLOCK:
                raise Stop() from None
            return None
        cfg = LayerConfig(slot.role.value, slot.layer.kind, f, bool(ctx.cls_token))
        out.setdefault(cfg.key, cfg)
        return f

    layer_cases(space, add)
    for arch in archs:
        for _ in space.walk(arch, lambda s, c: add(s, c, arch)):
            pass
    return out


# ------------------------------------------------------------------------------ device fingerprint
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def torch_version() -> str:
    """The installed torch's version, read from its metadata (torch is not imported)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("torch")
    except PackageNotFoundError:
        return "none"


def machine_fingerprint(device: str = "cpu") -> dict:
    """What identifies this machine for latency: device, CPU model, cores, torch version."""
    return {"device": device, "cpu": cpu_model(), "cores": os.cpu_count() or 0, "torch": torch_version()}


# ------------------------------------------------------------------------------ correction and error
def fit_correction(sums: Sequence[float], measured: Sequence[float]) -> tuple[float, float]:
    """``(a, b)`` of ``measured ≈ a · sum + b``, least squares on the *relative* residual
    ``(a·s + b − m) / m`` (the error that MAPE counts): weights ``1 / m²``.

    Falls back to a pure scale (``b = 0``) when the sums do not spread enough to fit two numbers.
    """
    if len(sums) != len(measured) or not sums:
        raise ValueError("fit_correction needs as many sums as measurements, at least one")
    w = [1.0 / (m * m) for m in measured]
    sw = sum(w)
    sx = sum(wi * s for wi, s in zip(w, sums))
    sy = sum(wi * m for wi, m in zip(w, measured))
    sxx = sum(wi * s * s for wi, s in zip(w, sums))
    sxy = sum(wi * s * m for wi, s, m in zip(w, sums, measured))
    det = sw * sxx - sx * sx
    if len(sums) >= 3 and det > 1e-12 * sw * sxx:
        a = (sw * sxy - sx * sy) / det
        b = (sy - a * sx) / sw
        if a > 0:
            return a, b
    return sxy / sxx, 0.0


def heldout_error(predicted: Sequence[float], measured: Sequence[float]) -> dict:
    """``{"mape_percent", "within_10_percent", "n"}`` of predictions against measurements
    (``within_10_percent``: the share, in %, whose relative error is at most 10 %)."""
    if len(predicted) != len(measured):
        raise ValueError("heldout_error needs as many predictions as measurements")
    if not measured:
        return {"mape_percent": None, "within_10_percent": None, "n": 0}
    rel = [abs(p - m) / m for p, m in zip(predicted, measured)]
    return {"mape_percent": round(100.0 * sum(rel) / len(rel), 3),
            "within_10_percent": round(100.0 * sum(r <= 0.10 for r in rel) / len(rel), 3),
            "n": len(rel)}


def describe_error(err: Mapping[str, Any]) -> str:
    """``MAPE 4.2%, 91% within ±10% (n=25)``, or why there is no figure."""
    if not err or not err.get("n"):
        return "no held-out subnets measured"
    return f"MAPE {err['mape_percent']:.1f}%, {err['within_10_percent']:.0f}% within ±10% (n={err['n']})"


# ------------------------------------------------------------------------------ the profile
class Profile:
    """A latency profile read from its JSON (see the module docstring and docs/latency.md).

    Attributes: ``path``, ``space`` (``{"name", "sha256", "semantic_sha256"}``), ``source`` (the
    space's text), ``fingerprint``, ``layers`` (layer key → median milliseconds), ``a``/``b``
    (the correction), ``heldout`` (the error recorded when it was built), ``data`` (the JSON).
    """

    def __init__(self, data: Mapping[str, Any], path: str = "<profile>"):
        self.path = path
        self.data = dict(data)
        try:
            if data.get("format") != FORMAT:
                raise ProfileError(f"{path}: not a spacelang latency profile")
            if data.get("version") != VERSION:
                raise ProfileError(f"{path}: latency profile version {data.get('version')!r}; this spacelang "
                                   f"reads version {VERSION}", hint="rebuild it with `spacelang latency profile`")
            self.space = dict(data["space"])
            self.source = data["source"]
            self.fingerprint = dict(data["fingerprint"])
            self.layers = {layer_key(e["role"], e["kind"], e["fields"]): float(e["ms"]) for e in data["layers"]}
            corr = data["correction"]
            self.a, self.b = float(corr["a"]), float(corr["b_ms"])
            self.heldout = dict(data.get("heldout") or {})
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ProfileError(f"{path}: damaged latency profile ({type(e).__name__}: {e})",
                               hint="rebuild it with `spacelang latency profile`") from None

    @classmethod
    def load(cls, path: str) -> "Profile":
        """Read a profile file; :class:`ProfileError` for a missing, unreadable or foreign file."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise ProfileError(f"{path}: no such latency profile",
                               hint="build one with `spacelang latency profile FILE -o PROFILE.json`") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ProfileError(f"{path}: cannot read the latency profile ({e})") from None
        if not isinstance(data, dict):
            raise ProfileError(f"{path}: not a spacelang latency profile")
        return cls(data, path)

    def load_space(self):
        """The space the profile was measured on (from the text it stores)."""
        from .space import loads
        return loads(self.source, filename=f"{self.path}:space")

    def check_space(self, space, force: bool = False, force_flag: str = "--force") -> None:
        """Refuse (unless ``force``) a space other than the profile's: semantic hashes differ.
        ``force_flag`` is how the command's hint names the override."""
        from .compiler.identity import semantic_sha256
        if force or semantic_sha256(space.source) == self.space.get("semantic_sha256"):
            return
        same = " (same name, other content)" if space.name == self.space.get("name") else ""
        raise ProfileError(f"{self.path}: the latency profile is of space {self.space.get('name')}, "
                           f"not {space.name}{same}",
                           hint=f"profile this space with `spacelang latency profile`, or pass {force_flag}")

    def machine_differences(self, here: Mapping[str, Any] | None = None) -> list[str]:
        """The machine entries of the fingerprint that differ from this machine's, as text."""
        here = machine_fingerprint(self.fingerprint.get("device", "cpu")) if here is None else here
        return [f"{k} {self.fingerprint.get(k)!r} here {here.get(k)!r}" for k in MACHINE_KEYS
                if self.fingerprint.get(k) != here.get(k)]

    def check_machine(self, force: bool = False, here: Mapping[str, Any] | None = None) -> None:
        """Refuse (unless ``force``) to measure against the profile on another machine."""
        diff = self.machine_differences(here)
        if diff and not force:
            raise ProfileError(f"{self.path}: the latency profile was measured on another machine "
                               f"(profile {'; '.join(diff)})",
                               hint="build a profile on this machine, or pass --force")

    def device_text(self) -> str:
        """``Intel Xeon …, 1 thread, batch 1, float32`` — what the predictions are for."""
        fp = self.fingerprint
        t = fp.get("threads")
        return (f"{fp.get('cpu')}, {t} thread{'s' if t != 1 else ''}, batch {fp.get('batch')}, "
                f"{fp.get('dtype')}")


def load_profile(path: str, space=None, force: bool = False, force_flag: str = "--force") -> Profile:
    """Read ``path`` and, given ``space``, refuse it for another space unless ``force``."""
    p = Profile.load(path)
    if space is not None:
        p.check_space(space, force, force_flag)
    return p


# ------------------------------------------------------------------------------ the predictor
class _Entry(NamedTuple):
    ms: float
    dim: int
    size: int


class LatencyPredictor:
    """``predictor(arch) -> milliseconds`` on the profile's device, for canonical archs of ``space``.

    Each layer's time is memoised on ``(slot number, context, values of the dimensions its fields
    read)`` (as :class:`spacelang.search.costcache.CostCache` memoises cost), so after the first
    archs a prediction is one walk of dictionary hits.  ``layer_sum(arch)`` is the uncorrected sum.
    Raises :class:`ProfileError` for a layer the profile has no time for.
    """

    def __init__(self, space, profile: Profile):
        self.space = space
        self.profile = profile
        self.a, self.b = profile.a, profile.b
        self._memo: dict[tuple, _Entry] = {}
        self._cls: dict[tuple, bool] = {}
        refs = [tuple(sorted(layer_refs(s.layer))) for s in space.slots]
        self._head_refs = refs[space.slots[-1].number]
        #: slot number -> env -> the values of the dimensions the slot's fields read (None: none)
        self._values = [operator.itemgetter(*r) if r else _none for r in refs]

    def __call__(self, arch: Mapping[str, Any]) -> float:
        return self.a * self.layer_sum(arch) + self.b

    def layer_sum(self, arch: Mapping[str, Any]) -> float:
        """Σ of the profile's per-layer medians over the arch's layers (milliseconds)."""
        total = 0.0
        try:
            for _, _, e in self._walk(arch):  # a plain loop: a generator in sum() costs a fifth more
                total += e.ms
            return total
        except (FieldError, EvalError) as e:
            raise ArchError(None, f"arch is not buildable: {e.message}") from None
        except KeyError as e:
            raise ArchError(e.args[0], "missing from the arch") from None

    def layers(self, arch: Mapping[str, Any]) -> list[tuple[str, float]]:
        """``(slot path, milliseconds)`` of every layer the arch runs."""
        return [(slot.path, e.ms) for slot, _, e in self._walk(arch)]

    def _entry(self, slot: Slot, ctx, env: Mapping[str, Any], key: tuple) -> _Entry:
        f = normalize(slot.layer, env, ctx)
        lk = layer_key(slot.role.value, slot.layer.kind, layer_fields(f))
        ms = self.profile.layers.get(lk)
        if ms is None:
            raise ProfileError(f"{self.profile.path}: no time for layer {slot.path} ({slot.layer.kind}: "
                               f"{', '.join(f'{k} {v}' for k, v in layer_fields(f).items())})",
                               hint="the profile may predate a change of the space or of its kind; rebuild it")
        hit = self._memo[key] = _Entry(ms, f.dim, f.size)
        return hit

    def _walk(self, env: Mapping[str, Any]):
        hk = tuple([env[p] for p in self._head_refs])
        cls = self._cls.get(hk)
        if cls is None:
            cls = self._cls[hk] = head_has_cls(self.space.head, env)
        memo, values = self._memo, self._values

        def visit(slot: Slot, ctx) -> _Entry:
            n = slot.number
            key = (n, ctx, values[n](env))
            hit = memo.get(key)
            return hit if hit is not None else self._entry(slot, ctx, env, key)
        return self.space.walk(env, visit, cls_token=cls)


def _none(env) -> None:
    return None


class LatencyCost(NamedTuple):
    """Exact params and FLOPs, and the predicted latency in milliseconds, of one arch."""

    params: int
    flops: int
    latency: float


class CostWithLatency:
    """``cost(arch) -> LatencyCost``: an exact cost function (a ``CostCache``) plus a predictor."""

    def __init__(self, cost, predictor: LatencyPredictor):
        self.cost = cost
        self.predictor = predictor

    def __call__(self, arch: Mapping[str, Any]) -> LatencyCost:
        c = self.cost(arch)
        return LatencyCost(c.params, c.flops, self.predictor(arch))


def check_finite(values: Iterable[float], what: str) -> None:
    """Refuse a NaN or infinite time (a broken timer, an empty measurement)."""
    for v in values:
        if not math.isfinite(v) or v <= 0:
            raise ProfileError(f"{what}: measured time {v!r} is not a positive number")


__all__ = ["FORMAT", "VERSION", "ProfileError", "LayerConfig", "layer_fields", "layer_key", "layer_configs", "cpu_model",
           "torch_version", "machine_fingerprint", "fit_correction", "heldout_error", "describe_error", "Profile",
           "load_profile", "LatencyPredictor", "LatencyCost", "CostWithLatency", "check_finite"]
