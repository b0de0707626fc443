"""Training rules: which archs a supernet step trains and how their losses and gradients combine.

One loop (``compiler/train.py``: data, schedule, checkpoints, DDP, AMP) with pluggable rules,
registered by name as timm registers models (DESIGN.md §10):

- ``uniform``  (AutoFormer §3.3)  one random subnet a step;
- ``sandwich`` (S3 Alg. 2, BigNAS) the largest, the smallest and k random subnets, gradients summed;
- ``nasvit``   (NASViT §3, App. C.1) the largest with the labels, the smallest and k random with
  in-place distillation from the detached largest, gradient projection (Eq. 1);
- ``multiarch`` (ViT-ResNAS §2.3, App. C) N_a subnets on N_a sub-batches in one masked
  forward/backward pass; sampling warm-up; token labelling with CutMix/Mixup switching (§2.4).

A rule is a class with a ``name`` registered by :func:`register`; :func:`create_rule` builds the
rule a :class:`~spacelang.compiler.train.TrainConfig` names.  A new rule is one module in this
package that calls :func:`register` (and an import below): its settings are TrainConfig fields
(stored in the checkpoint) that its ``check`` validates (``check_space`` refuses spaces it cannot
train); ``setup(steps_per_epoch, total_steps)`` gives it the schedule (a sampling warm-up);
``archs`` may return many archs and ``step`` may run them in one masked forward pass on
sub-batches of ``ctx.x`` (``ctx.offset``: the slice's place in the global batch; a rule with
``mixes_inputs`` gets unmixed ``ctx.labels`` and makes its own targets).  The
registry-parametrised tests in ``tests/test_rules.py`` then exercise it (training, exact resume,
2 processes against 1).
"""
from __future__ import annotations

from spacelang.errors import OptionError

from .base import Rule, StepContext, step_rng

RULES: dict[str, type[Rule]] = {}


def register(cls: type[Rule]) -> type[Rule]:
    """Class decorator: make ``cls`` available as ``--rule cls.name``."""
    if not cls.name or cls.name in RULES:
        raise ValueError(f"rule name {cls.name!r} is empty or taken")
    RULES[cls.name] = cls
    return cls


def rule_names() -> tuple[str, ...]:
    """The registered rules' names, in registration order."""
    return tuple(RULES)


def rule_class(name: str) -> type[Rule]:
    try:
        return RULES[name]
    except KeyError:
        raise OptionError(f"unknown training rule {name!r}; choose one of {', '.join(RULES)}") from None


def create_rule(cfg) -> Rule:
    """The rule ``cfg.rule`` names, configured by ``cfg`` (checked first)."""
    cls = rule_class(cfg.rule)
    cls.check(cfg)
    return cls(cfg)


# the built-in rules register themselves on import
from . import multiarch, nasvit, sandwich, uniform  # noqa: E402,F401

__all__ = ["RULES", "Rule", "StepContext", "register", "rule_names", "rule_class", "create_rule", "step_rng"]
