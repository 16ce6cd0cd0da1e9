"""CIFAR data: where it comes from, checked on load, kept in memory as uint8.

Resolution order for a split (first hit wins):
1. ``data_dir`` (``--data-dir``) or the ``MI_BENCH_DATA`` environment variable: a folder with
   ``train.npz``/``test.npz`` (optionally inside a ``cifar10``/``cifar100`` subfolder) or the
   official torchvision layout (``cifar-10-batches-py`` / ``cifar-100-python``);
2. the torchvision root (``MI_BENCH_TORCHVISION_ROOT``, default ``~/.cache/mi-bench/torchvision``),
   downloaded there only when the caller passes ``download=True``;
3. the CIFAR-10 sample embedded in the package (1,000 test and 1,000 training images).

Images are returned as float tensors in [0, 1]; normalization lives inside the models, so eps is
always in pixel units, as AutoAttack and RobustBench assume.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mi_bench.errors import UserError

DATASETS = {"cifar10": 10, "cifar100": 100}
SPLITS = ("train", "test")
SAMPLE_FILE = "cifar10_sample.npz"
TORCHVISION_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_warned_sample = False
DOWNLOAD_TIMEOUT_S = 60  # seconds without an answer before a download gives up


@dataclass
class Split:
    """One split held in memory: uint8 NCHW images, int64 labels, and where they came from."""

    images: torch.Tensor  # uint8, (N, 3, 32, 32)
    labels: torch.Tensor  # int64, (N,)
    class_names: list[str]
    dataset: str
    split: str
    source: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return DATASETS[self.dataset]

    def float_images(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Images[start:stop] as contiguous float32 in [0, 1]."""
        return self.images[start:stop].float().div_(255.0).contiguous()

    def head(self, n: int) -> Split:
        """The first n examples (RobustBench evaluates the first n test images)."""
        if n < 1:
            raise UserError(f"asked for {n} examples; the number of examples must be at least 1")
        if n > len(self):
            raise UserError(f"asked for {n} examples but {self.source} has only {len(self)}")
        return Split(self.images[:n], self.labels[:n], self.class_names, self.dataset,
                     self.split, self.source)

    def sha256(self) -> str:
        """Hash of the pixel and label bytes: the model card records which data trained it."""
        h = hashlib.sha256()
        h.update(self.images.numpy().tobytes())
        h.update(self.labels.numpy().tobytes())
        return h.hexdigest()


def _check_arrays(images: np.ndarray, labels: np.ndarray, num_classes: int, where: str) -> None:
    expected = f"uint8 images (N, 32, 32, 3) and N integer labels in [0, {num_classes})"
    if images.ndim >= 1 and images.shape[0] == 0:
        raise UserError(f"{where}: holds no images; expected {expected} with N >= 1")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise UserError(f"{where}: images are {images.dtype} {images.shape}; expected {expected}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise UserError(f"{where}: {labels.shape} labels for {images.shape[0]} images; "
                        f"expected {expected}")
    if not np.issubdtype(labels.dtype, np.integer) or (
        labels.size and (labels.min() < 0 or labels.max() >= num_classes)
    ):
        raise UserError(f"{where}: labels outside [0, {num_classes}); expected {expected}")


def _to_split(images: np.ndarray, labels: np.ndarray, class_names, dataset: str, split: str,
              source: str) -> Split:
    _check_arrays(images, labels, DATASETS[dataset], source)
    t = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return Split(t, torch.from_numpy(labels.astype(np.int64)),
                 [str(c) for c in class_names], dataset, split, source)


def _load_npz(path: Path, dataset: str, split: str) -> Split:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"images", "labels"} - set(z.files)
            if missing:
                raise UserError(f"{path}: missing keys {sorted(missing)}; expected 'images', "
                                "'labels' (and optionally 'class_names')")
            names = z["class_names"] if "class_names" in z.files else [
                str(i) for i in range(DATASETS[dataset])]
            return _to_split(z["images"], z["labels"], names, dataset, split, str(path))
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip errors, truncated files, pickled objects
        raise UserError(f"{path}: not a readable .npz archive ({exc.__class__.__name__}: "
                        f"{exc}); expected keys 'images' and 'labels'") from None


def _torchvision_class(dataset: str):
    """torchvision's CIFAR class, reading an existing folder without re-checking md5 sums.

    The md5 check would refuse any re-pickled copy in the official layout (a subset, or the
    small files our tests generate); the archive's own md5 is still checked on download.
    """
    from torchvision import datasets

    base = datasets.CIFAR10 if dataset == "cifar10" else datasets.CIFAR100

    class _Reader(base):
        train_list = [[name, None] for name, _ in base.train_list]  # noqa: RUF012
        test_list = [[name, None] for name, _ in base.test_list]  # noqa: RUF012
        meta = {**base.meta, "md5": None}  # noqa: RUF012

    return _Reader


