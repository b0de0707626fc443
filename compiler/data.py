"""Datasets for supernet training and search: three splits, deterministic loaders.

Every dataset comes as a :class:`Data` with three splits — ``train`` (supernet weights),
``val`` (the *search-validation* split the search ranks subnets on) and ``test`` (reported once,
for the chosen subnet; never used to choose) — already shaped for the space's input
``(channels, resolution, resolution)``.

Sources (``load_data(name, ...)``):

- ``digits``: scikit-learn's bundled 8×8 digits (1,797 images, 10 classes), split 70/15/15
  stratified with a fixed seed, scaled to [0, 1], resized bilinearly to the space's resolution,
  repeated to its channel count and normalised with the train split's mean and std.
- ``synthetic``: class prototypes plus noise; learnable in a few steps, for fast tests.
- any other value: the path of an ImageFolder tree with ``train/`` and ``val/`` sub-folders, read
  by timm's ``create_dataset`` with timm's transforms.  ``val/`` is the test split (as AutoFormer
  reserves ImageNet's validation set for testing); the search-validation split is a fixed,
  stratified hold-out of ``train/`` (AutoFormer subsamples its search set from the training
  images), excluded from training unless a ``search/`` sub-folder exists, which is then used.
  Class indices come from ``train/`` alone (sorted folder names) and hold for every split; a split
  with a class that ``train/`` lacks is refused, naming the class.

A dataset with more classes than the space's head is refused (:class:`DataError`); one with fewer
is accepted with a warning (the extra outputs of the head are never trained).

Loaders are deterministic: the training order of epoch ``e`` comes from a generator seeded with
``(seed, e)``, so a resumed run sees exactly the batches an uninterrupted run would, and the
global torch RNG (drop path) is never consumed by shuffling.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from spacelang.errors import DataError

from .distributed import SINGLE, Dist, shard_batches

SPLIT_SEED = 0  # the digits / hold-out split never changes with the training seed: results stay comparable


@dataclass
class Data:
    """Three splits of one dataset, shaped for one input size."""

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, int, int]
    in_memory: bool = True            # tensors already normalised; no per-sample transform cost
    num_workers: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pin_memory(self) -> bool:
        """Pinned host memory for loaders that feed a GPU from worker processes (ImageFolder)."""
        return not self.in_memory

    def train_loader(self, batch_size: int, seed: int, epoch: int, drop_last: bool = True,
                     dist: Dist = SINGLE) -> DataLoader:
        """Shuffled training batches of ``epoch``; the order depends on ``(seed, epoch)`` only.

        Under torchrun each process gets its contiguous slice of every global batch of
        ``world × batch_size`` (:func:`~spacelang.compiler.distributed.shard_batches`), so the
        ranks' batches at a step together are one process's batch of that size."""
        g = torch.Generator()
        g.manual_seed(_mix(seed, epoch))
        n = len(self.train)
        # a training batch larger than the data would give no batch at all with drop_last
        drop_last = drop_last and n >= batch_size * dist.world
        batches = shard_batches(n, batch_size, g, dist, drop_last)
        # the loader's own generator seeds its workers: without one it would draw from the global
        # torch RNG, which drop path uses too
        return DataLoader(self.train, batch_sampler=batches, num_workers=self.num_workers, generator=g,
                          persistent_workers=False, pin_memory=self.pin_memory and torch.cuda.is_available())

    def eval_loader(self, split: str, batch_size: int = 256) -> DataLoader:
        """Batches of ``split`` (``"val"`` or ``"test"``; also ``"train"``) in a fixed order."""
        ds = {"train": self.train, "val": self.val, "test": self.test}[split]
        # an own generator: without one, each pass would draw its worker seed from the global torch RNG,
        # which drop path uses too — evaluating would then shift training's random stream
        return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=self.num_workers,
                          generator=torch.Generator().manual_seed(0))

    def describe(self) -> str:
        c, h, w = self.input_shape
        return (f"{self.name}: {len(self.train)} train / {len(self.val)} search-val / {len(self.test)} test, "
                f"{self.num_classes} classes, input {c}×{h}×{w}")


def _mix(seed: int, epoch: int) -> int:
    """A 63-bit seed for (seed, epoch) pairs that do not collide for small values."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 12345) % (2 ** 63)


