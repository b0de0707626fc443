"""Datasets: digits splits, synthetic data, ImageFolder through timm, deterministic loaders."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from spacelang.compiler.data import load_data  # noqa: E402
from spacelang.errors import DataError  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", (1, 16, 16), 10)


def test_digits_splits(digits):
    n = [len(digits.train), len(digits.val), len(digits.test)]
    assert sum(n) == 1797 and n == [1257, 270, 270]
    x, y = digits.train.tensors
    assert x.shape == (1257, 1, 16, 16) and x.dtype == torch.float32
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-2  # normalised with train statistics
    for split in (digits.train, digits.val, digits.test):  # stratified: every class in every split
        assert set(split.tensors[1].tolist()) == set(range(10))
    # disjoint splits: no test image equals a train image
    flat_tr = {tuple(r) for r in digits.train.tensors[0].flatten(1)[:, ::7].tolist()}
    assert not any(tuple(r) in flat_tr for r in digits.test.tensors[0].flatten(1)[:, ::7].tolist())


def test_digits_split_is_fixed_and_channels_repeat(digits):
    again = load_data("digits", (3, 16, 16), 10)
    assert torch.equal(again.test.tensors[1], digits.test.tensors[1])
    x = again.train.tensors[0]
    assert x.shape[1] == 3 and torch.equal(x[:, 0], x[:, 2])


def test_train_loader_order_depends_on_seed_and_epoch_only(digits):
    def labels(seed, epoch):
        return torch.cat([y for _, y in digits.train_loader(64, seed, epoch)])
    assert torch.equal(labels(0, 3), labels(0, 3))
    assert not torch.equal(labels(0, 3), labels(0, 4))
    assert not torch.equal(labels(1, 3), labels(0, 3))
    state = torch.get_rng_state()
    list(digits.eval_loader("val"))
    list(digits.train_loader(64, 0, 0))
    assert torch.equal(state, torch.get_rng_state())  # loaders never touch the global RNG (drop path uses it)


def test_synthetic():
    d = load_data("synthetic", (2, 8, 8), 10)
    x, y = d.train.tensors
    assert x.shape == (64, 2, 8, 8) and d.num_classes == 4 and set(y.tolist()) == {0, 1, 2, 3}


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset"):
        load_data("no/such/folder", (1, 8, 8), 10)


def test_fewer_classes_than_the_head_warns_more_is_an_error():
    said = []
    load_data("digits", (1, 8, 8), 12, warn=said.append)
    assert said and "10 classes" in said[0] and "12" in said[0] and "2 outputs are never trained" in said[0]
    said.clear()
    load_data("digits", (1, 8, 8), 10, warn=said.append)
    assert not said
    with pytest.raises(DataError, match="10 classes but the space's head has 5"):
        load_data("digits", (1, 8, 8), 5)


def _image_folder(root, classes=("cat", "dog"), per_class=6, size=20, val_classes=None):
    from PIL import Image
    import numpy as np
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", 2)):
        for ci, c in enumerate(classes if split == "train" or val_classes is None else val_classes):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                arr = (rng.random((size, size, 3)) * 80 + 150 * ci).astype("uint8")
                Image.fromarray(arr).save(d / f"{i}.png")
    return str(root)


@pytest.mark.parametrize("channels", [3, 1])
def test_image_folder_through_timm(tmp_path, channels):
    root = _image_folder(tmp_path / "imgs")
    d = load_data(root, (channels, 16, 16), 10)
    assert d.num_classes == 2 and len(d.test) == 4
    assert len(d.train) + len(d.val) == 12 and len(d.val) >= 2   # search split held out of train/
    x, y = next(iter(d.train_loader(4, 0, 0)))
    assert x.shape == (4, channels, 16, 16) and y.dtype == torch.long
    xs, ys = zip(*d.eval_loader("test", 8))
    assert xs[0].shape == (4, channels, 16, 16) and sorted(ys[0].tolist()) == [0, 0, 1, 1]
    a = [y.tolist() for _, y in d.train_loader(4, 0, 1)]
    b = [y.tolist() for _, y in d.train_loader(4, 0, 1)]
    assert a == b


def test_image_folder_search_subfolder(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    import shutil
    shutil.copytree(tmp_path / "imgs" / "val", tmp_path / "imgs" / "search")
    d = load_data(root, (3, 16, 16), 10)
    assert len(d.train) == 12 and len(d.val) == 4 and d.info["search_split"] == "search/"


def test_image_folder_needs_train_and_val(tmp_path):
    (tmp_path / "x" / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="val/"):
        load_data(str(tmp_path / "x"), (3, 16, 16), 10)


def test_image_folder_with_empty_train_is_a_data_error(tmp_path):
    (tmp_path / "x" / "train").mkdir(parents=True)
    (tmp_path / "x" / "val" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="train/ holds no images") as e:
        load_data(str(tmp_path / "x"), (3, 16, 16), 10)
    assert e.value.render().startswith(str(tmp_path / "x") + ": error:")


def test_image_folder_class_index_comes_from_train(tmp_path):
    # val/ lacks "bird": its "cat" and "dog" keep train's indices 1 and 2 (not 0 and 1)
    root = _image_folder(tmp_path / "imgs", classes=("bird", "cat", "dog"), val_classes=("cat", "dog"))
    said = []
    d = load_data(root, (3, 16, 16), 3, warn=said.append)
    assert d.num_classes == 3 and d.info["classes"] == ["bird", "cat", "dog"] and not said
    labels = sorted(int(y) for _, y in d.eval_loader("test", 8).dataset)
    assert labels == [1, 1, 2, 2]


def test_image_folder_refuses_a_class_train_lacks(tmp_path):
    root = _image_folder(tmp_path / "imgs", classes=("a", "b"), val_classes=("a", "c"))
    with pytest.raises(DataError, match=r"val/ has 1 class\(es\) that train/ lacks: c"):
        load_data(root, (3, 16, 16), 10)


def test_train_on_an_empty_image_folder_is_one_line(tmp_path, capsys):
    from spacelang.cli import main
    (tmp_path / "x" / "train").mkdir(parents=True)
    (tmp_path / "x" / "val" / "a").mkdir(parents=True)
    space = tmp_path / "s.space"
    space.write_text("space s\ninput image 8 channels 3\nclasses 4\nstem patch_embed { patch 2 }\n"
                     "stage s1 { dim 8  block transformer { heads 1  head_dim 4  mlp_ratio 1 } }\n"
                     "head linear { pool avg }\n")
    code = main(["train", str(space), "--data", str(tmp_path / "x"), "-o", str(tmp_path / "run"), "--epochs", "1",
                 "--no-progress", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "train/ holds no images" in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if "error" in ln]) == 1
