"""The binarization test (issue 19): it must be able to fail both ways.

Tiny untrained CNNs on the embedded CIFAR-10 sample keep every test to seconds on a CPU.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from test_cli import cli
from torch import nn

from mi_bench.attacks.binarization import (
    BinarizationSettings,
    binom_cdf,
    sample_task,
    verdict,
)
from mi_bench.attacks.runner import AttackConfig, AttackRun
from mi_bench.defenses import get_defense, registry
from mi_bench.models import create_model, feature_split
from mi_bench.models.checkpoint import save_checkpoint
from mi_bench.results import ResultStore

EPS = 8 / 255
SMALL = {"n_inner": 49, "n_val": 10}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained small CNN: its random features suffice for a readout around one image."""
    torch.manual_seed(0)
    m = create_model("small-cnn", 10, width=8).eval()
    card = {"arch": "small-cnn", "num_classes": 10, "arch_kwargs": {"width": 8},
            "mean": m.mean.flatten().tolist(), "std": m.std.flatten().tolist(),
            "dataset": "cifar10"}
    path = tmp_path_factory.mktemp("bin") / "tiny.pt"
    save_checkpoint(path, m, card)
    return str(path)


class Quantized(nn.Module):
    """Rounds its input to ``levels`` grey levels: torch.round has zero gradient everywhere."""

    def __init__(self, model: nn.Module, levels: int):
        super().__init__()
        self.model, self.levels = model, levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * self.levels) / self.levels)


class QuantizeDefense(registry.Defense):
    """Gradient masking by input quantization (for these tests only)."""

    randomized = False
    levels = 64

    def __init__(self, name, card, options, data_dir=None):
        super().__init__(name)

    def settings(self) -> dict:
        return {"levels": self.levels}

    def passes_per_call(self, draws=None) -> int:
        return 1

    def wrap(self, model, seed, draws=None, max_batch=64):
        return Quantized(model, self.levels)

    def binary_inputs(self, x, labels, task, draws, generator):
        return (torch.round(x * self.levels) / self.levels)[:, None]


@pytest.fixture()
def quantize():
    """Registered for one test, then removed: the CLI's defense list never sees it."""
    registry.register("test-quantize")(QuantizeDefense)
    yield "test-quantize"
    registry._REGISTRY.pop("test-quantize")


def run_test(tmp_path, ckpt, defense="none", inner="pgd", n=6, binarization=None, seed=0,
             **kw) -> tuple[dict, dict]:
    cfg = AttackConfig(checkpoint=ckpt, defense=defense, suite="binarization",
                       inner_attack=inner, n_examples=n, seeds=[seed],
                       binarization={**SMALL, **(binarization or {})},
                       eval_repeats=kw.pop("eval_repeats", 3), **kw)
    store = ResultStore(tmp_path / f"store-{defense}-{inner}-{seed}")
    run = AttackRun(cfg, store, progress=False, log=lambda m: None)
    record = run.run_seed(seed)
    return record, store.load_examples(record["key"])


def test_strong_attack_passes_on_a_deterministic_model(tmp_path, ckpt):
    record, ex = run_test(tmp_path, ckpt, inner="pgd", steps=20)
    v = record["binarization_test"]
    assert v["verdict"] == "pass" and v["asr"] == 1.0 and v["n_valid"] >= 4
    assert v["interval"][0] > 0.5 and v["interval"][1] == 1.0
    # the record: every sample's outcome, setup failures with reasons, validation accuracy
    assert ex["passed"].shape == ex["valid"].shape == (6,)
    assert ex["passed"][ex["valid"]].all()
    assert len(record["setup_failures"]) == 6 - v["n_valid"]
    assert all(f["reason"] for f in record["setup_failures"])
    assert record["val_acc_inner"] > 0.9 and 0 < record["val_acc_boundary"] <= 1
    assert record["passes_per_sample"] > 0 and record["inner_suite"] == "pgd"
    assert (ex["train_acc"][ex["valid"]] == 1).all()


def test_crippled_attack_fails(tmp_path, ckpt):
    """One step of 1e-4 from a random start in the ball never reaches the corner."""
    record, ex = run_test(tmp_path, ckpt, inner="pgd", steps=1, step_size=1e-4)
    v = record["binarization_test"]
    assert v["verdict"] == "fail" and v["asr"] == 0.0 and v["significant"]
    assert (ex["fooled"][ex["valid"]] == 0).all()