# ---------------------------------------------------------------------------------------------- shaping
def _shape_images(x: torch.Tensor, channels: int, resolution: int) -> torch.Tensor:
    """(N, C0, H, W) floats → (N, channels, resolution, resolution), bilinear, channels repeated."""
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    if x.shape[1] != channels:
        if x.shape[1] != 1:
            raise DataError(f"cannot map {x.shape[1]} image channels to {channels}")
        x = x.repeat(1, channels, 1, 1)
    return x.contiguous()


def _normalise(train: torch.Tensor, *others: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], dict]:
    """Standardise every split with the train split's per-channel mean and std; also returns
    them (``{"mean": [...], "std": [...]}``) so an exported subnet can state its preprocessing."""
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    stats = {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}
    return tuple((t - mean) / std for t in (train, *others)), stats


# ---------------------------------------------------------------------------------------------- digits
def digits(channels: int = 1, resolution: int = 32, split=(0.70, 0.15, 0.15)) -> Data:
    """scikit-learn's digits, split 70/15/15 (stratified, fixed seed) and shaped for the space."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values are 0..16
    y = torch.tensor(bunch.target, dtype=torch.long)
    idx = list(range(len(y)))
    tr, rest = train_test_split(idx, train_size=split[0], stratify=bunch.target, random_state=SPLIT_SEED)
    va, te = train_test_split(rest, test_size=split[2] / (split[1] + split[2]),
                              stratify=bunch.target[rest], random_state=SPLIT_SEED)
    parts = [_shape_images(x[i], channels, resolution) for i in (tr, va, te)]
    (xtr, xva, xte), stats = _normalise(*parts)
    info = {**stats, "pixel_scale": "pixel values 0..16 divided by 16, resized bilinearly, channels repeated"}
    return Data("digits", TensorDataset(xtr, y[tr]), TensorDataset(xva, y[va]), TensorDataset(xte, y[te]),
                10, (channels, resolution, resolution), info=info)


# ---------------------------------------------------------------------------------------------- synthetic
def synthetic(channels: int = 1, resolution: int = 8, num_classes: int = 4, n_train: int = 64,
              n_val: int = 32, n_test: int = 32, seed: int = 0, noise: float = 0.3) -> Data:
    """Smooth random class prototypes plus Gaussian noise: separable, learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(num_classes, channels, 4, 4, generator=g)
    protos = F.interpolate(low, size=(resolution, resolution), mode="bilinear", align_corners=False)
    # a per-class brightness too: average-pooled heads see it from the first step
    protos = protos + torch.randn(num_classes, channels, 1, 1, generator=g)

    def make(n: int) -> TensorDataset:
        y = torch.arange(n) % num_classes
        x = protos[y] + noise * torch.randn(n, channels, resolution, resolution, generator=g)
        return TensorDataset(x.contiguous(), y)

    return Data("synthetic", make(n_train), make(n_val), make(n_test), num_classes,
                (channels, resolution, resolution))


