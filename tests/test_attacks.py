import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mi_bench.attacks.checks import InvalidAdversarial, check_valid
from mi_bench.attacks.pgd import pgd, project
from mi_bench.attacks.registry import get_member
from mi_bench.attacks.runner import AttackConfig, AttackRun
from mi_bench.attacks.suites import PassCounter, PGDSuite
from mi_bench.data import load_sample
from mi_bench.defenses.mi import MIConfig, MixupInference
from mi_bench.results import ResultStore


def run(tmp_path, ckpt, store="store", **kw):
    cfg = AttackConfig(checkpoint=str(ckpt), **{"n_examples": 8, "batch_size": 4,
                                                "eval_repeats": 2, "sanity": False, **kw})
    return AttackRun(cfg, ResultStore(tmp_path / store), progress=False, log=lambda m: None)


def test_validity_checks():
    x = torch.rand(3, 3, 32, 32) * 0.5 + 0.25
    eps = 8 / 255
    check_valid(project(x + 1.0, x, eps, "Linf"), x, eps, "Linf")
    check_valid(project(x + 1.0, x, 0.5, "L2"), x, 0.5, "L2")
    with pytest.raises(InvalidAdversarial, match="Linf distance"):
        check_valid(x + 2 * eps, x, eps, "Linf")
    with pytest.raises(InvalidAdversarial, match="L2 distance"):
        check_valid(x + 0.01, x, 0.5, "L2")
    with pytest.raises(InvalidAdversarial, match=r"outside \[0, 1\]"):
        check_valid(torch.zeros_like(x) - 0.01, torch.zeros_like(x), eps, "Linf")
    with pytest.raises(InvalidAdversarial, match="NaN"):
        check_valid(x * float("nan"), x, eps, "Linf")


def test_pgd_stays_in_the_ball_and_hurts(tiny_model, sample_test):
    x, y = sample_test.float_images(0, 16), sample_test.labels[:16]
    x_adv = pgd(tiny_model, x, y, eps=8 / 255, steps=5, generator=torch.Generator().manual_seed(0))
    check_valid(x_adv, x, 8 / 255, "Linf")
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy
        assert loss(tiny_model(x_adv), y) > loss(tiny_model(x), y)


def test_eot_draws_fresh_partners_for_every_gradient_sample(tiny_model, sample_train,
                                                            sample_test):
    mi = MixupInference(tiny_model, sample_train, MIConfig(n_samples=3),
                        torch.Generator().manual_seed(0))
    seen = []
    original = mi.draw

    def spy(*a, **k):
        idx, lab = original(*a, **k)
        seen.append(idx.clone())
        return idx, lab

    mi.draw = spy
    suite = PGDSuite("eot-pgd", mi, "Linf", 8 / 255, steps=2, eot_iter=3)
    suite.perturb(sample_test.float_images(0, 4), sample_test.labels[:4], seed=0)
    assert len(seen) == 6  # 2 steps x 3 gradient samples
    flat = [tuple(s.flatten().tolist()) for s in seen]
    assert len(set(flat)) == 6


def test_seed_reproducibility_and_skip(tmp_path, tiny_checkpoint):
    kw = {"suite": "eot-pgd", "steps": 3, "eot_iter": 2, "attack_draws": 2, "defense_opts": {"n_samples": 4}}
    a = run(tmp_path, tiny_checkpoint, "a", **kw).run_seed(1)
    b = run(tmp_path, tiny_checkpoint, "b", **kw).run_seed(1)
    assert a["key"] == b["key"]
    ea = ResultStore(tmp_path / "a").load_examples(a["key"])
    eb = ResultStore(tmp_path / "b").load_examples(b["key"])
    assert np.array_equal(ea["adv"], eb["adv"]) and np.array_equal(ea["clean"], eb["clean"])
    assert a["robust_acc"] == b["robust_acc"] and a["forwards"] == b["forwards"] > 0
    assert ea["adv"].shape == (2, 8)  # eval repeats x examples
    c = run(tmp_path, tiny_checkpoint, "a", **kw)
    assert c.run_seed(1)["created"] == a["created"]  # existing key: skipped, not recomputed
    assert len(list((tmp_path / "a" / "records").glob("*.json"))) == 1


