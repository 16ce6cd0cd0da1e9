import hashlib

import numpy as np
import pytest
import torch
from conftest import real_data_dir, write_official_layout

from mi_bench.data import load_sample, load_split
from mi_bench.errors import UserError


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_official_layout_loads(tmp_path, dataset):
    arrays = write_official_layout(tmp_path, dataset)
    for split in ("train", "test"):
        s = load_split(dataset, split, data_dir=tmp_path)
        images, labels = arrays[split]
        assert s.images.dtype == torch.uint8 and s.images.shape == (len(labels), 3, 32, 32)
        assert np.array_equal(s.images.permute(0, 2, 3, 1).numpy(), images)
        assert np.array_equal(s.labels.numpy(), labels)
        assert s.num_classes == (10 if dataset == "cifar10" else 100)
        x = s.float_images(0, 4)
        assert x.dtype == torch.float32 and 0.0 <= x.min() and x.max() <= 1.0


def test_npz_folder_and_env_var(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 12)
    (tmp_path / "cifar10").mkdir()
    np.savez(tmp_path / "cifar10" / "test.npz", images=images, labels=labels,
             class_names=np.array([f"c{i}" for i in range(10)]))
    monkeypatch.setenv("MI_BENCH_DATA", str(tmp_path))
    s = load_split("cifar10", "test")
    assert np.array_equal(s.images.permute(0, 2, 3, 1).numpy(), images)
    assert s.class_names[3] == "c3" and "test.npz" in s.source
    with pytest.raises(UserError, match="no cifar10 train split"):
        load_split("cifar10", "train")


def test_sample_is_used_without_data(capsys):
    s = load_split("cifar10", "test")
    assert len(s) == 1000 and "sample" in s.source


def test_cifar100_without_data_is_an_error():
    with pytest.raises(UserError, match="no cifar100 data found"):
        load_split("cifar100", "test")


def test_embedded_sample_is_the_real_data():
    root = real_data_dir()
    for split in ("test", "train"):
        sample = load_sample(split)
        with np.load(root / "cifar10" / f"{split}.npz") as z:
            real_images, real_labels = z["images"][:1000], z["labels"][:1000]
        assert hashlib.sha256(sample.images.permute(0, 2, 3, 1).contiguous().numpy().tobytes()
                              ).hexdigest() == hashlib.sha256(real_images.tobytes()).hexdigest()
        assert np.array_equal(sample.labels.numpy(), real_labels)
    assert load_sample("test").class_names[0] == "airplane"


@pytest.mark.parametrize("kind,match", [
    ("missing_dir", "does not exist"),
    ("empty_dir", "no cifar10 test split"),
    ("not_zip", "not a readable .npz"),
    ("missing_key", "missing keys"),
    ("bad_dtype", "expected uint8 images"),
    ("bad_labels", "labels outside"),
    ("length_mismatch", "labels for 4 images"),
])
def test_bad_data_gives_one_line_error(tmp_path, kind, match):
    root = tmp_path / "data"
    if kind != "missing_dir":
        root.mkdir()
    images = np.zeros((4, 32, 32, 3), np.uint8)
    labels = np.zeros(4, np.int64)
    if kind == "not_zip":
        (root / "test.npz").write_bytes(b"definitely not a zip")
    elif kind == "missing_key":
        np.savez(root / "test.npz", images=images)
    elif kind == "bad_dtype":
        np.savez(root / "test.npz", images=images.astype(np.float32), labels=labels)
    elif kind == "bad_labels":
        np.savez(root / "test.npz", images=images, labels=labels + 10)
    elif kind == "length_mismatch":
        np.savez(root / "test.npz", images=images, labels=np.zeros(3, np.int64))
    with pytest.raises(UserError, match=match) as err:
        load_split("cifar10", "test", data_dir=root)
    assert "\n" not in str(err.value) and str(root) in str(err.value)


def test_bad_names():
    with pytest.raises(UserError, match="unknown dataset"):
        load_split("mnist", "test")
    with pytest.raises(UserError, match="unknown split"):
        load_split("cifar10", "val")