# ---------------------------------------------------------------------------------------------- image folders
def image_folder(root: str, channels: int = 3, resolution: int = 224, val_fraction: float = 0.1,
                 augment: bool = True, num_workers: int = 0, max_val: int = 10_000,
                 auto_augment: str | None = None) -> Data:
    """An ImageFolder tree (``train/``, ``val/``, optional ``search/``) read with timm.

    Images go through timm's ``create_transform`` (random-resized crop, flip and colour jitter for
    training when ``augment``; resize and centre crop otherwise) with ImageNet mean/std for RGB
    and 0.5/0.5 for grayscale (``channels == 1``).
    """
    from timm.data import create_dataset, create_transform
    from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    for sub in ("train", "val"):
        if not os.path.isdir(os.path.join(root, sub)):
            raise DataError(f"expected an ImageFolder tree with train/ and val/ sub-folders (missing {sub}/)",
                            filename=root)
    if channels == 3:
        mode, mean, std = "RGB", IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    elif channels == 1:
        mode, mean, std = "L", (0.5,), (0.5,)
    else:
        raise DataError(f"image folders give 1 or 3 channels, the space wants {channels}", filename=root)
    kw = dict(input_size=(channels, resolution, resolution), mean=mean, std=std, interpolation="bilinear")
    t_eval = create_transform(is_training=False, crop_pct=1.0, **kw)
    # timm's training transform also jitters colour; a grayscale image cannot take hue jitter
    # timm's auto-augmentation policy (e.g. NASViT's weak `rand-m1-n1`) replaces the colour jitter
    jitter = 0.4 if channels == 3 and not auto_augment else 0.0
    t_train = create_transform(is_training=True, color_jitter=jitter, auto_augment=auto_augment, **kw) if augment \
        else t_eval

    def folder(sub: str, transform: Callable, class_map: dict | None = None):
        if not _has_images(os.path.join(root, sub)):
            raise DataError(f"{sub}/ holds no images (expected one sub-folder of images per class)",
                            filename=root)
        ds = create_dataset("", root=os.path.join(root, sub), split=sub, input_img_mode=mode,
                            class_map=class_map or "")
        ds.transform = transform
        return ds

    train_ds = folder("train", t_train)
    class_to_idx = dict(train_ds.reader.class_to_idx)  # one class index for every split: train/'s

    def indexed_like_train(sub: str):
        extra = sorted(set(folder(sub, t_eval).reader.class_to_idx) - set(class_to_idx))
        if extra:
            raise DataError(f"{sub}/ has {len(extra)} class(es) that train/ lacks: {', '.join(extra[:10])}"
                            + (", …" if len(extra) > 10 else ""), filename=root,
                            hint="every class of val/ (and search/) needs a train/ folder of the same name")
        return folder(sub, t_eval, class_to_idx)

    test_ds = indexed_like_train("val")
    if os.path.isdir(os.path.join(root, "search")):
        val_ds = indexed_like_train("search")
        info = {"search_split": "search/"}
    else:
        from sklearn.model_selection import train_test_split
        targets = _targets(train_ds)
        idx = list(range(len(targets)))
        n_val = max(len(class_to_idx), min(max_val, int(round(val_fraction * len(idx)))))
        stratify = targets if min(targets.count(c) for c in set(targets)) >= 2 else None
        tr, va = train_test_split(idx, test_size=n_val, stratify=stratify, random_state=SPLIT_SEED)
        val_ds = Subset(folder("train", t_eval), sorted(va))
        train_ds = Subset(train_ds, sorted(tr))
        info = {"search_split": f"{len(va)} images held out of train/"}
    info["classes"] = sorted(class_to_idx, key=class_to_idx.get)
    return Data(os.path.abspath(root), train_ds, val_ds, test_ds, len(class_to_idx),
                (channels, resolution, resolution), in_memory=False, num_workers=num_workers, info=info)


def _has_images(folder: str) -> bool:
    """Whether ``folder`` holds (at any depth) a file timm reads as an image."""
    from timm.data.readers.img_extensions import get_img_extensions
    extensions = get_img_extensions(as_set=True)
    return any(os.path.splitext(f)[1].lower() in extensions for _, _, files in os.walk(folder, followlinks=True)
               for f in files)


def _targets(ds) -> list[int]:
    return [int(t) for _, t in ds.reader.samples]


# ---------------------------------------------------------------------------------------------- dispatch
def load_data(name: str, input_shape: tuple[int, int, int], num_classes: int | None = None,
              warn: Callable[[str], None] | None = None, **kw) -> Data:
    """The dataset called ``name`` (``digits``, ``synthetic`` or an ImageFolder path) shaped as ``input_shape``.

    ``num_classes`` is the space's head: a dataset with more classes is a :class:`DataError`, one
    with fewer is reported through ``warn`` (default: a ``spacelang: warning:`` line on stderr).
    """
    channels, resolution, _ = input_shape
    if name == "digits":
        data = digits(channels, resolution)
    elif name == "synthetic":
        data = synthetic(channels, resolution, num_classes=min(num_classes or 4, 4), **kw)
    elif os.path.isdir(name):
        data = image_folder(name, channels, resolution, **kw)
    else:
        raise DataError(f"unknown dataset {name!r}: use digits, synthetic or the path of an image folder")
    if num_classes is not None and data.num_classes > num_classes:
        raise DataError(f"dataset {data.name} has {data.num_classes} classes but the space's head has {num_classes}",
                        hint="raise the space's `classes` to the dataset's number of classes")
    if num_classes is not None and data.num_classes < num_classes:
        (warn or _warn)(f"dataset {data.name} has {data.num_classes} classes but the space's head has "
                        f"{num_classes}: {num_classes - data.num_classes} outputs are never trained")
    return data


def _warn(message: str) -> None:
    print(f"spacelang: warning: {message}", file=sys.stderr)

