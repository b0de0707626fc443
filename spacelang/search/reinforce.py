"""REINFORCE topology search (As-ViT Algorithm 1): a policy over the space's dims, proxy rewards.

*Policy.*  A joint categorical distribution with one independent factor per dimension of the
space (``logits[path]``, one logit per choice; As-ViT §3.3: "a joint categorical distribution
over the choices in Table 1").  An arch is drawn like :meth:`Space.sample` draws one — the gates
(stage depths, optional blocks) first, then every dimension they leave active — each from its
own factor.  ``log π(a)`` sums the factors of the arch's dimensions only; inactive dimensions
did not shape the arch and get no gradient.  The joint entropy reported per step is the sum of
the factors' entropies in nats (uniform over As-ViT's Table 1 space: 15.33, the paper's 15.3).

*Reward* (Algorithm 1, line 5).  Each objective ``m`` (a proxy, with direction ±1) is
normalised by the range it has shown so far, as the change from the previous step:
``m̃_t = (m_t − m_{t−1}) / (max_{t'≤t} m − min_{t'≤t} m)`` (0 at the first step and while the
range is 0), and the reward is ``r_t = Σ_m direction_m · m̃_t`` — for As-ViT, ``L̃_E − κ̃_Θ``.

*Update.*  ``∇ log π(a) = onehot(a) − p`` per active factor, scaled by the advantage
``r_t − b`` against a moving-average baseline ``b ← β b + (1 − β) r_t`` (Williams, 1992), applied
with Adam (step ``lr``) — the paper names policy gradient but no optimiser.  The result is the
policy's most probable topology (each factor's mode, gates first).

*Persistence.*  Scores come from an injected ``evaluate(arch) -> {objective: value}`` (no torch
here); an arch drawn again reuses its scores (proxies are deterministic per arch and seed).
After every step ``results.jsonl`` (one row per step) and ``state.json`` (policy, Adam moments,
baseline, objective history, score cache, RNG) are written atomically to ``out_dir``; running
again with the same space, seed and settings resumes and ends exactly where an uninterrupted
run ends.  Another run's state is a :class:`SearchError`.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
from typing import Any, Callable, Mapping

import attrs
import numpy as np

from ..errors import SearchError
from ..util.archkey import arch_json
from ..util.atomic import write_json, write_jsonl
from ..util.rngstate import rng_from_json, rng_to_json

Evaluate = Callable[[dict], Mapping[str, float]]
STATE_VERSION = 1
#: As-ViT: reward = normalised L_E minus normalised κ_Θ
ASVIT_OBJECTIVES = {"length_distortion": 1, "ntk_condition": -1}


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


class Policy:
    """One categorical factor per dimension of ``space``: ``logits[path]`` (numpy, one per choice)."""

    def __init__(self, space):
        self.space = space
        self.logits = {d.path: np.zeros(d.size) for d in space.dims}

    def probs(self, path: str) -> np.ndarray:
        return _softmax(self.logits[path])

    def sample(self, rng: random.Random) -> dict:
        """An arch drawn from the policy: gates first, then each active dimension (one ``rng.random()`` each)."""
        def draw(d):
            p = self.probs(d.path)
            i = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right"))
            return d.choices[min(i, d.size - 1)]
        return self.space.complete(draw, draw)

    def mode(self) -> dict:
        """The most probable choice of every factor (gates first): the search's result."""
        def best(d):
            return d.choices[int(np.argmax(self.logits[d.path]))]
        return self.space.complete(best, best)

    def log_prob(self, arch: Mapping[str, Any]) -> float:
        return float(sum(math.log(self.probs(p)[self.space.dim(p).choices.index(v)]) for p, v in arch.items()))

    def entropy(self) -> float:
        """Entropy of the joint distribution in nats (the sum of the factors' entropies)."""
        total = 0.0
        for d in self.space.dims:  # a fixed order: the float sum is the same after a resume
            p = self.probs(d.path)
            total -= float(np.sum(p * np.log(np.clip(p, 1e-300, None))))
        return total

    def gradient(self, arch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """``∇ log π(arch)`` with respect to each active factor's logits: ``onehot − p``."""
        out = {}
        for path, v in arch.items():
            g = -self.probs(path)
            g[self.space.dim(path).choices.index(v)] += 1.0
            out[path] = g
        return out


@attrs.define
class ReinforceConfig:
    """Settings of a run (stored in its state; a resumed run must use the same)."""

    steps: int = 500
    lr: float = 0.05              # Adam step on the logits
    baseline_decay: float = 0.9   # β of the moving-average baseline
    adam_betas: tuple = (0.9, 0.999)
    objectives: dict = attrs.field(factory=lambda: dict(ASVIT_OBJECTIVES))

    def to_json(self) -> dict:
        return {"steps": self.steps, "lr": self.lr, "baseline_decay": self.baseline_decay,
                "adam_betas": list(self.adam_betas), "objectives": dict(sorted(self.objectives.items()))}


@attrs.define
class ReinforceResult:
    """The most probable topology, every step's row, and the entropy curve."""

    best: dict
    rows: list[dict]
    entropy: list[float]
    evaluations: int


def normalised_change(history: list[float]) -> float:
    """Line 5 of Algorithm 1 for the latest value: ``(m_t − m_{t−1}) / (max − min)`` over the history."""
    if len(history) < 2:
        return 0.0
    span = max(history) - min(history)
    return 0.0 if span <= 0 or not math.isfinite(span) else (history[-1] - history[-2]) / span


class _Run:
    def __init__(self, space, evaluate: Evaluate, cfg: ReinforceConfig, seed: int, out_dir: str | None):
        self.space, self.evaluate, self.cfg, self.out_dir = space, evaluate, cfg, out_dir
        self.policy = Policy(space)
        self.rng = random.Random(seed)
        self.identity = {"kind": "reinforce", "space": space.name,
                         "space_sha256": hashlib.sha256(space.source.encode()).hexdigest(),
                         "seed": seed, "settings": cfg.to_json()}
        paths = [d.path for d in space.dims]
        self.m = {p: np.zeros(space.dim(p).size) for p in paths}
        self.v = {p: np.zeros(space.dim(p).size) for p in paths}
        self.adam_t = 0
        self.baseline: float | None = None
        self.history: dict[str, list[float]] = {k: [] for k in cfg.objectives}
        self.cache: dict[str, dict] = {}
        self.rows: list[dict] = []
        self.entropy = [self.policy.entropy()]
        if out_dir and os.path.exists(self._state_path()):
            self._restore()

    # -- persistence
    def _state_path(self) -> str:
        return os.path.join(self.out_dir, "state.json")

    def _save(self) -> None:
        if not self.out_dir:
            return
        write_jsonl(os.path.join(self.out_dir, "results.jsonl"), self.rows)
        write_json(self._state_path(), {
            "version": STATE_VERSION, "identity": self.identity, "step": len(self.rows),
            "logits": {p: v.tolist() for p, v in self.policy.logits.items()},
            "adam": {"t": self.adam_t, "m": {p: v.tolist() for p, v in self.m.items()},
                     "v": {p: v.tolist() for p, v in self.v.items()}},
            "baseline": self.baseline, "history": self.history, "cache": self.cache,
            "entropy": self.entropy, "rng": rng_to_json(self.rng)}, indent=None)

    def _restore(self) -> None:
        path = self._state_path()
        try:
            with open(path, encoding="utf-8") as f:
                st = json.load(f)
            with open(os.path.join(self.out_dir, "results.jsonl"), encoding="utf-8") as f:
                rows = [json.loads(line) for line in f if line.strip()]
        except (OSError, json.JSONDecodeError) as e:
            raise SearchError(f"{path}: cannot resume ({e})") from None
        if st.get("version") != STATE_VERSION or st.get("identity") != self.identity:
            raise SearchError(f"{path} holds the state of a different search (space, seed or settings differ)",
                              hint="use another output folder, or the same settings to resume")
        self.rows = rows[: st["step"]]
        paths = [d.path for d in self.space.dims]
        self.policy.logits = {p: np.array(st["logits"][p], dtype=float) for p in paths}
        self.adam_t = st["adam"]["t"]
        self.m = {p: np.array(st["adam"]["m"][p], dtype=float) for p in paths}
        self.v = {p: np.array(st["adam"]["v"][p], dtype=float) for p in paths}
        self.baseline, self.history, self.cache = st["baseline"], st["history"], st["cache"]
        self.entropy = st["entropy"]
        rng_from_json(st["rng"], self.rng)

    # -- one step
    def _scores(self, arch: dict) -> tuple[dict, bool]:
        key = arch_json(arch)
        if key in self.cache:
            return self.cache[key], True
        raw = self.evaluate(dict(arch))
        scores = {}
        for name in self.cfg.objectives:
            if name not in raw:
                raise SearchError(f"the evaluator returned no {name!r} (it returned {', '.join(sorted(raw))})")
            value = float(raw[name])
            if not math.isfinite(value):
                raise SearchError(f"the evaluator returned {name} = {value} for {key}")
            scores[name] = value
        self.cache[key] = scores
        return scores, False

    def _adam(self, grads: dict[str, np.ndarray], scale: float) -> None:
        b1, b2 = self.cfg.adam_betas
        self.adam_t += 1
        for path in self.policy.logits:  # every factor's moments decay each step (grad 0 when inactive)
            g = scale * grads.get(path, 0.0)
            self.m[path] = b1 * self.m[path] + (1 - b1) * g
            self.v[path] = b2 * self.v[path] + (1 - b2) * g * g
            mh = self.m[path] / (1 - b1 ** self.adam_t)
            vh = self.v[path] / (1 - b2 ** self.adam_t)
            self.policy.logits[path] = self.policy.logits[path] + self.cfg.lr * mh / (np.sqrt(vh) + 1e-8)

    def step(self) -> None:
        arch = self.policy.sample(self.rng)
        scores, cached = self._scores(arch)
        reward = 0.0
        for name, direction in self.cfg.objectives.items():
            self.history[name].append(scores[name])
            reward += direction * normalised_change(self.history[name])
        baseline = 0.0 if self.baseline is None else self.baseline
        advantage = reward - baseline
        log_prob = self.policy.log_prob(arch)
        self._adam(self.policy.gradient(arch), advantage)
        beta = self.cfg.baseline_decay
        self.baseline = reward if self.baseline is None else beta * self.baseline + (1 - beta) * reward
        self.entropy.append(self.policy.entropy())
        self.rows.append({"step": len(self.rows), "arch": arch, **scores, "reward": reward,
                          "baseline": baseline, "log_prob": log_prob, "entropy": self.entropy[-1],
                          "cached": cached})

    def run(self, on_step=None) -> ReinforceResult:
        while len(self.rows) < self.cfg.steps:
            self.step()
            self._save()
            if on_step is not None:
                on_step(self.rows[-1])
        best = self.policy.mode()
        if self.out_dir:
            write_json(os.path.join(self.out_dir, "best.json"),
                       {"arch": best, "space": {"name": self.space.name}, "entropy": self.entropy[-1],
                        "log_prob": self.policy.log_prob(best), "steps": len(self.rows)})
        return ReinforceResult(best, self.rows, self.entropy, len(self.cache))


def run_reinforce(space, evaluate: Evaluate, steps: int = 500, seed: int = 0, out_dir: str | None = None, *,
                  lr: float = 0.05, baseline_decay: float = 0.9, objectives: Mapping[str, int] | None = None,
                  on_step: Callable[[dict], None] | None = None) -> ReinforceResult:
    """Search ``space`` with REINFORCE for ``steps`` steps (As-ViT Algorithm 1).

    ``evaluate(arch)`` returns a mapping holding every objective (default: As-ViT's
    ``length_distortion`` (+1, higher is better) and ``ntk_condition`` (−1)).  With ``out_dir`` the
    run streams ``results.jsonl``, saves ``state.json`` after every step, resumes from it, and
    writes ``best.json`` (the policy's most probable topology) at the end.
    """
    if steps < 1:
        raise SearchError(f"steps must be at least 1, got {steps}")
    objectives = dict(objectives or ASVIT_OBJECTIVES)
    if not objectives or any(d not in (1, -1) for d in objectives.values()):
        raise SearchError("objectives map a score name to +1 (higher is better) or -1 (lower is better)")
    cfg = ReinforceConfig(steps=steps, lr=lr, baseline_decay=baseline_decay, objectives=objectives)
    return _Run(space, evaluate, cfg, seed, out_dir).run(on_step)


__all__ = ["Policy", "ReinforceConfig", "ReinforceResult", "run_reinforce", "normalised_change", "ASVIT_OBJECTIVES"]