def test_plain_pgd_fails_against_input_quantization(tmp_path, ckpt, quantize):
    """The same white-box PGD passes on the bare model and fails through the quantizer."""
    bare, _ = run_test(tmp_path, ckpt, defense="none", inner="eot-pgd", steps=20)
    masked, _ = run_test(tmp_path, ckpt, defense=quantize, inner="eot-pgd", steps=20)
    assert bare["binarization_test"]["verdict"] == "pass"
    v = masked["binarization_test"]
    assert v["n_valid"] >= 3, masked["setup_failures"]
    assert v["verdict"] == "fail" and v["asr"] <= 0.34


def test_eot_passes_where_single_draw_pgd_fails(tmp_path, ckpt, seed=0):
    """Heavy Gaussian noise: one noisy gradient per step is not enough, 100 are."""
    noise = {"defense": "gaussian-noise", "defense_opts": {"sigma": 0.6, "draws": 30},
             "binarization": {"c": 1e4, "feature_draws": 100}, "n": 8, "seed": seed,
             "inner": "eot-pgd", "steps": 20}
    single, _ = run_test(tmp_path / "single", ckpt, eot_iter=1, attack_draws=1, **noise)
    eot, _ = run_test(tmp_path / "eot", ckpt, eot_iter=20, attack_draws=5, **noise)
    s, e = single["binarization_test"], eot["binarization_test"]
    assert s["n_valid"] == e["n_valid"] >= 3  # the same tasks: setup does not depend on the attack
    assert e["verdict"] == "pass" and e["asr"] == 1.0
    assert s["verdict"] == "fail" and s["asr"] < e["asr"]


def test_the_ensemble_runs_as_inner_attack_on_a_randomized_defense(tmp_path, ckpt):
    record, _ = run_test(tmp_path, ckpt, defense="gaussian-noise", inner="autoattack", n=2,
                          defense_opts={"sigma": 0.025, "draws": 4}, steps=5, eot_iter=1,
                          attack_draws=2, binarization={"c": 1e4, "feature_draws": 8})
    assert record["attack"]["version"] == "ensemble"
    assert record["binarization_test"]["n_valid"] == 2 and record["backwards"] > 0
    assert record["binarization_test"]["verdict"] == "pass"  # weak noise: APGD-CE breaks it


def test_task_geometry():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 32, 32) * 0.8 + 0.1  # away from 0 and 1: no clipping
    s = BinarizationSettings(n_inner=20, n_boundary=3, n_val=5, gap=0.1)
    t = sample_task(x, EPS, "Linf", s, g)
    assert torch.equal(t.images[0], x[0]) and t.labels.tolist() == [0] * 21 + [1] * 3
    d = (t.images - x).flatten(1).abs()
    assert (d[:21].amax(1) <= 0.9 * EPS + 1e-6).all()
    assert torch.allclose(d[21:], torch.full_like(d[21:], EPS), atol=1e-6)  # corners
    assert t.val_labels.tolist() == [0] * 5 + [1] * 5 and len(t.val_images) == 10
    sphere = sample_task(x, 0.5, "L2", BinarizationSettings(n_inner=5, boundary="sphere",
                                                            n_val=2), g)
    norms = (sphere.images - x).flatten(1).norm(dim=1)
    assert (norms[1:6] <= 0.95 * 0.5 + 1e-5).all() and torch.allclose(norms[6:], 0.5 * torch.ones(1))


@pytest.mark.parametrize("arch,kw", [("small-cnn", {"width": 4}),
                                     ("preact-resnet18", {"width": 4}),
                                     ("wrn-28-10", {"depth": 10, "widen": 1})])
def test_features_and_head_reproduce_the_model(arch, kw):
    torch.manual_seed(0)
    m = create_model(arch, 10, **kw).eval()
    x = torch.rand(3, 3, 32, 32)
    features, head = feature_split(m, probe=x)
    with torch.no_grad():
        assert torch.allclose(head(features(x)), m(x), atol=1e-5)
    assert features(x).shape == (3, head.in_features)


def test_binarized_mi_mixes_with_the_task_points(sample_train):
    from mi_bench.defenses.mi import MIDefense

    d = get_defense("mi-ol", {"num_classes": 10}, {"n_samples": 4})
    assert isinstance(d, MIDefense)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    task = sample_task(x, EPS, "Linf", BinarizationSettings(n_inner=9, n_val=2), g)
    mi = d.binarized(nn.Identity(), task, seed=0)
    assert torch.equal(mi.pool.images, task.images) and mi.pool.num_classes == 2
    inputs = d.binary_inputs(task.images[:1], task.labels[:1], task, 4, g)  # x, class 0
    boundary = 0.5 * x + 0.5 * task.images[-1:]  # OL: x's partners are the boundary point
    assert inputs.shape == (1, 4, 3, 32, 32) and torch.allclose(inputs[0], boundary.expand(4, -1,
                                                                                         -1, -1))