def _load_torchvision(root: Path, dataset: str, split: str, download: bool) -> Split:
    cls = _torchvision_class(dataset)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a server that never answers must not hang us
    try:
        ds = cls(str(root), train=(split == "train"), download=download)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - torchvision raises many kinds
        if download and isinstance(exc, OSError):  # timeouts and refused connections included
            raise UserError(f"downloading {dataset} into {root} failed ({exc.__class__.__name__}:"
                            f" {str(exc)[:120]}; no answer within {DOWNLOAD_TIMEOUT_S} s per "
                            "read); check the network or put the data in --data-dir") from None
        raise UserError(f"{root / TORCHVISION_DIRS[dataset]}: cannot read the official "
                        f"{dataset} layout ({exc.__class__.__name__}: {exc})") from None
    finally:
        socket.setdefaulttimeout(previous)
    return _to_split(np.asarray(ds.data), np.asarray(ds.targets), ds.classes, dataset, split,
                     str(root / TORCHVISION_DIRS[dataset]))


def _find_in_dir(root: Path, dataset: str, split: str) -> Split | None:
    for folder in (root, root / dataset):
        if (folder / f"{split}.npz").is_file():
            return _load_npz(folder / f"{split}.npz", dataset, split)
    if (root / TORCHVISION_DIRS[dataset]).is_dir():
        return _load_torchvision(root, dataset, split, download=False)
    return None


def torchvision_root() -> Path:
    return Path(os.environ.get("MI_BENCH_TORCHVISION_ROOT",
                               Path.home() / ".cache" / "mi-bench" / "torchvision"))


def load_sample(split: str) -> Split:
    """The embedded CIFAR-10 sample: first 1,000 test and first 1,000 training images."""
    path = Path(__file__).resolve().parent / "assets" / SAMPLE_FILE
    with np.load(path, allow_pickle=False) as z:
        return _to_split(z[f"{split}_images"], z[f"{split}_labels"], z["class_names"],
                         "cifar10", split, f"embedded CIFAR-10 sample ({split})")


_reused: dict | None = None  # see reuse_loaded_splits


@contextmanager
def reuse_loaded_splits() -> Iterator[None]:
    """Inside the block, asking for the same split again returns the first load: a sweep
    builds one run per cell, all over the same test set and partner pool."""
    global _reused
    outer, _reused = _reused, ({} if _reused is None else _reused)
    try:
        yield
    finally:
        _reused = outer


def load_split(dataset: str = "cifar10", split: str = "test", data_dir: str | Path | None = None,
               download: bool = False, allow_sample: bool = True) -> Split:
    """Load one split by the resolution order in the module docstring."""
    if _reused is not None:
        key = (dataset, split, str(data_dir or os.environ.get("MI_BENCH_DATA") or ""), download,
               allow_sample)
        if key not in _reused:
            _reused[key] = _load_split(dataset, split, data_dir, download, allow_sample)
        return _reused[key]
    return _load_split(dataset, split, data_dir, download, allow_sample)


def _load_split(dataset: str, split: str, data_dir: str | Path | None, download: bool,
                allow_sample: bool) -> Split:
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}")
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {SPLITS}")
    data_dir = data_dir or os.environ.get("MI_BENCH_DATA") or None
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise UserError(f"data directory {root} does not exist; expected a folder with "
                            f"{split}.npz or {TORCHVISION_DIRS[dataset]}/")
        found = _find_in_dir(root, dataset, split)
        if found is None:
            raise UserError(f"{root}: no {dataset} {split} split; expected {split}.npz, "
                            f"{dataset}/{split}.npz or {TORCHVISION_DIRS[dataset]}/")
        return found
    tv = torchvision_root()
    if download or (tv / TORCHVISION_DIRS[dataset]).is_dir():
        if download:
            tv.mkdir(parents=True, exist_ok=True)
        return _load_torchvision(tv, dataset, split, download=download)
    if allow_sample and dataset == "cifar10":
        global _warned_sample
        if not _warned_sample:
            print("note: no data directory given (--data-dir / MI_BENCH_DATA) and none in "
                  f"{tv}; running on the embedded CIFAR-10 sample (1,000 test, 1,000 train "
                  "images)", file=sys.stderr)
            _warned_sample = True
        return load_sample(split)
    raise UserError(f"no {dataset} data found: pass --data-dir, set MI_BENCH_DATA, or pass "
                    f"--download to fetch it into {tv}")
