"""The defense registry and the MI paper's randomized baselines as registered defenses."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from mi_bench import cli
from mi_bench.defenses import defense_names, get_defense
from mi_bench.defenses.registry import Defense, register
from mi_bench.errors import UserError

BASELINES = ("gaussian-noise", "uniform-noise", "rotation", "xie", "guo")
# the official attack_resnet_baselines.py settings, noise halved for [0, 1] images
OFFICIAL = {"gaussian-noise": {"sigma": 0.025, "draws": 30},
            "uniform-noise": {"sigma": 0.025, "draws": 30},
            "rotation": {"max_degrees": 10.0, "draws": 30},
            "xie": {"min_size": 20, "max_size": 28, "draws": 30},
            "guo": {"min_size": 20, "max_size": 28, "draws": 30}}


def test_registry_lists_every_defense_with_official_defaults():
    assert {"none", "mi-pl", "mi-ol", "mi-combined", *BASELINES} <= set(defense_names())
    for name, settings in OFFICIAL.items():
        d = get_defense(name)
        assert d.randomized and d.settings() == settings and d.passes_per_prediction() == 30
    assert get_defense("gaussian").name == "gaussian-noise"  # alias
    assert not get_defense("none").randomized and get_defense("none").passes_per_prediction() == 1


def test_mi_settings_carry_the_pool_and_iat_lambda():
    mi = get_defense("mi-ol", {"method": "iat"}, {"n_samples": "4"})
    s = mi.settings()
    assert s["lam"] == 0.6 and s["n_samples"] == 4 and s["pool"].startswith("cifar10/train:")
    assert mi.passes_per_prediction() == 5 and mi.passes_per_call(2) == 3


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_draws_fresh_seeded_batched_and_differentiable(name, tiny_model, sample_test):
    d = get_defense(name, {}, {"draws": "3"})
    x = sample_test.float_images(0, 4)
    m1, m2 = d.wrap(tiny_model, seed=5), d.wrap(tiny_model, seed=5)
    a, b = m1(x), m1(x)
    assert not torch.allclose(a, b), "every call draws fresh transforms"
    assert torch.allclose(a, m2(x)), "the same seed replays the draws"
    assert torch.allclose(a.exp().sum(1), torch.ones(4), atol=1e-5), "log of a mean softmax"
    # batched equals a per-image loop over the same transformed images
    g = torch.Generator().manual_seed(5)
    xs = x[:, None].expand(4, 3, *x.shape[1:]).reshape(12, *x.shape[1:])
    t = type(d).apply(xs, d.config, g)
    loop = torch.stack([F.softmax(tiny_model(t[3 * i:3 * i + 3]), 1).mean(0) for i in range(4)])
    assert torch.allclose(a, loop.log(), atol=1e-5)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(m1(xg)[:, 0].sum(), xg)
    assert grad.abs().sum() > 0, "the attack needs gradients through the transform"


@pytest.mark.parametrize("name,opts,match", [
    ("gaussian-noise", {"sigma": "-0.1"}, "noise scale"),
    ("uniform-noise", {"sigma": "inf"}, "noise scale"),
    ("rotation", {"max_degrees": "181"}, "180"),
    ("xie", {"min_size": "0"}, "crop sizes"),
    ("guo", {"min_size": "29", "max_size": "28"}, "crop sizes"),
    ("xie", {"max_size": "33"}, "crop sizes"),
    ("rotation", {"draws": "0"}, "draws"),
    ("gaussian-noise", {"radius": "1"}, "no option 'radius'"),
    ("guo", {"min_size": "2.5"}, "expected int"),
    ("mi-ol", {"mode": "pl"}, "mode comes from the defense name"),
])
def test_settings_are_checked(name, opts, match):
    with pytest.raises(UserError, match=match):
        get_defense(name, {}, opts)


def test_a_new_defense_is_one_registered_class(tiny_model, sample_test):
    """What the README promises: register a class, and the runner can use it by name."""

    @register("test-identity-defense")
    class Identity(Defense):
        randomized = False

        def __init__(self, name, card, options, data_dir=None):
            super().__init__(name)

        def settings(self):
            return {"kind": "identity"}

        def passes_per_call(self, draws=None):
            return 1

        def wrap(self, model, seed, draws=None, max_batch=64):
            return model

    try:
        d = get_defense("test-identity-defense")
        x = sample_test.float_images(0, 2)
        assert torch.equal(d.wrap(tiny_model, 0)(x), tiny_model(x))
    finally:
        from mi_bench.defenses import registry

        registry._REGISTRY.pop("test-identity-defense")


@pytest.mark.parametrize("name,suite", [(n, "eot-pgd") for n in BASELINES] +
                         [("gaussian-noise", "pgd"), ("rotation", "autoattack"),
                          ("xie", "transfer")])
def test_baselines_run_through_the_attack_command(name, suite, tmp_path, tiny_checkpoint,
                                                  monkeypatch, capsys):
    args = ["attack", "--checkpoint", str(tiny_checkpoint), "--defense", name,
            "--defense-opt", "draws=2", "--suite", suite, "--n-examples", "2",
            "--batch-size", "2", "--eval-repeats", "2", "--attack-draws", "1",
            "--eot-iter", "1", "--no-sanity", "--no-progress", "--out", str(tmp_path / "s")]
    if suite in ("eot-pgd", "pgd", "transfer"):
        args += ["--steps", "2"]
    if suite == "autoattack":
        args += ["--aa-version", "custom", "--aa-attacks", "apgd-ce", "--restarts", "1"]
    if suite == "transfer":
        args += ["--surrogate", str(tiny_checkpoint)]
    monkeypatch.setattr(sys, "argv", ["mi-bench", *args])
    assert cli.run(args) == 0, capsys.readouterr().err
    from mi_bench.results import ResultStore

    (rec,) = ResultStore(tmp_path / "s").records()
    assert rec["defense"] == name and rec["defense_settings"]["draws"] == 2
    assert rec["forwards_per_prediction"] == 2
    assert rec["attack_draws"] == (1 if suite in ("eot-pgd", "autoattack") else None)
