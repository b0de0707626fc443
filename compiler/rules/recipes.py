"""Training recipes: named presets of the regularisation and augmentation settings.

- ``deit`` (the default): AutoFormer Table 3 / DeiT — weight decay 0.05, drop path 0.1, label
  smoothing 0.1, mixup 0.8 and cutmix 1.0 on image folders (scaled down for small data; see
  ``TrainConfig.for_data``).
- ``nasvit`` (NASViT Table 5, "weak DA & reg"): RandAugment with n = 1 transformation at
  magnitude m = 1 (timm's ``rand-m1-n1``, which takes the place of timm's colour jitter), weight
  decay 0, no dropout, no drop path / drop-connect, no mixup or cutmix.  RandAugment works on
  images (PIL), so it applies to image folders; for the in-memory digits (already-normalised
  tensors) the recipe keeps the cheap random translation at 1 pixel — about what one of
  RandAugment's translations at magnitude 1 does (0.045 of the side: 1.4 px at 32 px) — and for
  ``synthetic`` no augmentation.

A recipe only sets defaults: flags given explicitly still win, and the resulting settings (with
``recipe`` and ``auto_augment``) are stored in the checkpoint's config like every other setting.
"""
from __future__ import annotations

from spacelang.errors import OptionError

RECIPES = ("deit", "nasvit")
NASVIT_RANDAUGMENT = "rand-m1-n1"


def recipe_settings(recipe: str, data: str) -> dict:
    """The TrainConfig fields ``recipe`` sets for dataset ``data`` (on top of the dataset's defaults)."""
    if recipe not in RECIPES:
        raise OptionError(f"recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    if recipe == "deit":
        return {}
    out = {"weight_decay": 0.0, "drop_path": 0.0, "mixup": 0.0, "cutmix": 0.0}
    if data == "digits":
        out["shift"] = 1
    elif data == "synthetic":
        out["shift"] = 0
    else:
        out["auto_augment"] = NASVIT_RANDAUGMENT
    return out


__all__ = ["RECIPES", "NASVIT_RANDAUGMENT", "recipe_settings"]