def test_verdict_and_binomial():
    assert verdict(20, 20)["verdict"] == "pass" and verdict(18, 20)["verdict"] == "fail"
    assert not verdict(18, 20)["significant"] and verdict(10, 20)["significant"]
    assert verdict(0, 0)["verdict"] == "no valid sample"
    n, p = 12, 0.9
    brute = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(8))
    assert binom_cdf(7, n, p) == pytest.approx(brute)
    assert verdict(19, 20)["interval"][0] == pytest.approx(0.7639, abs=1e-3)  # Wilson


def test_readout_is_scikit_learns_and_separates():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mi_bench.attacks.binarization import fit_readout

    rng = np.random.default_rng(0)
    # tiny feature scale, as a robust model's inside an 8/255 ball: standardizing must handle it
    f = 1e-3 * np.concatenate([rng.normal(0, 1, (50, 8)), rng.normal(3, 1, (1, 8))])
    y = np.r_[np.zeros(50), 1].astype(int)
    w, b, acc = fit_readout(f, y, c=1.0)
    ref = make_pipeline(StandardScaler(), LogisticRegression(
        C=1.0, class_weight="balanced", max_iter=5000)).fit(f, y)
    assert acc == 1.0 and ref.score(f, y) == 1.0
    assert np.allclose(f @ w + b, ref.decision_function(f), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("args,message", [
    (["--suite", "binarization"], "needs --inner-attack"),
    (["--suite", "pgd", "--inner-attack", "pgd"], "apply to --suite binarization"),
    (["--suite", "binarization", "--inner-attack", "pgd", "--binarization-opt", "gap=2"],
     "gap must lie in (0, 1)"),
    (["--suite", "binarization", "--inner-attack", "pgd", "--binarization-opt", "n_iner=5"],
     "has no option 'n_iner'"),
    (["--suite", "binarization", "--inner-attack", "pgd", "--attack-preset", "tramer"],
     "eot-pgd setting"),
])
def test_bad_binarization_options_fail_on_one_line(monkeypatch, capsys, ckpt, args, message):
    code, _, err = cli(monkeypatch, capsys, "attack", "--checkpoint", ckpt, "--defense", "none",
                       *args)
    assert code == 2 and message in err, err
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1


def test_cli_prints_the_verdict_table(monkeypatch, capsys, tmp_path, ckpt):
    code, out, err = cli(monkeypatch, capsys,
        "attack", "--checkpoint", ckpt, "--defense", "none", "--suite", "binarization",
        "--inner-attack", "pgd", "--binarization-preset", "cpu", "--n-examples", "2",
        "--binarization-opt", "n_inner=29", "--binarization-opt", "n_val=5",
        "--out", str(tmp_path / "r"), "--no-progress")
    assert code == 0, err
    assert "ASR (95% CI)" in out and "| pass " in out and "sample 1: pass" in err


def test_official_preset_carries_the_mi_case_study_settings(monkeypatch, capsys, tmp_path, ckpt):
    """``official``: 999 inner points and 1 corner, 100 validation points, MI-OL with 15 draws
    and lambda 0.6, 512 samples unless --n-examples says otherwise (1 here: the run is real)."""
    code, _, err = cli(monkeypatch, capsys,
        "attack", "--checkpoint", ckpt, "--defense", "mi-ol", "--suite", "binarization",
        "--inner-attack", "pgd", "--binarization-preset", "official", "--n-examples", "1",
        "--out", str(tmp_path / "r"), "--no-progress")
    assert code == 0, err
    (path,) = (tmp_path / "r" / "records").glob("*.json")
    rec = json.loads(path.read_text())
    b = rec["binarization"]
    assert (b["n_inner"], b["n_boundary"], b["boundary"], b["n_val"]) == (999, 1, "corners", 100)
    assert rec["defense_settings"]["n_samples"] == 15 and rec["defense_settings"]["lam"] == 0.6
    assert rec["n"] == 1 and rec["eps"] == pytest.approx(EPS)
    # one sample: it passed, failed, or was set aside with its reason; never silently dropped
    assert rec["binarization_test"]["n_valid"] + len(rec["setup_failures"]) == 1


def test_the_table_names_the_preset_a_record_followed():
    from test_k_table import load

    from mi_bench.attacks.binarization import PRESETS

    table = load("binarization_table")
    for name, preset in PRESETS.items():
        assert table._preset({**preset["settings"], "c": 1.0}) == name
    assert table._preset({**PRESETS["cpu"]["settings"], "n_inner": 29}) == "custom"
