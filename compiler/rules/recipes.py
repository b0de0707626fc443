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


def apply_auto_augment(data, policy: str) -> None:
    """Put timm's auto-augmentation ``policy`` (e.g. ``rand-m1-n1``) into the training transform of
    an image-folder dataset, where timm's ``create_transform`` would: after the crop and flip,
    before the tensor conversion, in place of the colour jitter."""
    from timm.data.auto_augment import rand_augment_transform
    if data.in_memory:
        raise OptionError(f"auto-augmentation {policy!r} needs images from an image folder; dataset "
                          f"{data.name} is held as tensors", hint="use --recipe nasvit without --auto-augment")
    ds = getattr(data.train, "dataset", data.train)  # a Subset (hold-out split) or the folder itself
    ops = list(ds.transform.transforms)
    at = next((i for i, t in enumerate(ops) if "ToTensor" in type(t).__name__), len(ops))
    size = data.input_shape[-1]
    augment = rand_augment_transform(policy, {"translate_const": int(size * 0.45), "img_mean": (124, 116, 104)})
    ops = [t for t in ops[:at] if type(t).__name__ != "ColorJitter"] + [augment] + ops[at:]
    ds.transform.transforms = ops


__all__ = ["RECIPES", "NASVIT_RANDAUGMENT", "recipe_settings", "apply_auto_augment"]
