import pytest
import torch
import torch.nn.functional as F

from mi_bench.data import Split
from mi_bench.defenses.mi import MIConfig, MixupInference, PartnerPool, reference_mi_loop
from mi_bench.errors import UserError


def make_mi(model, pool, seed=0, output="prob", **cfg):
    return MixupInference(model, pool, MIConfig(**cfg), torch.Generator().manual_seed(seed),
                          max_batch=64, output=output)


def test_lambda_one_gives_back_the_base_model(tiny_model, sample_train, sample_test):
    x = sample_test.float_images(0, 16)
    for mode in ("pl", "ol"):
        mi = make_mi(tiny_model, sample_train, mode=mode, lam=1.0, n_samples=4)
        with torch.no_grad():
            assert torch.allclose(mi(x), F.softmax(tiny_model(x), 1), atol=1e-6)


def test_pl_partners_carry_the_prediction_and_ol_never(tiny_model, sample_train, sample_test):
    x = sample_test.float_images(0, 40)
    pool_labels = sample_train.labels
    for mode in ("pl", "ol"):
        mi = make_mi(tiny_model, sample_train, mode=mode, n_samples=30)
        with torch.no_grad():
            mi(x)
        y_hat = mi.last_draw["y_hat"][:, None]
        idx = mi.last_draw[f"{mode}_index"]
        assert idx.shape == (40, 30)
        assert torch.equal(pool_labels[idx], mi.last_draw[f"{mode}_label"])
        if mode == "pl":
            assert (pool_labels[idx] == y_hat).all()
        else:
            assert (pool_labels[idx] != y_hat).all()
            assert len(pool_labels[idx].unique()) >= 5  # drawn across the other labels


def test_batched_equals_per_sample_loop(tiny_model, sample_train, sample_test):
    x = sample_test.float_images(0, 6)
    mi = make_mi(tiny_model, sample_train, mode="ol", n_samples=7, lam=0.4)
    with torch.no_grad():
        batched = mi(x)
        loop = reference_mi_loop(mi, x, mi.last_draw["ol_index"], 0.4)
    assert torch.allclose(batched, loop, atol=1e-5)
    assert mi.base_forwards == 6 + 6 * 7


def test_gradients_reach_the_input(tiny_model, sample_train, sample_test):
    x = sample_test.float_images(0, 4).requires_grad_(True)
    mi = make_mi(tiny_model, sample_train, output="log", n_samples=5)
    mi(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_seed_reproduces_and_calls_draw_fresh_partners(tiny_model, sample_train, sample_test):
    x = sample_test.float_images(0, 8)
    a, b = make_mi(tiny_model, sample_train, seed=3), make_mi(tiny_model, sample_train, seed=3)
    with torch.no_grad():
        first_a, first_b = a(x), b(x)
        idx_first = a.last_draw["ol_index"].clone()
        second_a = a(x)
    assert torch.equal(first_a, first_b)
    assert not torch.equal(idx_first, a.last_draw["ol_index"])
    assert not torch.allclose(first_a, second_a)


def test_combined_picks_pl_or_ol_by_the_gap(tiny_model, sample_train, sample_test):
    x = sample_test.float_images(0, 32)
    for threshold, expect_detected in ((-1.0, True), (2.0, False)):
        mi = make_mi(tiny_model, sample_train, mode="combined", threshold=threshold)
        with torch.no_grad():
            out = mi(x)
        assert bool(mi.last_draw["detected"].all()) is expect_detected
        tag = "ol" if expect_detected else "pl"
        idx, lam = mi.last_draw[f"{tag}_index"], 0.4 if expect_detected else 0.5
        with torch.no_grad():
            assert torch.allclose(out, mi.mixed_probs(x, idx, lam), atol=1e-6)
    assert mi.last_draw["pl_index"].shape == (32, 5) and mi.last_draw["ol_index"].shape == (32, 15)
    assert MIConfig(mode="combined").forwards_per_prediction() == 21


def test_max_batch_bounds_each_forward(sample_train, sample_test):
    sizes = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            sizes.append(x.shape[0])
            return torch.zeros(x.shape[0], 10)

    mi = make_mi(Spy(), sample_train, n_samples=30)
    with torch.no_grad():
        mi(sample_test.float_images(0, 10))
    assert max(sizes) <= 64 and sum(sizes) == 10 + 300


@pytest.mark.parametrize("cfg,match", [
    ({"mode": "xl"}, "unknown MI mode"),
    ({"n_samples": 0}, "at least 1"),
    ({"lam": 1.5}, r"lie in \[0, 1\]"),
    ({"pool_split": "val"}, "pool split"),
])
def test_bad_config(cfg, match):
    with pytest.raises(UserError, match=match):
        MIConfig(**cfg).validate()


def test_pool_missing_a_class_is_an_error(sample_train):
    keep = sample_train.labels != 3
    split = Split(sample_train.images[keep], sample_train.labels[keep], sample_train.class_names,
                  "cifar10", "train", "no cats")
    with pytest.raises(UserError, match=r"no image of class\(es\) \[3\]"):
        PartnerPool(split)
