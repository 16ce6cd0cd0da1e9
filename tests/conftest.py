"""Shared fixtures: tiny models and data that make tests fast; real data only via MI_BENCH_DATA."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mi_bench.data import load_sample
from mi_bench.models import create_model

REAL_DATA = os.environ.get("MI_BENCH_DATA")  # read once: the autouse fixture hides it


def real_data_dir() -> Path:
    """The full real data (CI sets MI_BENCH_DATA to ../shared/data); skip visibly without it."""
    path = REAL_DATA
    if not path or not (Path(path) / "cifar10" / "test.npz").is_file():
        pytest.skip("needs the full CIFAR-10: set MI_BENCH_DATA to a folder with cifar10/*.npz")
    return Path(path)


@pytest.fixture(autouse=True)
def _no_ambient_data(monkeypatch, tmp_path):
    """Tests choose their data explicitly: no env var or user cache leaks in."""
    monkeypatch.setenv("MI_BENCH_TORCHVISION_ROOT", str(tmp_path / "no-torchvision-root"))
    monkeypatch.delenv("MI_BENCH_DATA", raising=False)


@pytest.fixture(scope="session")
def sample_test():
    return load_sample("test")


@pytest.fixture(scope="session")
def sample_train():
    return load_sample("train")


@pytest.fixture()
def tiny_model():
    torch.manual_seed(0)
    return create_model("small-cnn", 10, width=8).eval()


def write_official_layout(root: Path, dataset: str, n_train: int = 60, n_test: int = 30,
                          seed: int = 0) -> dict:
    """Random images in torchvision's official pickle layout; returns the arrays written."""
    rng = np.random.default_rng(seed)
    k = 10 if dataset == "cifar10" else 100
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        arrays[split] = (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                         rng.integers(0, k, n))
    if dataset == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        imgs, labels = arrays["train"]
        for i, part in enumerate(np.array_split(np.arange(n_train), 5)):
            _dump(folder / f"data_batch_{i + 1}", imgs[part], labels[part], "labels")
        _dump(folder / "test_batch", *arrays["test"], "labels")
        with open(folder / "batches.meta", "wb") as f:
            pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        _dump(folder / "train", *arrays["train"], "fine_labels")
        _dump(folder / "test", *arrays["test"], "fine_labels")
        with open(folder / "meta", "wb") as f:
            pickle.dump({"fine_label_names": [f"f{i}" for i in range(100)]}, f)
    return arrays


def _dump(path: Path, images: np.ndarray, labels: np.ndarray, key: str) -> None:
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    with open(path, "wb") as f:
        pickle.dump({"data": data, key: [int(v) for v in labels]}, f)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A small CNN trained for a few seconds on the embedded sample: a real but weak model."""
    from mi_bench.train import TrainConfig, train

    path = tmp_path_factory.mktemp("ckpt") / "tiny-mixup.pt"
    cfg = TrainConfig(method="mixup", arch="small-cnn", arch_kwargs={"width": 8}, epochs=3,
                      batch_size=50, lr=0.05, seed=0)
    train(cfg, load_sample("train"), None, path, progress=False)
    return path