def test_oblivious_transfer_and_cost_accounting(tmp_path, tiny_checkpoint):
    rec = run(tmp_path, tiny_checkpoint, suite="pgd", steps=5, defense_opts={"n_samples": 4}).run_seed(0)
    # attack: 5 steps x 8 images with gradients on the base model; eval: (S 8 + R 2) draws x
    # (clean image + point) x 8 images x (1+4)
    assert rec["backwards"] == 5 * 8
    assert rec["forwards"] == 5 * 8 + (8 + 2) * 2 * 8 * 5
    ex = ResultStore(tmp_path / "store").load_examples(rec["key"])
    assert ex["adv_select"].shape == (8, 8) and ex["adv"].shape == (2, 8)
    # the kept candidate is never above the clean image on selection draws
    assert (ex["adv_select"].mean(0) <= ex["clean_select"].mean(0)).all()
    tr = run(tmp_path, tiny_checkpoint, suite="transfer", surrogate=str(tiny_checkpoint),
             steps=5, defense="none").run_seed(0)
    assert tr["surrogate_sha256"] == tr["checkpoint_sha256"]
    assert tr["backwards"] == 5 * 8 and tr["robust_acc"] <= tr["clean_acc"]
    checked = run(tmp_path, tiny_checkpoint, "checked", suite="transfer", sanity=True, steps=1,
                  surrogate=str(tiny_checkpoint), defense="none").run_seed(0)
    assert "skipped" in checked["flags"]["large_eps"]  # the target's gradients are never used


def test_clean_draws_are_shared_across_eps_and_match_a_fresh_run(tmp_path, tiny_checkpoint):
    kw = {"suite": "pgd", "steps": 2, "defense_opts": {"n_samples": 4}}
    first = run(tmp_path, tiny_checkpoint, eps=8 / 255, **kw).run_seed(0)
    second = run(tmp_path, tiny_checkpoint, eps=2 / 255, **kw).run_seed(0)
    fresh = run(tmp_path, tiny_checkpoint, "fresh", eps=2 / 255, **kw).run_seed(0)
    ea = ResultStore(tmp_path / "store").load_examples(first["key"])
    eb = ResultStore(tmp_path / "store").load_examples(second["key"])
    ef = ResultStore(tmp_path / "fresh").load_examples(fresh["key"])
    assert np.array_equal(ea["clean"], eb["clean"]) and np.array_equal(eb["clean"], ef["clean"])
    assert np.array_equal(eb["adv"], ef["adv"])
    # the clean evaluation is computed once per batch (2 batches) and shared by both eps; a
    # record stores the same cost whether its clean draws were computed or reused
    assert len(list((tmp_path / "store" / "clean").glob("*.npz"))) == 2
    assert fresh["forwards"] == second["forwards"]
    assert first["forwards"] == second["forwards"]
    other_seed = run(tmp_path, tiny_checkpoint, eps=2 / 255, **kw).run_seed(1)
    assert other_seed["forwards"] == fresh["forwards"]


def test_default_steps_scale_with_eps(tmp_path, tiny_checkpoint):
    """Oblivious PGD keeps the paper's 2/255 at 8/255, i.e. eps/4; EOT-PGD takes 2.5 eps/steps."""
    for eps in (1 / 255, 8 / 255):
        obl = run(tmp_path, tiny_checkpoint, suite="pgd", eps=eps).identity(0)["attack"]
        assert obl["step_size"] == pytest.approx(eps / 4)
        ada = run(tmp_path, tiny_checkpoint, suite="eot-pgd", steps=20, eps=eps).identity(0)
        assert ada["attack"]["step_size"] == pytest.approx(2.5 * eps / 20)


