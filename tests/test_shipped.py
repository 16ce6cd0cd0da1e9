"""The shipped checkpoints are what their cards say."""

from pathlib import Path

import pytest
from conftest import real_data_dir

from mi_bench.data import load_sample, load_split
from mi_bench.models.checkpoint import load_checkpoint
from mi_bench.train import accuracy

CKPT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
SHIPPED = sorted(p for p in CKPT_DIR.glob("*.pt") if not p.name.endswith(".resume.pt"))
FINISHED = [p for p in SHIPPED if load_checkpoint(p)[1].get("clean_acc") is not None]


def test_there_is_a_finished_mixup_checkpoint():
    methods = {load_checkpoint(p)[1]["method"] for p in FINISHED}
    assert "mixup" in methods


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_card_is_complete_and_weights_are_small(path):
    _, card = load_checkpoint(path)
    for key in ("arch", "num_classes", "dataset", "mean", "std", "method", "settings", "seed",
                "epochs", "data_sha256", "command", "history"):
        assert key in card, key
    assert card["command"].startswith("mi-bench train")
    assert path.stat().st_size < 10 * 2**20


@pytest.mark.parametrize("path", FINISHED, ids=[p.stem for p in FINISHED])
def test_sample_accuracy_is_plausible(path):
    model, card = load_checkpoint(path)
    assert accuracy(model, load_sample("test")) > card["clean_acc"] - 0.05


@pytest.mark.parametrize("path", FINISHED, ids=[p.stem for p in FINISHED])
def test_card_accuracy_reproduces_on_the_full_test_set(path):
    root = real_data_dir()
    model, card = load_checkpoint(path)
    test = load_split("cifar10", "test", root)
    assert card["clean_acc_n"] == len(test) == 10_000
    assert accuracy(model, test) == pytest.approx(card["clean_acc"], abs=1e-4)
    assert card["data_sha256"] == load_split("cifar10", "train", root).sha256()