class MaskedLookup(torch.nn.Module):
    """A gradient-masked toy defense: nearest stored image's label, no gradient at all."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x.flatten(1), y

    def forward(self, x):
        nearest = torch.cdist(x.flatten(1).detach(), self.x).argmin(1)
        return 10 * torch.nn.functional.one_hot(self.y[nearest], 10).float() + 0 * x.sum()


def test_gradient_masked_toy_is_flagged(tmp_path, tiny_checkpoint):
    r = run(tmp_path, tiny_checkpoint, suite="eot-pgd", defense="none", steps=5, sanity=True)
    r.base = PassCounter(MaskedLookup(r.test.float_images(), r.test.labels))
    rec = r.run_seed(0)
    assert rec["flags"]["zero_grad_fraction"] == 1.0
    assert rec["flags"]["large_eps"]["masked"] and rec["flags"]["large_eps"]["acc"] > 0.5
    honest = run(tmp_path, tiny_checkpoint, "h", suite="eot-pgd", defense="none", steps=5,
                 sanity=True).run_seed(0)
    assert not honest["flags"]["large_eps"]["masked"]
    assert honest["flags"]["zero_grad_fraction"] == 0.0


def test_stronger_attack_with_higher_accuracy_is_flagged(tmp_path, tiny_checkpoint):
    weak = run(tmp_path, tiny_checkpoint, suite="pgd", steps=1, defense="none", eps=1 / 255)
    weak.run_seed(0)
    store = weak.store
    rec_path = next((tmp_path / "store" / "records").glob("*.json"))
    import json

    data = json.loads(rec_path.read_text())
    data["robust_acc"] = 0.0  # pretend the weak attack already reached 0%
    rec_path.write_text(json.dumps(data))
    strong = run(tmp_path, tiny_checkpoint, suite="pgd", steps=1, defense="none", eps=2 / 255)
    rec = strong.run_seed(0)
    assert rec["robust_acc"] > 0.3, "the tiny model should keep some accuracy at 2/255"
    assert any("stronger attack" in m for m in rec["flags"]["weaker_attack_stronger"])
    assert store.has(rec["key"])


def test_resume_after_a_real_kill(tmp_path, tiny_checkpoint):
    args = [sys.executable, "-m", "mi_bench.cli", "attack", "--checkpoint", str(tiny_checkpoint),
            "--suite", "eot-pgd", "--steps", "40", "--eot-iter", "4", "--attack-mi-samples", "4",
            "--mi-n", "4", "--n-examples", "12", "--batch-size", "2", "--eval-repeats", "2",
            "--no-sanity", "--no-progress"]
    env = {**os.environ, "MI_BENCH_DATA": ""}
    env.pop("MI_BENCH_DATA")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 600  # generous: a loaded machine starts Python slowly
    partial = []
    while time.time() < deadline and proc.poll() is None:
        partial = list(killed.glob("partial/*/*.npz"))
        if len(partial) >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not list(killed.glob("records/*.json")) and 2 <= len(partial) < 6
    done = subprocess.run(args + ["--out", str(killed)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming after" in done.stderr
    fresh = subprocess.run(args + ["--out", str(tmp_path / "fresh")], env=env,
                           capture_output=True, text=True, check=False)
    assert fresh.returncode == 0
    a, b = ResultStore(killed), ResultStore(tmp_path / "fresh")
    (ra,), (rb,) = a.records(), b.records()
    ea, eb = a.load_examples(ra["key"]), b.load_examples(rb["key"])
    assert np.array_equal(ea["adv"], eb["adv"]) and np.array_equal(ea["clean"], eb["clean"])
    assert ra["forwards"] == rb["forwards"] and ra["backwards"] == rb["backwards"]
    timing = ("created", "seconds")  # the only fields allowed to differ
    assert {k: v for k, v in ra.items() if k not in timing} == \
        {k: v for k, v in rb.items() if k not in timing}
    assert not list(killed.glob("partial/*/*.npz"))


def test_partner_pool_is_part_of_the_identity(tmp_path, tiny_checkpoint, sample_test,
                                              sample_train):
    """Same test images, another MI partner pool: a new record, never the old one reused."""
    data = tmp_path / "data"
    data.mkdir()
    for name, split in (("test", sample_test.head(50)), ("train", sample_train.head(500))):
        np.savez(data / f"{name}.npz", images=split.images.permute(0, 2, 3, 1).numpy(),
                 labels=split.labels.numpy())
    kw = {"suite": "pgd", "steps": 1, "defense_opts": {"n_samples": 4}}
    a = run(tmp_path, tiny_checkpoint, **kw).run_seed(0)
    b = run(tmp_path, tiny_checkpoint, data_dir=str(data), **kw).run_seed(0)
    assert a["data"] == b["data"], "the test images are the same"
    assert a["defense_settings"]["pool"] != b["defense_settings"]["pool"]
    assert a["key"] != b["key"] and len(ResultStore(tmp_path / "store").records()) == 2
    # the cached clean evaluations are not shared across pools either
    assert len(list((tmp_path / "store" / "clean").glob("*.npz"))) == 4


def test_autoattack_randomness_check_fires_on_mi_with_standard(tmp_path, tiny_checkpoint):
    mi = run(tmp_path, tiny_checkpoint, suite="autoattack", aa_version="standard",
             defense_opts={"n_samples": 4}, attack_draws=2)
    flags = mi.sanity_checks(0)
    assert flags["randomized"]
    assert "randomized defense" in flags["autoattack_randomness_check"]
    plain = run(tmp_path, tiny_checkpoint, suite="autoattack", defense="none").sanity_checks(0)
    assert not plain["randomized"] and "autoattack_randomness_check" not in plain
    default = run(tmp_path, tiny_checkpoint, suite="autoattack", defense_opts={"n_samples": 4})
    assert default.suite(default.attack_model(0)).settings()["version"] == "ensemble"
    rand = run(tmp_path, tiny_checkpoint, suite="autoattack", defense_opts={"n_samples": 4},
               aa_version="rand")
    suite = rand.suite(rand.attack_model(0))
    assert suite.version == "rand" and suite.effective_eot() == 20
    # K defaults to N = 4 partners: 2 attacks x 100 iterations x EOT 20 x (1 + K) passes
    assert suite.passes_per_image() == 2 * 100 * 20 * (1 + 4)


def test_two_concurrent_runs_on_one_store_store_the_uninterrupted_record(tmp_path,
                                                                          tiny_checkpoint):
    """Both processes compute what they do not find; the record (costs included) is the one a
    lone run stores, whichever process wrote it last."""
    args = [sys.executable, "-m", "mi_bench.cli", "attack", "--checkpoint", str(tiny_checkpoint),
            "--suite", "eot-pgd", "--steps", "3", "--eot-iter", "2", "--attack-draws", "2",
            "--mi-n", "4", "--n-examples", "12", "--batch-size", "2", "--eval-repeats", "2",
            "--no-sanity", "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k != "MI_BENCH_DATA"}
    env["OMP_NUM_THREADS"] = "1"
    shared = tmp_path / "shared"
    procs = [subprocess.Popen(args + ["--out", str(shared)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    lone = subprocess.run(args + ["--out", str(tmp_path / "lone")], env=env, capture_output=True,
                          text=True, check=False)
    assert lone.returncode == 0, lone.stderr[-2000:]
    (ra,), (rb,) = ResultStore(shared).records(), ResultStore(tmp_path / "lone").records()
    timing = ("created", "seconds", "data_path")
    assert {k: v for k, v in ra.items() if k not in timing} == \
        {k: v for k, v in rb.items() if k not in timing}


def test_tramer_preset_records_the_published_settings(tmp_path, tiny_checkpoint, capsys):
    from mi_bench import cli

    code = cli.run(["attack", "--checkpoint", str(tiny_checkpoint), "--suite", "eot-pgd",
                    "--attack-preset", "tramer", "--mi-n", "4", "--n-examples", "2",
                    "--eval-repeats", "1", "--no-sanity", "--no-progress",
                    "--out", str(tmp_path / "s")])
    assert code == 0, capsys.readouterr().err
    (rec,) = ResultStore(tmp_path / "s").records()
    assert rec["attack"]["steps"] == 50 and rec["attack"]["eot_iter"] == 1
    assert rec["attack"]["step_size"] == pytest.approx(0.5 / 255) and rec["attack_draws"] == 15


def test_ensemble_records_differing_in_iterations_are_compared():
    """Ensemble records store ``n_iter``: more iterations reading higher is flagged."""
    from mi_bench.attacks.checks import weaker_attack_stronger

    base = {"protocol": 3, "defense": "mi-ol", "suite": "autoattack", "norm": "Linf", "seed": 0,
            "n": 1000, "eps": 8 / 255, "attack_draws": 1}
    weak = {**base, "key": "weak", "robust_acc": 0.30,
            "attack": {"version": "ensemble", "n_iter": 100, "eot_iter": 5, "restarts": 1}}
    strong = {**base, "key": "strong", "robust_acc": 0.40,
              "attack": {"version": "ensemble", "n_iter": 200, "eot_iter": 5, "restarts": 1}}
    (msg,) = weaker_attack_stronger(strong, [weak])
    assert "n_iter" in msg and "0.400 > 0.300" in msg


def test_apgd_t_member_attacks_points_one_forward_calls_wrong(tiny_checkpoint):
    """pyautoattack's targeted APGD returns the clean image wherever one forward is wrong; the
    member attacks every point."""
    from pyautoattack.autopgd_base import APGDAttack_targeted

    from mi_bench.attacks.ensemble import EnsembleSuite
    from mi_bench.models.zoo import load_classifier

    model, _ = load_classifier(str(tiny_checkpoint))
    model.eval()
    test = load_sample("test")
    x, y = test.float_images(0, 64), test.labels[:64]
    with torch.no_grad():
        wrong = model(x).argmax(1) != y
    assert wrong.sum() >= 3
    ens = EnsembleSuite(model_for=lambda s, d: model, calls_cost=lambda d: 1, norm="Linf",
                        eps=8 / 255, steps=3, eot_iter=1, members=("apgd-t",))
    ours = get_member("apgd-t").run(ens, x[wrong], y[wrong], 0)
    theirs = APGDAttack_targeted(model, n_iter=3, eps=8 / 255, seed=0, n_target_classes=9,
                                 device="cpu").perturb(x[wrong].contiguous(), y[wrong])
    assert torch.equal(theirs, x[wrong])  # the default branch leaves them untouched
    moved = (ours - x[wrong]).flatten(1).abs().amax(1)
    assert (moved > 1 / 255).all() and (moved <= 8 / 255 + 1e-6).all()
